"""The run itself dies or is fought over, for real, against the sandbox: Ctrl-C and SIGTERM during a
stage, SIGKILL mid-stage then ``--resume``, two runs started at once, a corrupt dump given to
restore. Each ends with the installation at the old (or, where it finished, the new) version,
healthy, every table's checksum as recorded, the lock released and a report written."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook import backup, dbstate
from runbook.errors import Problem
from runbook.redaction import is_secret_name
from sandbox import releases
from sandbox.installation import Installation
from sandbox.seed import SeedSize
from tests.bundles import read_summaries
from tests.sandbox_state import journal, snapshot
from tests.sessions import TerminalSession, kill_session, wait_ended
from tests.suite_runner import JOB_QUEUE_CHECKS, ROOT, run_suite

JOURNAL = Path(".openwatch-upgrade") / "journal.json"
SEEDED = SeedSize()
LOCK = ".openwatch-upgrade.lock"


def start_upgrade(install: Installation, reports: Path, *extra: str, target: str = "v0.2.0",
                  **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), "--install-dir", str(install.directory),
         "--target", target, f"--reports-dir={reports}", "-p", "no:cacheprovider", "-o", "log_cli=false", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def stage_is(install: Installation, stage: str, status: str = "running") -> bool:
    try:
        stages = json.loads((install.directory / JOURNAL).read_text())["stages"]
    except (OSError, ValueError, KeyError):
        stages = []
    return any(entry["name"] == stage and entry["status"] == status for entry in stages)


def wait_for_stage(install: Installation, proc: subprocess.Popen, stage: str, status: str = "running") -> bool:
    """Poll the journal until ``stage`` has ``status`` (the migrate stage can last under a second)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if stage_is(install, stage, status):
            return True
        time.sleep(0.005)
    return False


def read_until(proc: subprocess.Popen, line: str, deadline_s: float = 120) -> str:
    """The run's output up to and including ``line`` (its own words that the rollback has begun)."""
    deadline, shown = time.monotonic() + deadline_s, []
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if not got:  # the run ended without saying it
            break
        shown.append(got)
        if line in got:
            return "".join(shown)
    raise AssertionError(f"the run never printed {line!r}:\n{''.join(shown)}")


def assert_back_as_before(install: Installation, before: dict) -> None:
    assert snapshot(install) == before  # version, git ref, revision, every table's rows and checksum
    assert install.health().json()["status"] == "healthy"
    assert not (install.directory / LOCK).exists()
    leftovers = subprocess.run(["docker", "ps", "-a", "--filter", "label=com.docker.compose.oneoff=True",
                                "--format", "{{.Names}}"], capture_output=True, text=True, check=True).stdout
    assert not leftovers.strip(), leftovers
    with install.connect() as conn:
        scratch = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'openwatch_%'").fetchall()
    assert not scratch, scratch


def demanded_tier(rollback: dict, before: dict) -> str:
    """The one tier the rollback had to end with, from what it found and did (its journal entry):
    full when the database it found had moved from the recorded revision (a migration committed),
    quick when not; emergency only when starting the old version failed (which a compose CLI killed
    mid-operation can cause even after the retry). Which of these the instant of the signal gives
    is open, so each test states the rule, not one tier."""
    start_failed = any(action["name"] == "start the old version and wait healthy" and not action["ok"]
                       for action in rollback["actions"])
    if start_failed:
        return "emergency"
    return "full" if rollback["found"]["revisions"] != before["revisions"] else "quick"


@pytest.mark.parametrize(("sig", "stage"), [
    # Interrupted while migrating (and a second Ctrl-C 0.3 s later, refused): quick if PostgreSQL
    # rolled the migration back, full if it had committed.
    (signal.SIGINT, "migrate"),
    # Interrupted while `compose up` starts the new version (migrated: full): the killed compose CLI can
    # leave that operation unfinished for a moment; starting the old version is retried once, and if it
    # still fails the rollback escalates to restoring the backup. Either way the data must be identical.
    (signal.SIGTERM, "start"),
])
def test_signal_during_a_stage_rolls_back_and_still_reports(baseline: Installation, tmp_path: Path,
                                                            sig: signal.Signals, stage: str) -> None:
    before = snapshot(baseline)
    reports = tmp_path / "reports"
    proc = start_upgrade(baseline, reports)
    assert wait_for_stage(baseline, proc, stage), proc.communicate()[0]
    proc.send_signal(sig)
    shown = ""
    if sig == signal.SIGINT:  # an impatient operator presses Ctrl-C again, once the rollback has begun
        shown = read_until(proc, f"interrupted during stage {stage}: rolling back before exiting")
        proc.send_signal(sig)
    output = shown + proc.communicate(timeout=600)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert f"interrupted during stage {stage}" in output and f"UPGRADE INTERRUPTED at stage {stage}" in output, output
    if sig == signal.SIGINT:
        assert "SIGINT ignored: the upgrade is being rolled back and must finish" in output, output
    assert_back_as_before(baseline, before)
    [summary] = read_summaries(reports)
    assert summary["rollback"]["ok"] and summary["rollback"]["tier"] == demanded_tier(summary["rollback"], before), \
        summary["rollback"]
    if stage == "start":
        assert summary["rollback"]["found"]["revisions"] != before["revisions"]  # migrated: never quick
    assert summary["outcome"] == f"ROLLED BACK ({summary['rollback']['tier']})" and summary["exit_status"] == 2
    assert Path(summary["artifacts"]["html"]).stat().st_size > 10_000


@pytest.mark.parametrize(("target", "stage", "status"), [
    ("v0.2.0", "migrate", "running"),
    ("v0.2.0", "start", "running"),
    # The new version crash-loops, the start stage fails, and the run is killed during its own rollback.
    ("v0.2.0-fault-crashloop", "start", "failed"),
])
def test_killed_run_is_refused_until_resume_settles_it(pytester: pytest.Pytester, baseline: Installation,
                                                       tmp_path: Path, target: str, stage: str, status: str) -> None:
    before = snapshot(baseline)
    proc = start_upgrade(baseline, tmp_path / "killed", "--ticket", "CHG-KILLED", target=target,
                         start_new_session=True)
    assert wait_for_stage(baseline, proc, stage, status), proc.communicate()[0]
    kill_session(proc.pid)  # power loss for the whole process tree; containers carry on
    proc.communicate(timeout=60)
    dead = journal(baseline)
    assert dead["outcome"] == "running" and dead["stages"][-1]["name"] == stage

    second = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--target", "v0.2.0")
    assert second.ret == pytest.ExitCode.USAGE_ERROR and not second.outcomes
    assert (f"ERROR: the upgrade run {dead['run_id']} (pid {dead['pid']}, ticket CHG-KILLED, to {target}) died in "
            f"stage {stage} without finishing; settle it first with `pytest suites/upgrade --resume`") in second.output
    audit = run_suite(pytester, "preflight", "--install-dir", str(baseline.directory))
    assert audit.ret == 69 and audit.named("skipped") == set(audit.outcomes), audit.output
    died = audit.lines_starting("UPGRADE DIED")
    assert len(died) == 1 and died[0].startswith(
        f"UPGRADE DIED IN {stage}: run --resume; the upgrade run {dead['run_id']} (pid {dead['pid']}, ticket CHG-KILLED, "
        f"to {target}) died in stage {stage}"), died
    checked = run_suite(pytester, "preflight", "--install-dir", str(baseline.directory), "--ignore-maintenance")
    assert checked.outcomes["test_no_other_upgrade_in_progress"] == "failed"
    assert "--resume" in checked.messages["test_no_other_upgrade_in_progress"]
    assert journal(baseline) == dead  # nothing started on top of it

    resumed = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--resume")
    assert resumed.ret == 0, resumed.output
    assert set(resumed.outcomes) == {"test_resume_unfinished_run"}
    settled = journal(baseline)
    assert settled["run_id"] == dead["run_id"] and settled["resumed"]["stage"] == stage
    # Killed mid-migration: quick or full by whether the migration had committed (open, by the instant
    # of the kill); killed in the start stage, the database is migrated: full. No escalation either way.
    tier = demanded_tier(settled["rollback"], before)
    assert tier == ("full" if stage == "start" else tier) != "emergency", settled["rollback"]
    assert settled["outcome"] == f"ROLLED BACK ({tier})" and settled["rollback"]["ok"], settled["rollback"]
    assert f"--resume: the interrupted run ended {settled['outcome']}" in resumed.output
    assert resumed.bundle["outcome"] == settled["outcome"]
    assert_back_as_before(baseline, before)

    again = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--resume")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: --resume: the last upgrade run ended '{settled['outcome']}'; there is nothing to resume" in again.output


def test_resume_of_a_run_an_older_suite_recorded_compares_its_md5_checksums(
        pytester: pytest.Pytester, baseline: Installation, tmp_path: Path) -> None:
    """A run killed under a suite version that recorded md5 checksums (a bare sum per table) is
    resumed by this one: its rollback computes md5 checksums to compare with them, finds the data
    as recorded and needs no emergency restore (compared with h64 sums, every table would differ)."""
    before = snapshot(baseline)
    with baseline.connect() as conn:
        legacy = dbstate.as_json(dbstate.table_states(conn, kind=dbstate.LEGACY_CHECKSUM))
    assert all(":" not in table["checksum"] for table in legacy.values())
    proc = start_upgrade(baseline, tmp_path / "killed", start_new_session=True)
    assert wait_for_stage(baseline, proc, "start"), proc.communicate()[0]
    kill_session(proc.pid)
    proc.communicate(timeout=60)
    dead = journal(baseline)
    for key in ("before", "at_stop"):  # as the older suite wrote them
        assert dead[key]["tables"].keys() == legacy.keys()
        dead[key]["tables"] = legacy
    (baseline.directory / JOURNAL).write_text(json.dumps(dead, indent=2))

    resumed = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--resume")
    assert resumed.ret == 0, resumed.output
    settled = journal(baseline)
    assert settled["outcome"] == "ROLLED BACK (full)" and settled["rollback"]["ok"], settled["rollback"]
    assert demanded_tier(settled["rollback"], before) == "full"
    assert "data differs" not in json.dumps(settled["rollback"])
    assert_back_as_before(baseline, before)


@pytest.mark.parametrize(("stage", "in_flight"), [
    ("migrate", "alembic -c"),  # `compose run ... backend alembic -c <ini> upgrade head`
    ("start", " up --detach"),  # `compose up --detach ...`, before the stage watches the new version start
])
def test_terminal_hang_up_mid_stage_the_run_still_upgrades(baseline: Installation, tmp_path: Path,
                                                           stage: str, in_flight: str) -> None:
    """The operator's SSH session drops while a stage's command runs: the run and that command go
    on, the upgrade completes by itself, and what the run printed after the hang-up is in the log."""
    reports = tmp_path / "reports"
    session = TerminalSession.start(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), "--install-dir", str(baseline.directory),
         "--target", "v0.2.0", f"--reports-dir={reports}", "-p", "no:cacheprovider"], ROOT)
    try:
        assert session.wait_until(lambda: stage_is(baseline, stage) and any(
            in_flight in line for line in _command_lines().values()), 900), session.text()[-3000:]
        run_pid = journal(baseline)["pid"]
        session.hang_up()
        assert wait_ended(run_pid, 900)
    finally:
        session.close()
    summaries = read_summaries(reports)
    assert summaries, f"the run died with its terminal; the journal says {journal(baseline)['outcome']}"
    summary = summaries[0]
    assert journal(baseline)["outcome"] == "UPGRADED" == summary["outcome"], summary["stages"]
    assert summary["exit_status"] == 0
    assert baseline.version == "0.2.0" == baseline.health().json()["version"]
    assert baseline.health().json()["status"] == "healthy"
    assert not (baseline.directory / LOCK).exists()
    log = Path(summary["artifacts"]["log"]).read_text()
    assert f"SIGHUP: the terminal hung up during stage {stage}; the run goes on to its end" in log
    assert "stage verify: post-flight checks" in log and "UPGRADED 0.1.0 -> v0.2.0" in log, log[-3000:]
    assert f"report bundle: {summary['artifacts']['html']}" in log
    assert "UPGRADED" not in session.text()
    assert Path(summary["artifacts"]["html"]).stat().st_size > 10_000


def test_killed_after_verifying_the_new_version_resume_completes_it(pytester: pytest.Pytester,
                                                                   baseline: Installation, tmp_path: Path) -> None:
    proc = start_upgrade(baseline, tmp_path / "killed", "-p", "tests.fault_injection",
                         "--inject-pause-before", "finish", start_new_session=True)
    assert wait_for_stage(baseline, proc, "verify", "passed"), proc.communicate()[0]
    kill_session(proc.pid)
    proc.communicate(timeout=60)
    assert journal(baseline)["outcome"] == "running" and (baseline.directory / LOCK).exists()
    resumed = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--resume")
    assert resumed.ret == 0 and "--resume: the interrupted run ended UPGRADED" in resumed.output, resumed.output
    assert resumed.properties["test_resume_unfinished_run"]["resume_outcome"] == "completed"
    assert journal(baseline)["outcome"] == "UPGRADED" and journal(baseline)["rollback"] is None
    assert baseline.version == "0.2.0" == baseline.health().json()["version"]
    assert not (baseline.directory / LOCK).exists()


def test_audit_of_a_held_then_killed_upgrade_reports_it(pytester: pytest.Pytester, baseline: Installation,
                                                       tmp_path: Path) -> None:
    """Cron's post-flight audit during a real upgrade held mid-backup (SIGSTOP): one MAINTENANCE
    line, exit 75, every check skipped with it; the lock and journal untouched. Once the run is
    killed: UPGRADE DIED IN backup, exit 69. ``--ignore-maintenance`` audits anyway."""
    proc = start_upgrade(baseline, tmp_path / "held", "--ticket", "CHG-HELD", start_new_session=True)
    try:
        assert wait_for_stage(baseline, proc, "backup"), proc.communicate()[0]
        os.killpg(proc.pid, signal.SIGSTOP)
        held, lock = journal(baseline), (baseline.directory / LOCK).read_text()
        stage = held["stages"][-1]
        line = (f"MAINTENANCE: upgrade {held['run_id']} to v0.2.0 (CHG-HELD) in stage {stage['name']} "
                f"since {stage['started']}")
        audit = run_suite(pytester, "postflight", "--install-dir", str(baseline.directory))
        assert audit.ret == 75 and audit.lines_starting("MAINTENANCE") == [line], audit.output
        assert audit.outcomes and audit.named("skipped") == set(audit.outcomes), audit.outcomes
        assert all(message.startswith(f"not audited during maintenance: upgrade {held['run_id']}")
                   for message in audit.messages.values()), audit.messages
        assert audit.bundle["outcome"] == "MAINTENANCE" and audit.bundle["exit_status"] == 75
        assert audit.bundle["maintenance"]["line"] == line
        anyway = run_suite(pytester, "postflight", "--install-dir", str(baseline.directory), "--ignore-maintenance",
                           "-m", "not slow")
        assert anyway.outcomes and not anyway.lines_starting("MAINTENANCE")
        assert anyway.named("skipped") == set(anyway.outcomes) & JOB_QUEUE_CHECKS  # the sandbox runs Celery
        assert journal(baseline) == held and (baseline.directory / LOCK).read_text() == lock
    finally:
        with contextlib.suppress(ProcessLookupError):  # the held run dies in its stage, as after a power loss
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    died = run_suite(pytester, "postflight", "--install-dir", str(baseline.directory))
    assert died.ret == 69 and died.named("skipped") == set(died.outcomes), died.output
    found = died.lines_starting("UPGRADE DIED")
    assert len(found) == 1 and found[0].startswith(
        f"UPGRADE DIED IN {stage['name']}: run --resume; the upgrade run {held['run_id']} (pid {held['pid']}"), found
    assert died.bundle["outcome"] == "UPGRADE DIED" and died.bundle["exit_status"] == 69


def test_two_runs_started_at_once_one_upgrades_the_other_changes_nothing_and_no_secret_is_on_a_command_line(
        baseline: Installation, tmp_path: Path) -> None:
    """Two runs at once: one upgrades, the refused one changes nothing. Meanwhile what `ps` shows is
    sampled every 10 ms (one upgrade run and one refused run, checked in the same scenario): no .env
    secret on any command line; processes that existed before (OpenWatch's own services) are left out."""
    secrets = [value for name, value in baseline.env.items() if is_secret_name(name) and len(value) >= 4]
    existing = set(_command_lines())
    runs = [start_upgrade(baseline, tmp_path / f"run{index}", "--ticket", f"CHG-{index}") for index in (1, 2)]
    seen = sample_command_lines(runs, existing)
    results = [(proc.pid, proc.returncode, output) for proc, (output, _) in
               ((proc, proc.communicate(timeout=900)) for proc in runs)]
    winners = [result for result in results if result[1] == 0]
    losers = [result for result in results if result[1] != 0]
    assert len(winners) == 1 and len(losers) == 1, [(pid, code, output[-2000:]) for pid, code, output in results]
    (winner_pid, _, winner_output), (_, loser_code, loser_output) = winners[0], losers[0]
    assert "UPGRADED 0.1.0 -> v0.2.0" in winner_output
    # Refused by the lock at its lock stage, or (when the winner took it before the loser had collected)
    # by name before anything ran.
    assert "another upgrade run holds" in loser_output, loser_output
    assert (loser_code, "NOT STARTED" in loser_output) in {(1, True), (pytest.ExitCode.USAGE_ERROR, False)}, loser_output
    recorded = journal(baseline)  # the winner's journal, never overwritten by the refused run
    assert recorded["pid"] == winner_pid and recorded["outcome"] == "UPGRADED"
    assert baseline.version == "0.2.0" == baseline.health().json()["version"]
    assert not (baseline.directory / LOCK).exists()
    commands = list(seen.values())
    assert sum("docker exec" in line for line in commands) >= 5  # the sampler saw the suite's commands
    assert any("pg_dump" in line for line in commands) and any("alembic" in line for line in commands)
    leaks = [line.split()[:3] for line in commands for secret in secrets if secret in line]
    assert not leaks, leaks


def test_corrupt_dump_given_to_restore_leaves_the_database_untouched(ready: Installation, baseline_dump: Path,
                                                                     tmp_path: Path) -> None:
    before = snapshot(ready)
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(baseline_dump.read_bytes()[: baseline_dump.stat().st_size * 2 // 3])
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(os.urandom(64 * 1024))
    for dump, message in ((garbage, "is not a readable pg_dump archive"), (truncated, "failed")):
        with pytest.raises(Problem) as refused:
            backup.restore(dump, "openwatch-db", "openwatch", "openwatch")
        assert message in str(refused.value) and "the database was not touched" in str(refused.value)
        assert "\n" not in str(refused.value)
    assert snapshot(ready) == before
    with ready.connect() as conn:
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'openwatch_%'").fetchall()


def test_corrupted_backup_is_never_restored_and_the_database_is_kept(pytester: pytest.Pytester,
                                                                    baseline: Installation) -> None:
    """The downgrade fails (v1.0.0-fault-downgrade) and the dump was damaged after its verification:
    the rollback must not restore it; it stops the app, keeps the database as the failed upgrade
    left it, and prints the manual steps."""
    run = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--target",
                    "v1.0.0-fault-downgrade", "-p", "tests.fault_injection", "--inject-corrupt-backup")
    assert run.ret == 1 and "ROLLBACK FAILED - MANUAL ACTION" in run.output, run.output
    assert "no longer matches its sha256" in run.output and "pg_restore -U openwatch -d openwatch" in run.output
    assert journal(baseline)["outcome"] == "FAILED - MANUAL ACTION" and run.bundle["outcome"] == "FAILED - MANUAL ACTION"
    with baseline.connect() as conn:  # the migrated database is still there, whole
        assert dbstate.alembic_revisions(conn) == [releases.BY_TAG["v1.0.0-fault-downgrade"].head]
        tables = dbstate.table_states(conn)
    assert tables["rule_results"].rows == SEEDED.scans * SEEDED.results_per_scan
    assert tables["hosts"].rows == SEEDED.hosts
    states = {name: baseline.compose("ps", "-a", "--format", "{{.State}}", name).stdout.strip()
              for name in ("database", "backend", "worker", "frontend")}
    assert states == {"database": "running", "backend": "exited", "worker": "exited", "frontend": "exited"}, states


def _command_lines() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # the process ended while being read
    return found


def sample_command_lines(procs: list[subprocess.Popen], existing: set[int],
                         deadline_s: float = 900) -> dict[int, str]:
    """The command line of every process that appears while ``procs`` run, read every 10 ms."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + deadline_s
    while any(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
        seen.update({pid: line for pid, line in _command_lines().items() if pid not in existing and line})
        time.sleep(0.01)
    return seen
