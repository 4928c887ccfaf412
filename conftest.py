"""Root configuration: the suite's plugins, registered in one place (as pytest's default_plugins)."""

pytest_plugins = (
    "plugins.runmode",
    "plugins.options",
    "plugins.maintenance",
    "plugins.fixtures",
    "plugins.checks",
    "plugins.gate",
    "plugins.redaction",
    "plugins.report",
    "plugins.signals",
    "plugins.outcome",
    "plugins.rollback",
    "plugins.plan",
    "plugins.downtime",
    "plugins.bundle",
    "plugins.hangup",
    "plugins.components",
    # For the project's own tests, which run the suites in pytester sessions; only adds fixtures.
    "pytester",
)
