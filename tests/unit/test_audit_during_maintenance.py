"""An audit while an upgrade runs, or after one died half-way, reports that in one line with its own
exit status and skips every check; ``--ignore-maintenance`` audits anyway. The upgrade here is a live
process holding the lock and writing the journal through the runbook's own API, as a run does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook import maintenance
from tests.fake_installation import NOWHERE, fake_installation
from tests.lock_holder import holding_the_lock
from tests.suite_runner import ROOT, SuiteRun, run_suite

# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")

LOCK = ".openwatch-upgrade.lock"
JOURNAL = Path(".openwatch-upgrade") / "journal.json"


@pytest.fixture
def install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return fake_installation(pytester.path)


@pytest.fixture
def upgrade_in_backup(install: Path) -> Iterator[subprocess.Popen]:
    """A live run holding the lock with its journal in the backup stage (a test may SIGKILL it)."""
    with holding_the_lock(install, "v0.2.0", "CHG-42", "backup") as holder:
        yield holder


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
    html = Path(run.bundle["artifacts"]["html"]).read_text()
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


DEAD_PID = 4_194_305  # above the kernel's pid_max: never a live process


def write_state(install: Path, lock: dict | None, journal: dict | None) -> None:
    if lock is not None:
        (install / LOCK).write_text(json.dumps(lock))
    if journal is not None:
        (install / JOURNAL).parent.mkdir()
        (install / JOURNAL).write_text(json.dumps(journal))


def run_record(pid: int, outcome: str) -> dict:
    return {"run_id": "20261125T020000Z-7", "pid": pid, "host": socket.gethostname(), "ticket": "CHG-7",
            "target": "v0.2.0", "started": "2026-11-25T02:00:00Z", "outcome": outcome,
            "stages": [{"name": "migrate", "status": "running", "started": "2026-11-25T02:05:00Z"}]}


def test_a_lock_whose_holder_is_gone_with_a_finished_journal_is_not_maintenance(tmp_path: Path) -> None:
    """That run died before it recorded anything; the audit runs and the pre-flight reports the lock."""
    write_state(tmp_path, {"pid": DEAD_PID, "host": socket.gethostname(), "started": "?", "ticket": "CHG-8"},
                run_record(DEAD_PID, "UPGRADED"))
    assert maintenance.find(tmp_path) is None


def test_a_live_lock_holder_without_a_running_journal_is_maintenance(tmp_path: Path) -> None:
    """``--rollback-to`` holds the lock while the journal still says the upgrade it undoes ended."""
    write_state(tmp_path, {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-11-26T09:00:00Z",
                           "ticket": "CHG-9"}, run_record(DEAD_PID, "UPGRADED"))
    found = maintenance.find(tmp_path)
    assert found.line == f"MAINTENANCE: upgrade run pid {os.getpid()} (CHG-9) since 2026-11-26T09:00:00Z"


def test_resume_settling_a_dead_run_is_maintenance_not_a_died_run(tmp_path: Path) -> None:
    write_state(tmp_path, {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-11-26T09:00:00Z",
                           "ticket": "CHG-7"}, run_record(DEAD_PID, "running"))
    found = maintenance.find(tmp_path)
    assert found.line == ("MAINTENANCE: upgrade 20261125T020000Z-7 to v0.2.0 (CHG-7) in stage migrate "
                          "since 2026-11-25T02:05:00Z")
    (tmp_path / LOCK).unlink()  # --resume not running (yet): the run is dead
    assert maintenance.find(tmp_path).line.startswith("UPGRADE DIED IN migrate: run --resume; ")
