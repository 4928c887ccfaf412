"""The runbook's pure logic: version order, Alembic graph, tier choice, data comparison, journal, lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from runbook import alembic_scripts, backup, backup_checks, containers, drain, state, versions
from runbook.downtime import outages
from runbook.errors import Problem
from runbook.release_checks import LOCK_FILE, no_upgrade_running
from runbook.journal import Journal
from runbook import lock as lock_module
from runbook.lock import RunLock
from runbook.profile import OPENWATCH_SERVICES, Service, service_problem
from runbook.rollback import DatabaseFinding, choose_tier
from runbook.timeline import render
from runbook.upgrade import STAGES, error_line


@pytest.mark.parametrize(("older", "newer"), [
    ("v0.1.0", "v0.2.0"), ("v0.2.0", "v0.2.1"), ("v0.2.1", "v1.0.0"), ("v0.2.0-fault-health", "v0.2.0"),
    ("0.1.0", "v0.2.0-fault-migration"), ("v1.9.9", "v1.10.0"),
    ("v1.0.0-rc2", "v1.0.0-rc10"), ("v1.0.0-rc.2", "v1.0.0-rc.10"), ("v1.0.0-rc10", "v1.0.0"),
    ("0.1.0-alpha.1", "0.1.0-alpha.1.1"), ("0.1.0-alpha.9", "0.1.0-alpha.beta"), ("0.1.0-alpha.12", "0.1.0-beta.2"),
])
def test_versions_order(older: str, newer: str) -> None:
    assert versions.parse(older) < versions.parse(newer)


def test_versions_print_as_tagged_and_equal_pre_releases_are_equal() -> None:
    assert str(versions.parse("v1.0.0-rc10")) == "1.0.0-rc10" and str(versions.parse("v1.0.0")) == "1.0.0"
    assert versions.parse("v1.0.0-rc.2") == versions.parse("1.0.0-rc.2")


def test_versions_reject_non_versions_and_suggest_near_tags() -> None:
    assert versions.parse("main") is None and versions.parse("v1.2") is None
    assert versions.nearest("v0.2.7", ["v0.1.0", "v0.2.0", "v0.2.1", "v1.0.0"])[:2] == ["v0.2.1", "v0.2.0"]


def write_revision(folder: Path, revision: str, down: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{revision}.py").write_text(f"revision = {revision!r}\ndown_revision = {down!r}\n")


def test_alembic_heads_and_merge_revisions(tmp_path: Path) -> None:
    versions_dir = tmp_path / alembic_scripts.VERSIONS_DIR
    write_revision(versions_dir, "a1", None)
    write_revision(versions_dir, "b2", "a1")
    assert alembic_scripts.heads(alembic_scripts.scripts(tmp_path)) == ["b2"]
    write_revision(versions_dir, "c3", "a1")
    assert alembic_scripts.heads(alembic_scripts.scripts(tmp_path)) == ["b2", "c3"]
    write_revision(versions_dir, "d4", ("b2", "c3"))  # a merge revision
    graph = alembic_scripts.scripts(tmp_path)
    assert alembic_scripts.heads(graph) == ["d4"] and graph["d4"].down_revisions == ("b2", "c3")


AS_RECORDED = DatabaseFinding(["0002"], revision_moved=False, schema_differences=[])
MOVED = DatabaseFinding(["0004"], revision_moved=True, schema_differences=["column hosts.os_family is still there"])
DRIFTED = DatabaseFinding(["0002"], revision_moved=False, schema_differences=["index ix_scans_started_at is still there"])


@pytest.mark.parametrize(("stage", "found", "tier"), [
    ("gate", AS_RECORDED, "none"), ("backup", AS_RECORDED, "none"), ("verify_backup", AS_RECORDED, "none"),
    ("checkout", AS_RECORDED, "ref"), ("build", AS_RECORDED, "ref"), ("drain_and_stop", AS_RECORDED, "quick"),
    ("migrate", AS_RECORDED, "quick"), ("migrate", MOVED, "full"), ("start", MOVED, "full"),
    ("verify", MOVED, "full"), ("start", AS_RECORDED, "quick"),
    # Unreadable: a stage that migrated gets the tier that can undo a migration; others their own.
    ("migrate", None, "full"), ("build", None, "ref"),
])
def test_rollback_tier_follows_what_the_failed_stage_changed(stage: str, found: DatabaseFinding | None,
                                                              tier: str) -> None:
    assert choose_tier(stage, found) == tier


@pytest.mark.parametrize(("stage", "found", "tier"), [
    # A migration that committed its first revisions and failed in a later one: whatever stage failed,
    # the revision the database says decides, not the assumption that PostgreSQL rolled it all back.
    ("migrate", MOVED, "full"), ("drain_and_stop", MOVED, "full"), ("build", MOVED, "full"),
    # DDL committed outside Alembic's record (CREATE INDEX CONCURRENTLY in an autocommit block, then a
    # failure before the stamp): no downgrade knows about it, only the backup does.
    ("migrate", DRIFTED, "emergency"), ("start", DRIFTED, "emergency"), ("checkout", DRIFTED, "emergency"),
])
def test_rollback_tier_follows_what_the_database_is_found_to_be(stage: str, found: DatabaseFinding,
                                                                 tier: str) -> None:
    assert choose_tier(stage, found) == tier


def test_every_stage_has_a_declared_change_kind() -> None:
    assert {stage.changes for stage in STAGES} <= {"nothing", "code", "containers", "database"}
    assert [stage.name for stage in STAGES][0] == "gate" and [stage.name for stage in STAGES][-1] == "finish"


def install_state(tables: dict[str, tuple[int, str]]) -> state.InstallState:
    return state.InstallState("0.1.0", "v0.1.0", "abc", "0002", {}, {},
                              {name: {"rows": rows, "checksum": checksum} for name, (rows, checksum) in tables.items()})


def test_rows_preserved_accepts_a_renamed_table_and_flags_a_lost_row() -> None:
    before = install_state({"hosts": (600, "a"), "scan_results": (12000, "b")})
    renamed = install_state({"hosts": (600, "c"), "rule_results": (12000, "d")})
    assert state.rows_preserved(before, renamed) == []
    lost = install_state({"hosts": (599, "c"), "rule_results": (11999, "d")})
    assert state.rows_preserved(before, lost) == [
        "hosts: 600 rows before, 599 after", "scan_results (12000 rows) is gone and no new table holds its rows"]


def test_data_differences_sees_a_changed_checksum() -> None:
    before = install_state({"hosts": (600, "a")})
    assert state.data_differences(before, install_state({"hosts": (600, "a")})) == []
    assert state.data_differences(before, install_state({"hosts": (600, "z")})) == ["hosts"]


def test_journal_is_written_only_by_the_lock_holder_and_keeps_the_previous_run(tmp_path: Path) -> None:
    previous = Journal.start(tmp_path, "v0.2.0", "CHG-0")
    previous.take_over()
    previous.finish("UPGRADED")
    refused = Journal.start(tmp_path, "v0.2.1", "CHG-1")
    refused.stage_started("gate")
    refused.finish("NOT STARTED")  # never took the lock: the file on disk is still the previous run's
    assert Journal.load(tmp_path).data["ticket"] == "CHG-0"
    winner = Journal.start(tmp_path, "v0.2.1", "CHG-2")
    winner.data["run_id"] = "second"
    winner.take_over()
    assert Journal.load(tmp_path).data["ticket"] == "CHG-2"
    kept = json.loads((tmp_path / ".openwatch-upgrade" / f"journal-{previous.data['run_id']}.json").read_text())
    assert kept["ticket"] == "CHG-0" and kept["outcome"] == "UPGRADED"


def test_journal_is_rewritten_whole_and_records_stages(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, "v0.2.0", "CHG-1")
    journal.take_over()
    journal.stage_started("backup")
    journal.stage_ended("backup", "passed", 1.234)
    reread = Journal.load(tmp_path)
    assert reread.completed() == ["backup"] and reread.data["stages"][0]["seconds"] == 1.23
    assert not list(journal.path.parent.glob("*.tmp"))
    assert json.loads(journal.path.read_text())["ticket"] == "CHG-1"


def _try_lock(install_dir: str, queue: multiprocessing.Queue) -> None:
    try:
        RunLock(Path(install_dir)).acquire("CHG-2")
        queue.put("acquired")
    except Problem as problem:
        queue.put(str(problem))


def test_second_run_cannot_take_the_lock(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire("CHG-1")
    queue: multiprocessing.Queue = multiprocessing.Queue()
    other = multiprocessing.Process(target=_try_lock, args=(str(tmp_path), queue))
    other.start()
    other.join(10)
    message = queue.get(timeout=5)
    assert message.startswith(f"another upgrade run holds {tmp_path / LOCK_FILE} (pid {os.getpid()}, host "
                              f"{socket.gethostname()}, ticket CHG-1, stage unknown, since "), message
    lock.release()
    assert not lock.path.exists()


def test_prune_keeps_the_newest_even_when_old(tmp_path: Path) -> None:
    for age_days, name in ((30, "a.dump"), (20, "b.dump"), (10, "c.dump"), (1, "d.dump")):
        (tmp_path / name).write_bytes(b"x")
        stamp = (tmp_path / name).stat().st_mtime - age_days * 86400
        os.utime(tmp_path / name, (stamp, stamp))
    assert sorted(backup.prune(tmp_path, retention_days=7)) == ["a.dump", "b.dump", "c.dump"]
    assert [p.name for p in tmp_path.iterdir()] == ["d.dump"]
    (tmp_path / "d.dump").touch()
    os.utime(tmp_path / "d.dump", (0, 0))
    assert backup.prune(tmp_path, retention_days=7) == []


def test_a_delta_is_no_backup_and_goes_with_the_backup_it_completes(tmp_path: Path) -> None:
    """The rows written after a backup are a few tables' rows: never counted or kept as the newest
    backup (one newer than every dump would otherwise be "the newest" and let the last dump go)."""
    old, new = tmp_path / "pre_upgrade_0.1.0_1.dump", tmp_path / "pre_upgrade_0.2.0_2.dump"
    files = [(old, 30), (backup.delta_path(old), 30), (new, 20), (backup.delta_path(new), 1),
             (tmp_path / "pre_upgrade_0.2.0_2.since-backup.dump", 1)]  # as runs before the own suffix named it
    for path, age_days in files:
        path.write_bytes(b"x")
        stamp = path.stat().st_mtime - age_days * 86400
        os.utime(path, (stamp, stamp))
    assert backup.delta_path(new).name == "pre_upgrade_0.2.0_2.since-backup.delta"
    assert [found.path for found in backup_checks.backups(tmp_path)] == [new, old]
    assert sorted(backup.prune(tmp_path, retention_days=7)) == [old.name, backup.delta_path(old).name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p, _ in files[2:])


@pytest.mark.parametrize(("command", "value"), [
    (("python3", "-m", "celery", "-A", "app.worker", "worker", "-Q", "default,scans"), "default,scans"),
    (("celery --app=app.celery_app worker --queues=a,b",), "a,b"),
    (("celery", "worker"), None),
])
def test_worker_queues_come_from_its_command(command: tuple[str, ...], value: str | None) -> None:
    assert containers.option_value(command, "-Q", "--queues") == value


def test_outages_are_cut_from_samples_and_attributed_to_stages() -> None:
    samples = [(0.0, True), (0.1, False), (0.2, False), (0.3, True), (0.4, False), (0.5, False)]
    marks = [(0.0, "drain_and_stop"), (0.25, "migrate"), (0.45, "start")]
    found = outages(samples, marks)
    assert [(o.start, o.end, o.stages) for o in found] == [
        (0.1, 0.3, ("drain_and_stop", "migrate")), (0.4, 0.5, ("migrate", "start"))]


def test_timeline_draws_stages_outages_and_rollback_actions() -> None:
    journal = {
        "started_epoch": 100.0,
        "stages": [{"name": "backup", "status": "passed", "t0": 100.0, "t1": 101.0},
                   {"name": "start", "status": "failed", "t0": 101.0, "t1": 104.0}],
        "rollback": {"actions": [{"name": "start the old version", "ok": True, "t0": 104.0, "t1": 106.0}]},
        "downtime": {"origin_epoch": 100.5, "intervals": [[1.0, 5.0]]},
    }
    svg = render(journal)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="stage"') == 3 and svg.count('class="outage"') == 1
    assert "rollback: start the old version" in svg and "outage 4.0 s" in svg and "#c0392b" in svg
    assert render({"stages": []}) == ""


@pytest.mark.parametrize("hours", [1, 6.5, 30, 24 * 9])
def test_timeline_of_a_long_run_has_at_most_a_dozen_axis_labels(hours: float) -> None:
    journal = {"started_epoch": 0.0, "stages": [{"name": "migrate", "status": "failed", "t0": 0.0, "t1": hours * 3600}]}
    svg = render(journal)
    assert 'class="stage"' in svg and 2 <= svg.count('text-anchor="middle"') <= 13


def test_error_line_names_the_error_not_the_trailing_url() -> None:
    output = ("INFO  [alembic] Running upgrade\nTraceback (most recent call last):\n  File x\n"
              "sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) could not create unique index\n"
              "DETAIL:  Key (ip_address)=(198.51.100.1) is duplicated.\n"
              "(Background on this error at: https://sqlalche.me/e/14/gkpj)\n")
    assert error_line(output).startswith("sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation)")


def test_error_line_skips_the_compose_clis_own_warnings() -> None:
    """Seen on the real OpenWatch: the failing migration's one line was Compose's note on orphans."""
    output = ('time="2026-11-26T00:10:36Z" level=warning msg="Found orphan containers ([openwatch-redis])"\n'
              "  FAILED: Path doesn't exist: alembic.  Please use the 'init' command to create a new scripts folder.\n")
    assert error_line(output).startswith("FAILED: Path doesn't exist: alembic.")
    assert error_line("just one line") == "just one line" and error_line("") == "no output"


def test_stale_lock_is_reported_and_only_taken_over_when_asked(tmp_path: Path) -> None:
    assert no_upgrade_running(tmp_path) is None
    lock = tmp_path / LOCK_FILE
    # one past the kernel's largest pid: a holder that cannot be alive
    lock.write_text(json.dumps({"pid": 4_194_305, "host": socket.gethostname(), "started": "t0",
                                "ticket": "CHG-OLD"}))
    with pytest.raises(Problem, match="is gone; read .openwatch-upgrade/journal.json, then rerun with --break-lock"):
        no_upgrade_running(tmp_path)
    assert "ticket CHG-OLD" in no_upgrade_running(tmp_path, break_lock=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "t1", "ticket": "CHG-LIVE"}))
    with pytest.raises(Problem, match=r"another upgrade run holds .* ticket CHG-LIVE, stage unknown, since t1\)"):
        no_upgrade_running(tmp_path, break_lock=True)


def test_compose_services_the_suite_cannot_work_with(tmp_path: Path) -> None:
    files = (tmp_path / "docker-compose.yml",)
    services = {name: Service(name, f"openwatch-{name}", True) for name in OPENWATCH_SERVICES}
    assert service_problem(services, files) is None
    without_backend = {name: spec for name, spec in services.items() if name != "backend"}
    assert "define no backend service; this is not a standard OpenWatch installation" in service_problem(
        without_backend, files)
    celery_without_broker = {name: spec for name, spec in services.items() if name != "redis"}
    assert "run a Celery worker but define no redis service" in service_problem(celery_without_broker, files)
    job_queue_era = {name: Service(name, f"openwatch-{name}", True) for name in ("database", "backend", "frontend")}
    job_queue_era["worker"] = Service("worker", "openwatch-worker", True,
                                      command=("python3", "-m", "app.services.job_queue"))
    assert service_problem(job_queue_era, files) is None
    assert "define services OpenWatch does not have: pgadmin" in service_problem(
        {**services, "pgadmin": Service("pgadmin", "pgadmin", False)}, files)


def test_a_run_that_opened_the_lock_file_as_it_was_released_takes_the_file_at_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, racing, third = RunLock(tmp_path), RunLock(tmp_path), RunLock(tmp_path)
    first.acquire("CHG-1")
    real_open = os.open
    opened = []

    def open_then_first_releases(path, *args, **kwargs):  # the racing run opens the file, then "first" releases
        fd = real_open(path, *args, **kwargs)
        if Path(path) == racing.path and not opened:
            opened.append(fd)
            first.release()
        return fd

    monkeypatch.setattr(lock_module.os, "open", open_then_first_releases)
    racing.acquire("CHG-2")
    monkeypatch.undo()
    assert json.loads(racing.path.read_text())["ticket"] == "CHG-2"  # its lock is the file others find
    with pytest.raises(Problem, match="another upgrade run holds"):
        third.acquire("CHG-3")
    racing.release()
    assert not racing.path.exists()


@pytest.mark.parametrize(("old", "new", "expected"), [
    # Celery to Celery: the new worker reads the same Redis queues, so the old worker stops while users are served
    ("celery", "celery", ("producers", "drain before the stop", "worker", "user-facing")),
    # Celery to the job queue (February -> April 2026): nothing reads Redis afterwards, so it is emptied twice
    ("celery", "job-queue", ("producers", "drain before the stop", "user-facing", "drain after the backend stopped",
                             "worker")),
    ("job-queue", "job-queue", ("producers", "worker", "user-facing")),
    ("celery", "unknown", ("producers", "drain before the stop", "user-facing", "drain after the backend stopped",
                           "worker")),
])
def test_the_worker_stops_before_the_backend_only_when_the_target_reads_its_queue(old, new, expected):
    assert drain.order(old, new) == expected
