"""pytest plugins of the suite, one module per feature; ``conftest.py`` registers them."""
