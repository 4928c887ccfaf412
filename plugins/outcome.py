"""The upgrade run's one-line outcome (UPGRADED, ROLLED BACK (tier), FAILED - MANUAL ACTION...) and
the rollback's account, at the end of the terminal output and on the report's verdict card."""

from __future__ import annotations

import pytest

from plugins.keys import (FAILED_STAGE_KEY, INTERRUPTED_KEY, RESULT_KEY, RUN_MODE_KEY, UPGRADE_KEY,
                          VERDICT_LINE_KEY)
from runbook.rollback import RollbackResult
from runbook.targets import recorded_label
from runbook.components import stages_for


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
    mode = config.stash[RUN_MODE_KEY]
    failed = config.stash.get(FAILED_STAGE_KEY, None)
    result = config.stash.get(RESULT_KEY, None)
    if failed is None:
        recorded = upgrade.journal.data.get("outcome")
        if mode.name == "resume" and recorded != "running":
            return f"--resume: the interrupted run ended {recorded}"
        if recorded == "UPGRADED":
            return f"UPGRADED {upgrade.profile.version} -> {recorded_label(upgrade.journal.data)}"
        if mode.name == "rollback_to" and recorded != "running":
            return f"--rollback-to {mode.rollback_to}: {recorded}"
        return None
    what = "INTERRUPTED" if config.stash.get(INTERRUPTED_KEY, False) else "FAILED"
    # The operation's own stages: a component's (dump, start_new...) are not the release's.
    not_rolled_back = [stage.name for stage in stages_for(config.getoption("component", None)) if not stage.rolled_back]
    if result is None and failed in not_rolled_back:
        return (f"UPGRADE {what} at stage {failed}, after the new version was verified; not rolled back: "
                "run the upgrade suite with --resume to complete it")
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
