"""When an upgrade stage fails, or is interrupted (Ctrl-C, or SIGTERM through plugins/signals.py),
roll back at once, in the same run, with the tier the failure needs.

The rollback's actions and durations go into the failed stage's report (JUnit ``user_properties``
and a "rollback" section in the HTML), the journal, and the run's closing summary
(plugins/outcome.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from plugins.keys import FAILED_STAGE_KEY, INTERRUPTED_KEY, PROBER_KEY, RESULT_KEY, UPGRADE_KEY
from plugins.outcome import describe
from plugins.signals import signals_deferred
from runbook.components import rollback_for, stages_for
from runbook.resume import operation_of
from runbook.rollback import RollbackResult

RUNNING_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("openwatch").addoption(
        "--no-rollback", action="store_true",
        help="leave a failed upgrade as it is, for debugging (the journal still records it)")


def _stage(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("upgrade_stage")
    return marker.args[0] if marker else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    stage = _stage(item)
    config = item.config
    if stage is None or not report.failed or FAILED_STAGE_KEY in config.stash:
        return report
    result = roll_back(config, stage)
    if result is None:
        return report
    properties = [("rollback_tier", result.tier), ("rollback_ok", str(result.ok)),
                  ("rollback_seconds", str(result.seconds))]
    properties += [(f"rollback_action_{i}", f"{a['name']}: {a['seconds']}s {'ok' if a['ok'] else 'FAILED'}")
                   for i, a in enumerate(result.actions, 1)]
    properties += [(f"rollback_difference_{i}", line) for i, line in enumerate(result.differences, 1)]
    # On the item too: junitxml writes the properties of the teardown report, built from the item.
    item.user_properties.extend(properties)
    report.user_properties += properties
    report.sections.append(("rollback", describe(result)))
    return report


def roll_back(config: pytest.Config, stage: str, interrupted: bool = False) -> RollbackResult | None:
    """The rollback for a failed (or interrupted) ``stage``; signals wait until it is done."""
    config.stash[FAILED_STAGE_KEY] = stage
    config.stash[INTERRUPTED_KEY] = interrupted
    upgrade = config.stash.get(UPGRADE_KEY, None)
    if upgrade is None or config.getoption("no_rollback"):
        return None
    # A --resume has no --component: its journal names the operation (when the resume is interrupted).
    operation = config.getoption("component", None) or operation_of(upgrade.journal.data)
    stages = {known.name: known for known in stages_for(operation)}
    if not stages[stage].rolled_back:
        return None
    prober = config.stash.get(PROBER_KEY, None)
    if prober is not None:
        prober.mark("rollback")
    with signals_deferred():
        result = config.stash[RESULT_KEY] = rollback_for(upgrade).run(stage)
    return result


def pytest_runtest_setup(item: pytest.Item) -> None:
    stage = _stage(item)
    if stage is not None:
        item.config.stash[RUNNING_KEY] = stage


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _stage(item) is not None:
        item.config.stash[RUNNING_KEY] = ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "upgrade_stage(name): one stage of the upgrade, rolled back on failure")
    config.pluginmanager.register(InterruptedRun(config), "openwatch-interrupted-run")


class InterruptedRun:
    """Ctrl-C or SIGTERM: roll back what the interrupted stage (or the last one started) may have changed."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        config = self.config
        upgrade = config.stash.get(UPGRADE_KEY, None)
        if upgrade is None or FAILED_STAGE_KEY in config.stash:
            return
        stage = config.stash.get(RUNNING_KEY, "") or upgrade.journal.last_stage()
        sys.stderr.write(f"\ninterrupted during stage {stage}: rolling back before exiting\n")
        roll_back(config, stage, interrupted=True)
