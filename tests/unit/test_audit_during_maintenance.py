"""An audit while an upgrade runs, or after one died half-way, reports that in one line with its own
exit status and skips every check; ``--ignore-maintenance`` audits anyway. The upgrade here is a live
process holding the lock and writing the journal through the runbook's own API, as a run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_installation import NOWHERE, fake_installation
from tests.suite_runner import ROOT, SuiteRun, run_suite

LOCK = ".openwatch-upgrade.lock"
JOURNAL = Path(".openwatch-upgrade") / "journal.json"
# What an upgrade run does up to its backup stage (runbook/upgrade.py), then it stays there.
UPGRADE_IN_BACKUP = """
import sys, time
from pathlib import Path
from runbook.journal import Journal
from runbook.lock import RunLock
install = Path(sys.argv[1])
RunLock(install).acquire("CHG-42")
journal = Journal.start(install, "v0.2.0", "CHG-42")
journal.stage_started("lock_and_record")
journal.take_over()
journal.stage_ended("lock_and_record", "passed", 1.0)
journal.stage_started("backup")
print("in stage backup", flush=True)
time.sleep(600)
"""


@pytest.fixture
def install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return fake_installation(pytester.path)


@pytest.fixture
def upgrade_in_backup(install: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", UPGRADE_IN_BACKUP, str(install)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "in stage backup"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def audit(pytester: pytest.Pytester, install: Path, suite: str = "postflight", *args: str) -> SuiteRun:
    return run_suite(pytester, suite, "--install-dir", str(install), *NOWHERE, *args)


def assert_every_check_skipped(run: SuiteRun, reason: str) -> None:
    assert run.outcomes and run.named("skipped") == set(run.outcomes), run.output
    assert all(reason in message for message in run.messages.values()), run.messages
    assert "Traceback" not in run.output


def test_audit_during_an_upgrade_reports_maintenance(pytester: pytest.Pytester, install: Path,
                                                     upgrade_in_backup: subprocess.Popen) -> None:
    lock_before = (install / LOCK).read_text()
    journal = json.loads((install / JOURNAL).read_text())
    backup_started = journal["stages"][-1]["started"]
    line = f"MAINTENANCE: upgrade {journal['run_id']} to v0.2.0 (CHG-42) in stage backup since {backup_started}"

    run = audit(pytester, install)
    assert run.ret == 75, run.output
    assert run.lines_starting("MAINTENANCE") == [line]
    assert_every_check_skipped(run, f"not audited during maintenance: upgrade {journal['run_id']} to v0.2.0 (CHG-42) "
                                    "in stage backup")
    assert run.bundle["outcome"] == "MAINTENANCE" and run.bundle["exit_status"] == 75
    assert run.bundle["maintenance"]["line"] == line and run.bundle["maintenance"]["stage"] == "backup"
    html = next(run.reports.glob("*.html")).read_text()
    assert line in html

    gate = audit(pytester, install, "preflight", "--target", "v0.2.0")  # a checked-out target is not judged
    assert gate.ret == 75 and gate.lines_starting("MAINTENANCE") == [line], gate.output
    assert_every_check_skipped(gate, "not audited during maintenance")

    assert upgrade_in_backup.poll() is None and (install / LOCK).read_text() == lock_before  # never taken


def test_audit_after_an_upgrade_died_says_resume(pytester: pytest.Pytester, install: Path,
                                                 upgrade_in_backup: subprocess.Popen) -> None:
    os.kill(upgrade_in_backup.pid, signal.SIGKILL)
    upgrade_in_backup.wait()
    journal = json.loads((install / JOURNAL).read_text())

    run = audit(pytester, install)
    assert run.ret == 69, run.output
    died = run.lines_starting("UPGRADE DIED")
    assert len(died) == 1 and died[0].startswith(
        f"UPGRADE DIED IN backup: run --resume; the upgrade run {journal['run_id']} (pid {upgrade_in_backup.pid}, "
        "ticket CHG-42, to v0.2.0) died in stage backup without finishing"), run.output
    assert_every_check_skipped(run, f"not audited: the upgrade run {journal['run_id']}")
    assert run.bundle["outcome"] == "UPGRADE DIED" and run.bundle["exit_status"] == 69


def test_ignore_maintenance_audits_anyway(pytester: pytest.Pytester, install: Path,
                                          upgrade_in_backup: subprocess.Popen) -> None:
    run = audit(pytester, install, "postflight", "--ignore-maintenance", "-k", "database_answers or api_docs")
    assert run.outcomes.keys() == {"test_database_answers", "test_api_docs_served"}, run.output
    assert not run.named("skipped") and run.named("failed") | run.named("error"), run.messages
    assert run.ret == pytest.ExitCode.TESTS_FAILED and not run.lines_starting("MAINTENANCE")
    assert run.bundle["outcome"] == "FAILED" and run.bundle["maintenance"] is None


def test_no_upgrade_no_maintenance(pytester: pytest.Pytester, install: Path) -> None:
    run = audit(pytester, install, "postflight", "-k", "api_docs")
    assert run.outcomes == {"test_api_docs_served": "failed"} and run.ret == pytest.ExitCode.TESTS_FAILED
    assert not run.lines_starting("MAINTENANCE") and run.bundle["maintenance"] is None
