"""Root configuration: the suite's plugins, registered in one place (as pytest's default_plugins)."""

pytest_plugins = (
    "plugins.options",
    "plugins.fixtures",
    "plugins.checks",
    "plugins.redaction",
)
