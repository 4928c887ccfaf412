"""The upgrade suite end to end on the sandbox: real upgrades succeed with data preserved, and every
real failure ends with the old version back, healthy, and every table's checksum as before."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from plugins import runmode
from runbook import dbstate, gitrepo
from runbook.redaction import is_secret_name
from sandbox import releases
from sandbox.installation import Installation
from sandbox.seed import SeedSize
from tests import browser
from tests.lock_holder import holding_the_lock
from tests.sandbox_state import contents, journal, snapshot
from tests.suite_runner import JOB_QUEUE_CHECKS, PREFLIGHT_CHECKS, ROOT, UPGRADE_TESTS, SuiteRun, run_suite

SEEDED = SeedSize()


def upgrade(pytester: pytest.Pytester, install: Installation, target: str, *extra: str) -> SuiteRun:
    return run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--target", target,
                     "--ticket", "CHG-E2E", *extra)


def assert_no_secret_anywhere(run: SuiteRun, install: Installation, texts_at_least: int = 6) -> None:
    """Every secret .env value, grepped in the terminal output and every file of the report bundle."""
    secrets = [value for name, value in install.env.items() if is_secret_name(name) and len(value) >= 4]
    assert secrets
    texts = {"terminal": run.output, **{path.name: path.read_text(errors="replace")
                                        for path in run.reports.iterdir() if path.is_file()}}
    assert len(texts) >= texts_at_least  # terminal, HTML, JUnit, JSON, ServiceNow export, index (and the CDEvent)
    leaks = [(where, secret[:4]) for where, text in texts.items() for secret in secrets if secret in text]
    assert not leaks, leaks


def assert_upgraded(run: SuiteRun, install: Installation, target: str) -> None:
    assert_no_secret_anywhere(run, install)
    assert run.ret == 0, run.output
    assert "UPGRADED" in run.output
    release = releases.BY_TAG[target]
    assert install.version == release.version == install.health().json()["version"]
    with install.connect() as conn:
        assert dbstate.alembic_revisions(conn) == [release.head]
    assert journal(install)["outcome"] == "UPGRADED"
    assert journal(install)["backup"]["verification"]["restored"] is True
    assert run.bundle["schema_version"] == 2 and run.bundle["outcome"] == "UPGRADED" == run.bundle["verdict"]
    assert run.bundle["change"]["version"] == {"before": journal(install)["before"]["version"], "after": release.version}
    assert run.bundle["change"]["revision"]["after"] == release.head
    assert run.bundle["target"] == target and run.bundle["revision_after"] == release.head
    assert run.bundle["backup"]["sha256"] and run.bundle["downtime"]["downtime_total_s"] >= 0
    testsuite = next(ET.parse(run.reports / "upgrade.junit.xml").getroot().iter("testsuite"))
    suite_properties = {prop.get("name"): prop.get("value") for prop in testsuite.findall("properties/property")}
    assert float(suite_properties["downtime_total_s"]) == run.bundle["downtime"]["downtime_total_s"]
    assert [stage["name"] for stage in run.bundle["stages"]][-1] == "finish"
    dump = Path(run.bundle["backup"]["dump"])
    assert dump.stat().st_mode & 0o777 == 0o600 and dump.parent.stat().st_mode & 0o777 == 0o700
    assert (Path(run.bundle["backup"]["config_dir"]) / ".env").stat().st_mode & 0o777 == 0o600
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


def assert_rolled_back(run: SuiteRun, install: Installation, before: dict, tier: str, failed_stage: str) -> None:
    assert_no_secret_anywhere(run, install)
    assert run.ret == 1, run.output
    assert run.outcomes[f"test_stage[{failed_stage}]"] == "failed", run.outcomes
    after_failure = [name for name, outcome in run.outcomes.items() if outcome == "skipped"]
    assert "test_stage[finish]" in after_failure
    assert f"ROLLED BACK ({tier})" in run.output, run.output
    assert journal(install)["outcome"] == f"ROLLED BACK ({tier})"
    assert journal(install)["rollback"]["ok"] is True
    assert run.bundle["outcome"] == f"ROLLED BACK ({tier})" and run.bundle["rollback"]["tier"] == tier
    assert run.bundle["failed_stage"]["name"] == failed_stage
    restored = {key: move["after"] for key, move in run.bundle["change"].items()}
    assert restored["version"] == before["version"] and restored["git_ref"] == before["ref"]
    assert [restored["revision"]] == before["revisions"]
    assert all(proof["note"] == "identical" for proof in run.bundle["data_integrity"])
    junit = run.properties[f"test_stage[{failed_stage}]"]
    assert junit["rollback_tier"] == tier and junit["rollback_ok"] == "True" and float(junit["rollback_seconds"]) > 0
    assert any(name.startswith("rollback_action_") and value.endswith("ok") for name, value in junit.items())
    failed_entry = next(t for t in run.bundle["tests"] if t["nodeid"].endswith(f"test_stage[{failed_stage}]"))
    assert failed_entry["outcome"] == "failed" and failed_entry["message"]
    # version, git ref, revision, every table's rows and checksum, and the schema, read by the test itself
    assert snapshot(install) == before
    assert install.health().json()["status"] == "healthy"
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


def assert_report_reads_as_a_change_record(run: SuiteRun, install: Installation, target: str, outcome: str,
                                          tone: str) -> None:
    """Chromium at 1280 px: the verdict card on the first screen; printed, the verdict on page one. Called
    on the runs of an upgrade and of a rollback that other tests make anyway (one run, both checks)."""
    html = Path(run.bundle["artifacts"]["html"])
    screenshot = ROOT / "reports" / f"screenshot-{outcome.split()[0].lower()}.png"
    screenshot.parent.mkdir(exist_ok=True)
    rendered, pages = browser.look_at(html, screenshot, tone)
    release = releases.BY_TAG[target]
    after = release if outcome == "UPGRADED" else releases.OLDEST
    title = f"CHG-E2E · upgrade 0.1.0 → {target} · {socket.gethostname()} · {outcome}"
    assert f"<title id=\"head-title\">{title}</title>" in rendered.dom
    card = rendered.dom[rendered.dom.index('id="verdict"'):rendered.dom.index("</section>")]
    assert f"verdict--{tone}" in card and f'verdict__word">{outcome}<' in card
    for shown in ("0.1.0", after.version, releases.OLDEST.head, after.head, "User-visible downtime",
                  "restored into a scratch database and compared table by table", "sha256"):
        assert shown in card, shown
    assert run.bundle["change"]["version"] == {"before": "0.1.0", "after": after.version}
    assert run.bundle["change"]["git_commit"]["after"] == gitrepo.git(install.directory, "rev-parse", "HEAD").strip()
    proofs = run.bundle["data_integrity"]
    assert proofs and all(proof["expected"] for proof in proofs)
    assert f"Data integrity: all {len(proofs)} tables accounted for" in rendered.dom
    assert 'id="upgrade-timeline"' in rendered.dom and "seconds from the first stop of the app" in rendered.dom
    if tone == "rolledback":
        assert "Failed stage" in card and "alembic upgrade head failed" in card
        assert "rollback: start the old version and wait healthy" in rendered.dom
        assert all(proof["note"] == "identical" for proof in proofs)
    assert outcome in pages[0] and "CHG-E2E" in pages[0] and "Data integrity" in "".join(pages)
    print(f"report {outcome}: {html.stat().st_size} bytes, first screen in {rendered.seconds:.2f}s, "
          f"{len(pages)} PDF pages, {screenshot.with_suffix('.pdf').stat().st_size} bytes")


def test_upgrades_through_every_release_preserving_data(pytester: pytest.Pytester, baseline: Installation) -> None:
    with baseline.connect() as conn:
        failed_results = conn.execute("SELECT count(*) FROM scan_results WHERE status = 'fail'").fetchone()[0]
    first = upgrade(pytester, baseline, "v0.2.0")
    assert_upgraded(first, baseline, "v0.2.0")
    assert_report_reads_as_a_change_record(first, baseline, "v0.2.0", "UPGRADED", "good")
    with baseline.connect() as conn:
        assert conn.execute("SELECT count(*) FROM hosts WHERE os_family IS NOT NULL").fetchone()[0] == SEEDED.hosts
        assert conn.execute("SELECT sum(failed_count) FROM scans").fetchone()[0] == failed_results
    assert_upgraded(upgrade(pytester, baseline, "v0.2.1"), baseline, "v0.2.1")
    assert_upgraded(upgrade(pytester, baseline, "v1.0.0"), baseline, "v1.0.0")
    with baseline.connect() as conn:
        tables = dbstate.table_states(conn)
    assert tables["rule_results"].rows == SEEDED.scans * SEEDED.results_per_scan and "scan_results" not in tables
    assert "openwatch-celery-beat" not in baseline.compose("ps", "-a", "--format", "{{.Name}}").stdout


def test_upgrades_from_oldest_to_major_in_one_step(pytester: pytest.Pytester, baseline: Installation) -> None:
    run = upgrade(pytester, baseline, "v1.0.0")
    assert_upgraded(run, baseline, "v1.0.0")
    with baseline.connect() as conn:
        assert conn.execute("SELECT count(*) FROM hosts WHERE os_family = 'rhel'").fetchone()[0] == SEEDED.hosts // 4


# The report of one rolled-back run is also looked at in a browser (the verdict card of a rollback).
@pytest.mark.parametrize(("target", "failed_stage", "tier", "why"), [pytest.param(*case, id=case[0]) for case in (
    ("v0.2.0-fault-migration", "migrate", "quick", "alembic upgrade head failed"),
    # The start stage names the rule that judged the new version failed (never Docker's late verdict).
    # The crash rule words what the 0.25 s poll saw: the exit itself ("exited with code 1 after 0.8 s")
    # or, when Docker had already restarted it, "exited and was restarted" (seen in CI); same rule.
    ("v0.2.0-fault-crashloop", "start", "full", "did not start: crash: openwatch-backend exited "),
    ("v0.2.0-fault-health", "start", "full",
     "did not start: sustained failure: backend answered /health 503 (status 'degraded')"),
    ("v1.0.0-fault-downgrade", "verify", "emergency", "/api/scans/aegis/health with a valid token answered 503"),
)])
def test_fault_release_is_rolled_back_with_data_identical(pytester: pytest.Pytester, baseline: Installation,
                                                          target: str, failed_stage: str, tier: str, why: str) -> None:
    before = snapshot(baseline)
    run = upgrade(pytester, baseline, target)
    assert_rolled_back(run, baseline, before, tier, failed_stage)
    message = run.messages[f"test_stage[{failed_stage}]"]
    assert why in message and "\n" not in message, message
    if target == "v0.2.0-fault-crashloop":
        # The failed backend's own log, read before the rollback replaced its container: why it exited.
        assert "ImportError: cannot import name 'scanner_engine' from 'app'" in run.output, run.output[-3000:]
    if target == "v0.2.0-fault-migration":
        assert_report_reads_as_a_change_record(run, baseline, target, f"ROLLED BACK ({tier})", "rolledback")


FOUND_AFTER_FAILURE = [
    "column hosts.os_family is still there (text not null default 'unknown'::text)",
    "column scans.failed_count is still there (integer not null default 0)",
    "enum scan_state is still there ('queued', 'running', 'done')",
    "index ix_scans_started_at is still there (CREATE INDEX ix_scans_started_at ON public.scans USING btree "
    "(started_at))",
]


def test_a_migration_that_committed_part_of_its_run_is_rolled_back_to_the_recorded_schema(
        pytester: pytest.Pytester, baseline: Installation) -> None:
    """v0.2.0-fault-partial-migration commits 0003 and 0004 and builds an index and an enum outside
    its transaction before it fails. The suite reads what the database is (at 0004, not rolled back)
    and downgrades; that gives every row back exactly, but the index and the enum no downgrade
    knows about are still there. Data alone would call this "ROLLED BACK (full)"; the schema
    fingerprint escalates to the backup, and the test's own pg_dump and row digests prove the end."""
    before = snapshot(baseline)
    run = upgrade(pytester, baseline, "v0.2.0-fault-partial-migration")
    assert_rolled_back(run, baseline, before, "emergency", "migrate")
    assert "uq_hosts_ip_address" in run.messages["test_stage[migrate]"]
    rollback = journal(baseline)["rollback"]
    assert rollback["requested"] == "full", rollback
    assert rollback["found"] == {"revisions": ["0004_scan_failed_count"], "schema_differences": FOUND_AFTER_FAILURE}
    left_behind = FOUND_AFTER_FAILURE[2:]
    assert rollback["differences"] == left_behind
    assert rollback["problem"] == f"schema differs from the recorded state in 2 places: {'; '.join(left_behind)}"
    assert [(a["name"], a["ok"]) for a in rollback["actions"]] == [
        ("stop the new app containers", True), ("alembic downgrade 0002_scan_indexes with the NEW image", True),
        ("check out the recorded git ref", True), ("re-tag the recorded images", True),
        ("stop whatever app container runs", True), ("compare the database with the state at the stop", False),
        ("stop the app containers (database container kept)", True),
        ("restore the verified backup into a recreated database", True),
        ("check out the recorded git ref", True), ("re-tag the recorded images", True),
        ("stop whatever app container runs", True), ("compare the database with the state at the stop", True),
        ("start the old version and wait healthy", True), ("verify restored state", True)]
    properties = run.properties["test_stage[migrate]"]
    assert [properties[f"rollback_difference_{i}"] for i in (1, 2)] == left_behind
    assert "  not as recorded:\n    " + "\n    ".join(left_behind) in run.output, run.output
    assert "database found after the failure at revision 0004_scan_failed_count, schema differing from the " \
           "recorded in 4 places" in run.output
    assert "schema and data identical" in run.output
    assert run.bundle["rollback"]["differences"] == left_behind


def test_old_images_pruned_before_the_rollback_escalate_then_stop_safe(pytester: pytest.Pytester,
                                                                      baseline: Installation) -> None:
    """The quick tier meets docker's ImageNotFound (someone pruned the old images mid-upgrade): the
    rollback escalates to the emergency tier, which restores the database, meets it again and stops
    safe with manual steps; the journal says so and the lock stays for the person who must look."""
    before = snapshot(baseline)
    run = upgrade(pytester, baseline, "v0.2.0-fault-migration", "-p", "tests.fault_injection",
                  "--inject-lost-old-images")
    assert_no_secret_anywhere(run, baseline)
    assert run.ret == 1 and "INTERNALERROR" not in run.output, run.output
    assert run.outcomes["test_stage[migrate]"] == "failed", run.output
    recorded = journal(baseline)
    assert recorded["outcome"] == "FAILED - MANUAL ACTION" and recorded["rollback"]["tier"] == "emergency"
    assert recorded["rollback"]["problem"].startswith("ImageNotFound: ")
    assert [(a["name"], a["ok"]) for a in recorded["rollback"]["actions"]] == [
        ("check out the recorded git ref", True), ("re-tag the recorded images", False),
        ("stop the app containers (database container kept)", True),
        ("restore the verified backup into a recreated database", True),
        ("check out the recorded git ref", True), ("re-tag the recorded images", False)]
    assert "ROLLBACK FAILED - MANUAL ACTION" in run.output and "pg_restore -U openwatch -d openwatch" in run.output
    assert (baseline.directory / ".openwatch-upgrade.lock").exists()
    assert snapshot(baseline)["tables"] == before["tables"]  # the emergency tier's restore ran


def test_full_backup_disk_stops_before_any_change(pytester: pytest.Pytester, baseline: Installation) -> None:
    before = snapshot(baseline)
    run = upgrade(pytester, baseline, "v0.2.0", "-p", "tests.fault_injection", "--inject-full-backup-disk")
    assert_rolled_back(run, baseline, before, "none", "backup")
    message = run.messages["test_stage[backup]"]
    assert "No space left on device" in message and "the partial file was removed" in message
    assert "free at least" in message and "(the database's size)" in message


def test_preflight_failure_changes_nothing(pytester: pytest.Pytester, baseline: Installation) -> None:
    env_file = baseline.directory / ".env"
    env_file.write_text("".join(f"{line}\n" for line in env_file.read_text().splitlines()
                                if not line.startswith("OPENWATCH_ENCRYPTION_KEY=")))
    before = snapshot(baseline)
    containers_before = baseline.compose("ps", "--format", "{{.ID}} {{.State}}").stdout
    backups_before = sorted((baseline.directory / "backups" / "postgres").iterdir())
    journal_file = baseline.directory / ".openwatch-upgrade" / "journal.json"
    journal_before = journal_file.read_text() if journal_file.exists() else None
    try:
        run = upgrade(pytester, baseline, "v0.2.0")
    finally:
        baseline.set_env("OPENWATCH_ENCRYPTION_KEY", "sandbox-test-key")
    assert run.ret == 1
    assert run.outcomes["test_env_has_every_variable_the_target_expects"] == "failed"
    assert run.outcomes["test_stage[gate]"] == "failed"
    assert {name for name, outcome in run.outcomes.items() if outcome == "skipped"} == {
        f"test_stage[{stage}]" for stage in ("lock_and_record", "backup", "verify_backup", "checkout", "build",
                                             "drain_and_stop", "migrate", "start", "verify", "finish")
    } | (JOB_QUEUE_CHECKS & set(run.outcomes))  # not applicable: the sandbox runs Celery
    assert snapshot(baseline) == before
    assert baseline.compose("ps", "--format", "{{.ID}} {{.State}}").stdout == containers_before
    assert sorted((baseline.directory / "backups" / "postgres").iterdir()) == backups_before
    assert (journal_file.read_text() if journal_file.exists() else None) == journal_before  # never took the lock
    assert run.bundle["outcome"] == "NOT STARTED" and run.bundle["backup"] is None
    assert_no_secret_anywhere(run, baseline)


def test_a_partial_selection_is_refused_and_changes_nothing(pytester: pytest.Pytester,
                                                            baseline: Installation) -> None:
    """`-k test_stage` used to drop the pre-flight checks, and the gate, seeing no failure, let the upgrade
    go on. Now it is refused before anything is touched; --collect-only still lists the whole suite."""
    before = snapshot(baseline)
    containers_before = started_containers(baseline)
    run = upgrade(pytester, baseline, "v0.2.1", "-k", "test_stage")
    assert run.ret == pytest.ExitCode.USAGE_ERROR and not run.outcomes, run.output
    assert ("ERROR: -k: the upgrade suite runs whole and in order, or not at all; this one leaves out "
            f"{PREFLIGHT_CHECKS} of its {UPGRADE_TESTS} tests (test_backend_reports_healthy, ") in run.output
    listed = upgrade(pytester, baseline, "v0.2.1", "--collect-only", "-q")
    own_runs = len(runmode.OWN_TESTS)  # --rollback-to, --resume, --plan, --pg-rollback: each its own test
    assert listed.ret == 0 and \
        f"{UPGRADE_TESTS}/{UPGRADE_TESTS + own_runs} tests collected ({own_runs} deselected)" in listed.output, \
        listed.output
    assert not (baseline.directory / ".openwatch-upgrade").exists()
    assert not (baseline.directory / ".openwatch-upgrade.lock").exists()
    assert started_containers(baseline) == containers_before
    assert snapshot(baseline) == before


def started_containers(install: Installation) -> list[str]:
    """Each container's id, state and start time: a container stopped, recreated or restarted changes."""
    ids = install.compose("ps", "-a", "--quiet").stdout.split()
    inspect = ["docker", "inspect", "--format", "{{.Id}} {{.State.Status}} {{.State.StartedAt}}", *ids]
    return sorted(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.splitlines())


def test_a_live_holder_is_named_before_the_target_is_judged(pytester: pytest.Pytester,
                                                            baseline: Installation) -> None:
    """As a second run started while the first has checked the target out: VERSION already says it."""
    alone = upgrade(pytester, baseline, "v0.1.0")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --target: the installation is already at 0.1.0 (v0.1.0); there is nothing to upgrade" in alone.output
    assert "--rollback-to" not in alone.output
    with holding_the_lock(baseline.directory, "v0.1.0", "CHG-FIRST", "build") as holder:
        second = upgrade(pytester, baseline, "v0.1.0")
    assert second.ret == pytest.ExitCode.USAGE_ERROR and not second.outcomes
    assert (f"ERROR: another upgrade run holds {baseline.directory / '.openwatch-upgrade.lock'} (pid {holder.pid}, "
            f"host ") in second.output and ", ticket CHG-FIRST, stage build, since " in second.output, second.output
    assert "already at" not in second.output


def test_rollback_to_undoes_a_finished_upgrade_and_keeps_later_writes(pytester: pytest.Pytester,
                                                                      baseline: Installation) -> None:
    assert_upgraded(upgrade(pytester, baseline, "v0.2.0"), baseline, "v0.2.0")
    with baseline.connect() as conn:
        conn.execute("INSERT INTO hosts (hostname, ip_address, os_family) "
                     "VALUES ('rhel-9999', '198.51.100.250', 'rhel')")
    wrong = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--rollback-to", "v0.0.9")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --rollback-to: the last upgrade started from v0.1.0 (0.1.0), not v0.0.9" in wrong.output
    run = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--rollback-to", "v0.1.0")
    assert run.ret == 0 and "ROLLED BACK (full)" in run.output, run.output
    assert set(run.outcomes) == {"test_rollback_to_recorded_release"}
    assert baseline.version == "0.1.0" == baseline.health().json()["version"]
    with baseline.connect() as conn:
        assert dbstate.alembic_revisions(conn) == [releases.OLDEST.head]
        assert conn.execute("SELECT count(*) FROM hosts").fetchone()[0] == SEEDED.hosts + 1
        assert conn.execute("SELECT ip_address FROM hosts WHERE hostname = 'rhel-9999'").fetchone() == (
            "198.51.100.250",)


def write_while_the_old_version_serves(install: Installation, deadline_s: float = 300) -> dict:
    """As a live OpenWatch does (its scheduler, its users): once the backup is taken, add three users
    and rename a host, then read the database as it will be at the stop. Returns what was read
    (without the schema, ref and version, which the writes do not change) and when the writes ended.

    The read is one REPEATABLE READ transaction begun right after the writes, so it sees them and
    nothing later even when a loaded machine makes it slower than the stages before the stop."""
    journal_file = install.directory / ".openwatch-upgrade" / "journal.json"
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        stages = json.loads(journal_file.read_text()).get("stages", []) if journal_file.exists() else []
        if any(stage["name"] == "verify_backup" for stage in stages):
            break
        time.sleep(0.05)
    else:
        raise TimeoutError("the upgrade never reached verify_backup")
    with install.connect() as conn:
        for n in range(3):
            conn.execute("INSERT INTO users (username, email, password_hash, role, created_at) "
                         "VALUES (%s, %s, 'pbkdf2_sha256$1$late$x', 'viewer', now())",
                         (f"late-user-{n}", f"late-user-{n}@openwatch.invalid"))
        conn.execute("UPDATE hosts SET hostname = 'renamed-after-the-backup' WHERE id = (SELECT min(id) FROM hosts)")
        finished = time.time()
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            state = {"tables": dbstate.table_states(conn), "contents": contents(conn),
                     "revisions": dbstate.alembic_revisions(conn)}
    return {"snapshot": state, "finished": finished}


def test_rows_written_after_the_backup_survive_the_emergency_restore(pytester: pytest.Pytester,
                                                                      baseline: Installation) -> None:
    """The backup is taken while the old version serves; what it writes until the stop is kept at
    the stop and put back on top of the backup by the emergency tier, so the rollback ends with the
    database exactly as it was when the app stopped, not as it was at the backup."""
    before = snapshot(baseline)
    with ThreadPoolExecutor(max_workers=1) as pool:
        writer = pool.submit(write_while_the_old_version_serves, baseline)
        run = upgrade(pytester, baseline, "v1.0.0-fault-downgrade")
        written = writer.result(timeout=60)
    record = journal(baseline)
    stopped_at = next(stage["t0"] for stage in record["stages"] if stage["name"] == "drain_and_stop")
    assert written["finished"] < stopped_at, "the test's writes must land before the app stops"
    assert record["delta_backup"]["tables"] == ["hosts", "users"]
    assert Path(record["delta_backup"]["dump"]).stat().st_mode & 0o777 == 0o600
    unchanged_by_the_writes = {key: before[key] for key in ("schema", "ref", "version")}
    expected = {**written["snapshot"], **unchanged_by_the_writes}
    assert expected["contents"] != before["contents"]
    assert_rolled_back(run, baseline, expected, "emergency", "verify")
    with baseline.connect() as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE username LIKE 'late-user-%'").fetchone()[0] == 3


def container_start_times(install: Installation) -> dict[str, str]:
    ids = install.compose("ps", "--all", "--quiet").stdout.split()
    found = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}}", *ids],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    return dict(line.split(" ", 1) for line in found.splitlines())


def test_plan_changes_nothing_and_says_how_each_stage_would_be_undone(pytester: pytest.Pytester,
                                                                     baseline: Installation) -> None:
    before = snapshot(baseline)
    started = container_start_times(baseline)
    backups_before = sorted((baseline.directory / "backups" / "postgres").iterdir())
    journal_dir = baseline.directory / ".openwatch-upgrade"
    journal_before = sorted(journal_dir.iterdir()) if journal_dir.exists() else []
    run = upgrade(pytester, baseline, "v0.2.0", "--plan")
    assert run.ret == 0, run.output
    assert run.outcomes == {"test_plan": "passed"}, run.outcomes
    assert f"PLAN (nothing was changed): upgrade {baseline.directory} from {before['version']}" in run.output
    assert re.findall(r"^\s+\d+\. (\w+): ", run.output, re.MULTILINE) == [
        "gate", "lock_and_record", "backup", "verify_backup", "checkout", "build", "drain_and_stop", "migrate",
        "start", "verify", "finish"]
    assert f"pre-flight checks ({PREFLIGHT_CHECKS})" in run.output
    assert "if it fails: rollback tier quick, or full if the database was migrated" in run.output
    downgrade = f"alembic downgrade {before['revisions'][0]} with the NEW image"
    assert downgrade not in run.output  # the tier as recorded (quick) is listed, not the escalations
    assert "if it fails: not rolled back: the new version is verified" in run.output
    html = Path(run.bundle["artifacts"]["html"]).read_text()
    assert 'id="plan"' in html and "drain_and_stop" in html and "stop whatever app container runs" in html
    # Nothing changed: the data, schema, version and ref; no container restarted; no backup, journal or lock.
    assert snapshot(baseline) == before
    assert container_start_times(baseline) == started
    assert sorted((baseline.directory / "backups" / "postgres").iterdir()) == backups_before
    assert (sorted(journal_dir.iterdir()) if journal_dir.exists() else []) == journal_before
    assert not (baseline.directory / ".openwatch-upgrade.lock").exists()
    assert_no_secret_anywhere(run, baseline, texts_at_least=5)  # no change was made: no change-system export
