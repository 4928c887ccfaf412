"""An audit during an upgrade reports the upgrade, not the half-changed installation.

The post-flight audit, and the pre-flight run on its own (a go/no-go for an upgrade while one is
running or half-done is meaningless), first read the lock and journal (``runbook.maintenance``).
While a run is in progress, or after one died with its journal still ``running``, every check is
skipped with that reason and the run ends with one result line, its own exit status, and the same
outcome in the report bundle. ``--ignore-maintenance`` audits anyway. The upgrade suite is not
concerned: it refuses to start on top of another run by itself.
"""

from __future__ import annotations

import pytest

from plugins.keys import MAINTENANCE_KEY
from plugins.runmode import AUDIT, mode_of
from runbook import maintenance

# Neither is a pytest exit status (0-5). An upgrade in progress is EX_TEMPFAIL: cron wrappers that
# know sysexits retry later. A died one is EX_UNAVAILABLE: retrying will not help, an operator must
# run --resume, so a wrapper must not file it under "try later".
EXIT_STATUS = {maintenance.RUNNING: 75, maintenance.DIED: 69}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("openwatch").addoption(
        "--ignore-maintenance", action="store_true",
        help="audit even while an upgrade runs or after one died (by default the audit reports that and skips)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before the options are judged (plugins/options.py), so a ``--target`` the running upgrade has
    already checked out is not refused as "not newer"; after -m/-k deselection."""
    if not items or config.getoption("ignore_maintenance") or mode_of(config).name != AUDIT:
        return
    found = maintenance.find(config.getoption("install_dir"))
    if found is None:
        return
    config.stash[MAINTENANCE_KEY] = found
    skip = pytest.mark.skip(reason=found.reason)
    for item in items:
        item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Before the report bundle and pytest-html are written (the bundle's summary carries the line)."""
    found = session.config.stash.get(MAINTENANCE_KEY, None)
    if found is None:
        return
    if session.exitstatus == pytest.ExitCode.OK:  # every check skipped; an interrupt keeps its own status
        session.exitstatus = EXIT_STATUS[found.outcome]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    found = config.stash.get(MAINTENANCE_KEY, None)
    if found is not None:
        terminalreporter.write_line(found.line, bold=True, yellow=found.outcome == maintenance.RUNNING,
                                    red=found.outcome == maintenance.DIED)
