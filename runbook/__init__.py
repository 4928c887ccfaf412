"""Operations of an OpenWatch upgrade, in plain Python: what the suites' tests and plugins call.

One module per concern; nothing here imports pytest, so every operation can be unit-tested
and reused outside a test run.
"""
