"""When an upgrade stage fails, roll back at once, in the same run, with the tier the failure needs.

The rollback's actions and durations go into the failed stage's report (JUnit ``user_properties``
and a "rollback" section in the HTML), the journal, and the run's closing summary.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from plugins.keys import PROBER_KEY, UPGRADE_KEY, VERDICT_LINE_KEY
from plugins.options import PROFILE_KEY
from runbook.components import rollback_for
from runbook.errors import OperatorError
from runbook.resume import unfinished_run
from runbook.rollback import RollbackResult, finished_upgrade
from runbook.targets import recorded_label

RESULT_KEY = pytest.StashKey[RollbackResult]()
FAILED_STAGE_KEY = pytest.StashKey[str]()
RUNNING_KEY = pytest.StashKey[str]()
INTERRUPTED_KEY = pytest.StashKey[bool]()
SIGNALLED_KEY = pytest.StashKey[bool]()
PREVIOUS_HANDLERS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("openwatch")
    group.addoption("--no-rollback", action="store_true",
                    help="leave a failed upgrade as it is, for debugging (the journal still records it)")
    group.addoption("--rollback-to", metavar="REF",
                    help="undo the last finished upgrade (recorded in the journal) back to REF, the tag, VERSION or "
                         "commit id (7+ digits) it started from, as its own run")
    group.addoption("--resume", action="store_true",
                    help="settle an upgrade run that died (SIGKILL, power loss): roll it back, or complete it "
                         "if it had verified the new version")


def _stage(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("upgrade_stage")
    return marker.args[0] if marker else None


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    tag = session.config.getoption("rollback_to")
    profile = session.config.stash.get(PROFILE_KEY, None)
    if profile is None:
        return
    try:
        if tag:
            finished_upgrade(profile.install_dir, tag)
        if session.config.getoption("resume"):
            unfinished_run(profile.install_dir)
    except OperatorError as error:
        raise pytest.UsageError(f"--{'rollback-to' if tag else 'resume'}: {error}") from None


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
    prober = config.stash.get(PROBER_KEY, None)
    if prober is not None:
        prober.mark("rollback")
    with signals_deferred():
        result = config.stash[RESULT_KEY] = rollback_for(upgrade).run(stage)
    return result


@contextmanager
def signals_deferred() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) while rolling back is refused with a message: stopping half-way
    would leave the installation worse than either end."""
    previous = {sig: signal.signal(sig, _refuse) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pytest_runtest_setup(item: pytest.Item) -> None:
    stage = _stage(item)
    if stage is not None:
        item.config.stash[RUNNING_KEY] = stage


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _stage(item) is not None:
        item.config.stash[RUNNING_KEY] = ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "upgrade_stage(name): one stage of the upgrade, rolled back on failure")
    # SIGTERM (a dropped session, systemd, kill) ends the run like Ctrl-C: through the rollback.
    handler = functools.partial(_interrupt, config)
    config.stash[PREVIOUS_HANDLERS_KEY] = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    config.pluginmanager.register(InterruptedRun(config), "openwatch-interrupted-run")


def _interrupt(config: pytest.Config, signum: int, frame: object) -> None:
    """The first signal interrupts the run; once an upgrade was interrupted, further ones are refused
    from that instant on, not only once the rollback has begun (a quick second Ctrl-C would otherwise
    land between the two and stop the run half-way)."""
    if config.stash.get(SIGNALLED_KEY, False) and UPGRADE_KEY in config.stash:
        _refuse(signum, frame)
        return
    config.stash[SIGNALLED_KEY] = True
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _refuse(signum: int, frame: object) -> None:
    sys.stderr.write(f"\n{signal.Signals(signum).name} ignored: the upgrade is being rolled back and must finish\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    for sig, previous in config.stash.get(PREVIOUS_HANDLERS_KEY, {}).items():
        signal.signal(sig, previous)


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


def describe(result: RollbackResult) -> str:
    lines = [f"rollback tier {result.tier} (chosen: {result.requested}): {'SUCCEEDED' if result.ok else 'FAILED'}"
             f" in {result.seconds}s"]
    lines += [f"  {a['seconds']:7.2f}s  {'ok    ' if a['ok'] else 'FAILED'}  {a['name']}" for a in result.actions]
    found = result.found.get("revisions")
    if found is not None:
        schema = result.found.get("schema_differences") or []
        lines.append(f"  database found after the failure at revision {', '.join(found) or 'none'}, schema "
                     + (f"differing from the recorded in {len(schema)} places" if schema else "as recorded"))
    elif result.found.get("unreadable"):
        lines.append("  database could not be read after the failure; tier chosen by the failed stage")
    if result.problem:
        lines.append(f"  {'escalated because' if result.ok else 'last problem'}: {result.problem}")
    if result.differences:
        lines.append("  not as recorded:")
        lines += [f"    {line}" for line in result.differences]
    if result.manual_steps:
        lines.append("  the installation is stopped-safe (database running, app stopped); to restore by hand:")
        lines += [f"    {step}" for step in result.manual_steps]
    return "\n".join(lines)


def outcome(config: pytest.Config) -> str | None:
    upgrade = config.stash.get(UPGRADE_KEY, None)
    if upgrade is None:
        return None
    failed = config.stash.get(FAILED_STAGE_KEY, None)
    result = config.stash.get(RESULT_KEY, None)
    if failed is None:
        recorded = upgrade.journal.data.get("outcome")
        if config.getoption("resume") and recorded != "running":
            return f"--resume: the interrupted run ended {recorded}"
        if recorded == "UPGRADED":
            return f"UPGRADED {upgrade.profile.version} -> {recorded_label(upgrade.journal.data)}"
        if config.getoption("rollback_to") and recorded != "running":
            return f"--rollback-to {config.getoption('rollback_to')}: {recorded}"
        return None
    what = "INTERRUPTED" if config.stash.get(INTERRUPTED_KEY, False) else "FAILED"
    if result is None:
        return f"UPGRADE {what} at stage {failed}; no rollback ran (--no-rollback)"
    if upgrade.before is None:
        return f"NOT STARTED: stage {failed} {what.lower()} before any change; nothing to roll back"
    if result.ok:
        return f"UPGRADE {what} at stage {failed}; ROLLED BACK ({result.tier}) in {result.seconds}s: " \
               f"{upgrade.before.version} restored, schema and data identical"
    return f"UPGRADE {what} at stage {failed}; ROLLBACK FAILED - MANUAL ACTION (see the rollback section)"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """For the report's verdict card, before the bundle and pytest-html are written."""
    line = outcome(session.config)
    if line is not None:
        session.config.stash[VERDICT_LINE_KEY] = line


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    line = outcome(config)
    if line:
        terminalreporter.write_sep("=", line, bold=True, red="FAILED" in line, green="FAILED" not in line)
        result = config.stash.get(RESULT_KEY, None)
        if result is not None:
            terminalreporter.write_line(describe(result))
