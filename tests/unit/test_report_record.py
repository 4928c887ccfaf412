"""The report as a change record, from journals shaped as real runs leave them: the card per outcome,
the data proof, the backout plan, the exports, the schemas, the index, and no secret in any of them."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import pytest

from plugins.bundle import write_bundle
from runbook.run_record import RunRecord
from runbook.state import InstallState
from runbook import (backout, change_record, components, dry_run, exports, report_html, report_index, run_summary,
                     schemas)
from runbook.journal import SCHEMA_VERSION, Journal, migrated, refusal
from runbook.logtail import notable
from runbook.redaction import MASK, Redactor
from runbook.timeline import render
from tests.bundles import check_bundle, check_cdevent
from tests.fake_installation import NOWHERE, fake_installation
from tests.suite_runner import ROOT, run_suite
from tests.unit.test_redaction import CANARY

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40
TABLES = {"hosts": {"rows": 400, "checksum": "111"}, "scans": {"rows": 1200, "checksum": "222"},
          "scan_results": {"rows": 12000, "checksum": "333"}}


def state(version: str, ref: str, commit: str, revision: str, tables: dict) -> dict:
    return {"version": version, "git_ref": ref, "git_commit": commit, "revision": revision,
            "image_ids": {"backend": "sha256:" + "c" * 64}, "containers": {"backend": "openwatch-backend"},
            "tables": copy.deepcopy(tables)}


def stage(name: str, status: str, t0: float, seconds: float, detail: str = "") -> dict:
    return {"name": name, "status": status, "started": "2026-11-25T10:00:00Z", "seconds": seconds, "t0": t0,
            "t1": t0 + seconds, "detail": detail}


def journal(outcome: str) -> dict:
    """An upgrade 0.1.0 -> 0.2.0 that ended ``outcome`` (UPGRADED, ROLLED BACK (quick), FAILED - MANUAL ACTION)."""
    names = ["gate", "lock_and_record", "backup", "verify_backup", "checkout", "build", "drain_and_stop", "migrate"]
    stages = [stage(name, "passed", 1000.0 + 10 * i, 9.0) for i, name in enumerate(names)]
    data = {"schema_version": SCHEMA_VERSION, "run_id": "20261125T100000Z-42", "host": "vm", "pid": 42,
            "ticket": "CHG-7", "target": "v0.2.0", "started": "2026-11-25T10:00:00Z", "started_epoch": 1000.0,
            "finished": "2026-11-25T10:02:00Z", "outcome": outcome, "stages": stages,
            "before": state("0.1.0", "v0.1.0", COMMIT_A, "0002_scan_indexes", TABLES), "after": None,
            "backup": {"dump": "/opt/openwatch/backups/postgres/x.dump", "sha256": "d" * 64, "size": 3 * 1024 * 1024,
                       "config_dir": "/opt/openwatch/backups/config-x", "seconds": 2.0,
                       "verification": {"listed_entries": 40, "restored": True}},
            "rollback": None,
            "downtime": {"downtime_total_s": 7.5, "downtime_longest_s": 7.5, "downtime_outages": 1,
                         "origin_epoch": 1000.0, "intervals": [[60.5, 68.0]], "marks": []}}
    if outcome == "UPGRADED":
        migrated_tables = copy.deepcopy(TABLES)
        migrated_tables["hosts"]["checksum"] = "999"  # os_family backfilled
        migrated_tables["rule_results"] = migrated_tables.pop("scan_results")
        data["stages"] += [stage(name, "passed", 1080.0 + 10 * i, 9.0) for i, name in enumerate(("start", "verify",
                                                                                                   "finish"))]
        data["after"] = state("0.2.0", "v0.2.0", COMMIT_B, "0004_scan_failed_count", migrated_tables)
        return data
    data["stages"][-1].update(status="failed", detail="alembic upgrade head failed: IntegrityError: duplicate key\nmore")
    ok = outcome.startswith("ROLLED BACK")
    actions = [{"name": "check out the recorded git ref", "seconds": 0.4, "ok": True, "t0": 1080.0, "t1": 1080.4},
               {"name": "re-tag the recorded images", "seconds": 0.2, "ok": ok, "t0": 1080.4, "t1": 1080.6}]
    data["rollback"] = {"requested": "quick", "tier": "quick" if ok else "emergency", "ok": ok, "actions": actions,
                        "problem": "" if ok else "ImageNotFound: No such image",
                        "manual_steps": [] if ok else ["cd /opt/openwatch", "git checkout --detach " + COMMIT_A,
                                                       "docker compose up -d   # then: pytest suites/postflight"]}
    if ok:
        data["restored"] = state("0.1.0", "v0.1.0", COMMIT_A, "0002_scan_indexes", TABLES)
    return data


def summary_of(data: dict, tmp_path: Path, exit_status: int = 1, operation: str | None = None) -> dict:
    stem = tmp_path / "CHG-7_upgrade_20261125T100000"
    return run_summary.build(
        suite="upgrade", ticket="CHG-7", host="vm", install_dir="/opt/openwatch", version="0.1.0", target="v0.2.0",
        target_commit=COMMIT_B, target_kind="tag", exit_status=exit_status, journal=data, maintenance=None,
        tests=[{"nodeid": "suites/upgrade/test_00_preflight_gate.py::test_backend_reports_healthy", "phase": "call",
                "outcome": "passed", "seconds": 0.1, "message": ""}],
        artifacts={"html": f"{stem}.html", "junit": f"{stem}.xml", "json": f"{stem}.json", "log": None,
                   "servicenow": f"{stem}.servicenow.json", "cdevent": f"{stem}.cdevent.json",
                   "index": str(tmp_path / "index.html")}, operation=operation)


def test_after_is_the_upgraded_state_or_the_restored_one() -> None:
    upgraded = {move.what: (move.before, move.after) for move in change_record.moves(journal("UPGRADED"))}
    assert upgraded == {"OpenWatch version": ("0.1.0", "0.2.0"), "git ref": ("v0.1.0", "v0.2.0"),
                        "git commit": (COMMIT_A, COMMIT_B), "Alembic revision": ("0002_scan_indexes",
                                                                                 "0004_scan_failed_count")}
    rolled = journal("ROLLED BACK (quick)")
    rolled["after"] = state("0.2.0", "v0.2.0", COMMIT_B, "0004_scan_failed_count", TABLES)  # verify had captured it
    assert [move.after for move in change_record.moves(rolled)] == ["0.1.0", "v0.1.0", COMMIT_A, "0002_scan_indexes"]
    assert [move.after for move in change_record.moves(journal("FAILED - MANUAL ACTION"))] == [None] * 4


def test_data_integrity_marks_what_the_migration_changed_and_flags_the_rest() -> None:
    proofs = {proof.table: proof for proof in change_record.data_integrity(journal("UPGRADED"))}
    assert proofs["scans"].note == "identical" and proofs["scans"].checksum_equal
    assert proofs["hosts"].expected and proofs["hosts"].note.startswith("content rewritten by the migrations")
    assert proofs["scan_results"].note == "renamed by the migrations to rule_results (rows equal)"
    assert proofs["scan_results"].rows_after == 12000 and "rule_results" not in proofs
    rolled = journal("ROLLED BACK (quick)")
    assert all(proof.note == "identical" for proof in change_record.data_integrity(rolled))
    rolled["restored"]["tables"]["scans"] = {"rows": 1199, "checksum": "220"}
    lost = {proof.table: proof for proof in change_record.data_integrity(rolled)}["scans"]
    assert not lost.expected and lost.note == "UNEXPECTED: rows differ"
    table = report_html.integrity_table(change_record.data_integrity(rolled), "after rollback")
    assert "1 table(s) differ unexpectedly: scans" in table and 'class="bad"' in table


@pytest.mark.parametrize(("outcome", "tone", "shown", "absent"), [
    ("UPGRADED", "good", ["0.1.0", "0.2.0", COMMIT_B[:12], "0004_scan_failed_count", "7.5 s", "3.0 MiB",
                          "restored into a scratch database and compared table by table"], ["Failed stage"]),
    ("ROLLED BACK (quick)", "rolledback", ["Failed stage", "migrate", "alembic upgrade head failed: IntegrityError",
                                           "0.4 s", "check out the recorded git ref", "after rollback"],
     ["more", "Manual steps"]),
    ("FAILED - MANUAL ACTION", "bad", ["Manual steps", "git checkout --detach " + COMMIT_A, "ImageNotFound",
                                       "FAILED</strong> re-tag", "not recorded"], []),
])
def test_card_per_outcome(outcome: str, tone: str, shown: list[str], absent: list[str]) -> None:
    card = report_html.upgrade_card(journal(outcome), outcome, "CHG-7 · upgrade 0.1.0 → v0.2.0 · vm · " + outcome)
    assert f'class="verdict verdict--{tone}"' in card and f'verdict__word">{outcome}<' in card
    for text in shown:
        assert text in card, text
    for text in absent:
        assert text not in card, text


def test_card_names_the_old_postgresql_volume_a_major_upgrade_kept() -> None:
    data = journal("UPGRADED")
    data["pg_major"] = {"old_volume": "openwatch_postgres_data", "old_volume_kept_until": "2026-12-26",
                        "facts": {"server_version": "15.14"}, "new_major": 17}
    card = report_html.upgrade_card(data, "UPGRADED", "CHG-7 · postgres 15 → 17")
    assert "Old PostgreSQL volume" in card and "<code>openwatch_postgres_data</code> (PostgreSQL 15.14)" in card
    assert "kept untouched until 2026-12-26" in card and "--pg-rollback" in card
    # Not yet finished (or rolled back): nothing is kept for later, so nothing is named.
    del data["pg_major"]["old_volume_kept_until"]
    assert "Old PostgreSQL volume" not in report_html.upgrade_card(data, "UPGRADED", "t")


def test_card_escapes_every_value() -> None:
    data = journal("ROLLED BACK (quick)")
    data["stages"][-1]["detail"] = "<script>alert(1)</script>"
    card = report_html.upgrade_card(data, "ROLLED BACK (quick)", "<b>title</b>")
    assert "<script>" not in card and "&lt;script&gt;" in card and "<b>title" not in card


@pytest.mark.parametrize(("verdict", "tone"), [("NOT STARTED", "neutral"), ("MAINTENANCE", "maintenance"),
                                               ("HEALTHY", "good"), ("UNHEALTHY", "bad"), ("UPGRADE DIED", "bad")])
def test_audit_card_names_the_failing_checks_first(verdict: str, tone: str) -> None:
    failing = [("test_database_answers", "connection refused")] if tone == "bad" else []
    card = report_html.audit_card(verdict, "t", {"OpenWatch version": "0.1.0"}, failing, {"passed": 16, "failed": 1})
    assert f"verdict--{tone}" in card
    if failing:
        assert card.index("test_database_answers") < card.index("OpenWatch version")


def test_log_tail_keeps_warnings_errors_and_whole_tracebacks() -> None:
    lines = ['INFO:     127.0.0.1:5000 - "GET /health HTTP/1.1" 200 OK'] * 30 + [
        "2026-11-25 10:00:01 WARNING openwatch.db slow query",
        "Traceback (most recent call last):", '  File "/app/main.py", line 3, in <module>', "    boom()",
        "ValueError: boom", 'INFO:     127.0.0.1:5000 - "GET /health HTTP/1.1" 200 OK',
        "2026-11-25 10:00:02 ERROR openwatch.api failed"]
    assert notable(lines) == lines[30:35] + lines[36:]
    html = report_html.log_tail("openwatch-backend", notable(lines), lines, "10:00:00 UTC")
    assert html.index("ValueError: boom") < html.index("<details>") and "full log tail (37 lines)" in html


def test_timeline_labels_are_whole_and_the_axis_counts_from_the_first_stop() -> None:
    data = journal("ROLLED BACK (quick)")
    data["rollback"]["actions"].append({"name": "alembic downgrade 0002_scan_indexes with the NEW image and wait",
                                        "seconds": 3.0, "ok": True, "t0": 1081.0, "t1": 1084.0})
    svg = render(data)
    assert "alembic downgrade 0002_scan_indexes with the NEW" in svg and "image and wait" in svg  # wrapped, not cut
    assert ">-60s<" in svg and ">0s<" in svg and "seconds from the first stop of the app" in svg
    assert 'width="100%"' in svg and "viewBox=" in svg


def test_backout_plan_is_the_rollback_decision_per_stage() -> None:
    plan = {step.stage: step for step in backout.plan()}
    assert [(name, plan[name].tier, plan[name].tier_if_migrated, plan[name].tier_if_schema_changed)
            for name in plan] == [
        ("gate", "none", "full", "emergency"), ("lock_and_record", "none", "full", "emergency"),
        ("backup", "none", "full", "emergency"), ("verify_backup", "none", "full", "emergency"),
        ("checkout", "ref", "full", "emergency"), ("build", "ref", "full", "emergency"),
        ("drain_and_stop", "quick", "full", "emergency"), ("migrate", "quick", "full", "emergency"),
        ("start", "quick", "full", "emergency"), ("verify", "quick", "full", "emergency"),
        ("finish", "none", "none", "none")]
    assert not plan["backup"].backup_exists and plan["verify_backup"].backup_exists
    assert not plan["finish"].rolled_back and "not rolled back" in plan["finish"].line()
    assert backout.tier_actions("full", "0002")[:2] == ["stop the new app containers",
                                                        "alembic downgrade 0002 with the NEW image"]
    assert backout.tier_actions("none", "0002") == ["verify restored state"]
    assert ("migrate (database migrated with the new image) fails -> rollback tier quick, or full if the database "
            "was migrated, or emergency if its schema changed outside Alembic; escalating to emergency") in \
        plan["migrate"].line()


@pytest.mark.parametrize(("outcome", "exit_status", "close_code", "event"), [
    ("UPGRADED", 0, "successful", "dev.cdevents.service.upgraded.0.2.0"),
    ("ROLLED BACK (quick)", 1, "unsuccessful", "dev.cdevents.service.rolledback.0.2.0"),
    ("FAILED - MANUAL ACTION", 1, "unsuccessful", None),
])
def test_bundle_and_exports_match_their_schemas(tmp_path: Path, outcome: str, exit_status: int, close_code: str,
                                                event: str | None) -> None:
    data = journal(outcome)
    assert not schemas.problems(schemas.JOURNAL, data)
    found = summary_of(data, tmp_path, exit_status)
    write_bundle(found, data["run_id"], str)
    Path(found["artifacts"]["html"]).write_text("<html></html>")
    check_bundle(json.loads(Path(found["artifacts"]["json"]).read_text()))
    change = json.loads(Path(found["artifacts"]["servicenow"]).read_text())
    assert change["close_code"] == close_code and change["short_description"].endswith(f"vm · {outcome}")
    assert change["start_date"] == "2026-11-25 10:00:00" and "8. database migrated with the new image" in \
        change["implementation_plan"]
    assert "test_backend_reports_healthy" in change["test_plan"]
    if event is None:
        assert found["artifacts"]["cdevent"] is None and not Path(tmp_path / "CHG-7_upgrade_20261125T100000.cdevent.json").exists()
    else:
        written = json.loads(Path(found["artifacts"]["cdevent"]).read_text())
        assert written["context"]["type"] == event
        check_cdevent(written)


def test_schemas_refuse_what_they_describe_wrongly(tmp_path: Path) -> None:
    found = summary_of(journal("UPGRADED"), tmp_path, 0)
    assert not schemas.problems(schemas.REPORT, found)
    broken = {**found, "verdict": None, "change": {"version": {"before": "0.1.0"}}}
    assert {problem.split(":")[0] for problem in schemas.problems(schemas.REPORT, broken)} >= {"verdict", "change"}
    data = journal("UPGRADED")
    data["stages"][0]["status"] = "done"
    assert schemas.problems(schemas.JOURNAL, data)[0].startswith("stages/0/status: 'done' is not one of")


def test_old_journals_are_migrated_unknown_ones_refused(tmp_path: Path) -> None:
    old = journal("running")
    del old["schema_version"]
    (tmp_path / ".openwatch-upgrade").mkdir()
    (tmp_path / ".openwatch-upgrade" / "journal.json").write_text(json.dumps(old))
    loaded = Journal.load(tmp_path)
    assert loaded.data["schema_version"] == SCHEMA_VERSION and refusal(loaded.path, loaded.data) is None
    newer = migrated({**old, "schema_version": 2})
    assert refusal(loaded.path, newer) == (f"{loaded.path} has journal schema_version 2, this suite reads version 1; "
                                           "settle it with the suite version that wrote it")
    broken = {**loaded.data, "stages": [{"name": "gate"}]}
    assert "does not match" in refusal(loaded.path, broken) and "stages/0: 'status' is a required property" in \
        refusal(loaded.path, broken)


def test_index_lists_every_run_newest_first(tmp_path: Path) -> None:
    for outcome, finished in (("UPGRADED", "2026-11-25T10:02:00Z"), ("ROLLED BACK (quick)", "2026-11-26T09:00:00Z")):
        data = journal(outcome)
        data["finished"] = finished
        found = summary_of(data, tmp_path / outcome.split()[0], 0)
        found["artifacts"]["json"] = str(tmp_path / f"{outcome.split()[0]}.json")
        found["artifacts"]["index"] = str(tmp_path / "index.html")
        write_bundle({**found, "artifacts": {**found["artifacts"], "servicenow": None}}, data["run_id"], str)
    (tmp_path / "not-ours.json").write_text("[1, 2]")
    page = (tmp_path / "index.html").read_text()
    assert "2 run(s)" in page and page.index("ROLLED BACK (quick)") < page.index("UPGRADED")
    assert 'class="rolledback"' in page and "0.1.0 &rarr; v0.2.0" in page and "7.5 s" in page
    assert report_index.summaries(tmp_path)[0][1]["outcome"] == "ROLLED BACK (quick)"


def test_no_secret_reaches_the_summary_the_exports_or_the_index(tmp_path: Path) -> None:
    data = journal("FAILED - MANUAL ACTION")
    data["stages"][-1]["detail"] = f"password authentication failed: {CANARY}"
    data["rollback"]["problem"] = f"OperationalError: {CANARY}"
    data["rollback"]["manual_steps"].append(f"psql postgresql://openwatch:{CANARY}@db/openwatch")
    data["ticket"] = CANARY
    found = summary_of(data, tmp_path, 1)
    found["ticket"] = CANARY
    write_bundle(found, data["run_id"], Redactor([CANARY]))
    written = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert {"index.html", "CHG-7_upgrade_20261125T100000.json", "CHG-7_upgrade_20261125T100000.servicenow.json"} \
        <= set(written)
    for name, text in written.items():
        assert CANARY not in text and CANARY[:12] not in text, name
    assert MASK in written["CHG-7_upgrade_20261125T100000.servicenow.json"]


@pytest.mark.usefixtures("docker_engine")  # the suite asks the Docker engine first: the tests' private one
@pytest.mark.parametrize(("version", "expected"), [
    (2, "has journal schema_version 2, this suite reads version 1; settle it with the suite version that wrote it"),
    (1, "does not match"),
])
def test_resume_refuses_a_journal_it_cannot_read(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                 version: int, expected: str) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    install = fake_installation(pytester.path)
    dead = {**journal("running"), "schema_version": version, "host": socket.gethostname(), "pid": 2 ** 22 + 1}
    if version == 1:
        dead["stages"][0]["status"] = "done"
    (install / ".openwatch-upgrade").mkdir()
    (install / ".openwatch-upgrade" / "journal.json").write_text(json.dumps(dead))
    run = run_suite(pytester, "upgrade", "--install-dir", str(install), "--resume", *NOWHERE)
    assert run.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in run.output, run.output
    [line] = [line for line in run.output.splitlines() if line.startswith("ERROR: --resume: ")]
    assert expected in line and str(install / ".openwatch-upgrade" / "journal.json") in line


def test_the_plan_lists_every_stage_with_its_change_and_its_undo() -> None:
    plan = dry_run.build("/opt/openwatch", "0.1.0 (c0ffee)", "v0.2.0 (tag d00d)", "0002",
                         [("test_backend_reports_healthy", "backend reports healthy")])
    text = "\n".join(plan.lines())
    assert text.startswith("PLAN (nothing was changed): upgrade /opt/openwatch from 0.1.0 (c0ffee) to v0.2.0")
    assert [stage.name for stage in plan.stages] == [stage.name for stage in components.stages_for(None)]
    assert all(stage.effect for stage in plan.stages)
    migrate = next(stage for stage in plan.stages if stage.name == "migrate")
    assert migrate.undo == backout.tier_actions("quick", "0002")
    assert "if it fails: rollback tier quick, or full if the database was migrated" in text
    finish = next(stage for stage in plan.stages if stage.name == "finish")
    assert finish.undo == [] and "not rolled back" in finish.backout
    html = report_html.plan_table(plan.to_json())
    assert html.count("<tr><td>") == len(components.stages_for(None)) and "test_backend_reports_healthy" in html



def test_the_change_records_backout_plan_is_the_operations_own(tmp_path: Path) -> None:
    """A PostgreSQL major upgrade's ServiceNow record: that upgrade's stages and its own rollback per stage."""
    data = journal("ROLLED BACK (quick)")
    data["stages"] = [stage(name, "passed", 1000.0 + i, 1.0) for i, name in enumerate(
        ("gate", "lock_and_record", "check_new_image", "drain_and_stop", "dump"))]
    change = exports.servicenow_change(summary_of(data, tmp_path, operation="postgres"), "title")
    pg_stages = components.stages_for("postgres")
    assert change["implementation_plan"].splitlines()[-1].startswith(f"{len(pg_stages)}. lock released, old volume")
    backout_lines = change["backout_plan"].splitlines()
    assert len(backout_lines) == len(pg_stages)
    assert backout_lines[4].startswith("dump (roles and every database dumped from the old server and verified) fails "
                                       "-> rollback tier old-volume")

def test_the_run_record_is_read_back_from_a_journal_in_one_place() -> None:
    """What --resume and --rollback-to act on, read from a journal-1 (fields a run never reached absent)."""
    data = journal("UPGRADED")
    assert not schemas.problems(schemas.JOURNAL, data)
    data["delta_backup"] = {"dump": "/b/x.since-backup.delta", "sha256": "e" * 64, "size": 9, "tables": ["hosts"],
                            "seconds": 0.1}
    record = RunRecord.read(data)
    assert record.before == InstallState.from_json(data["before"]) and record.at_stop is None
    assert record.after == InstallState.from_json(data["after"]) != record.before
    assert record.backup.sha256 == "d" * 64 and record.backup.dump.endswith("x.dump")  # its verification left out
    assert record.delta_backup.tables == ["hosts"]
    assert record.stages_passed[-3:] == ("start", "verify", "finish")
    assert RunRecord.read({"schema_version": SCHEMA_VERSION, "stages": []}) == RunRecord()
    # Written whole by the run, read back the same: one form for both directions.
    written = record.to_json()
    assert written["backup"]["verification"] == data["backup"]["verification"]
    assert RunRecord.read({**data, **written}) == record
    assert not schemas.problems(schemas.JOURNAL, {**data, **written})
    assert RunRecord().to_json() == {}  # nothing recorded yet: no field written


def test_a_component_run_refused_at_its_gate_gets_its_own_backout_plan(tmp_path: Path) -> None:
    """Only ``gate`` ran, a stage every operation has: the record names the operation the run was, not the
    first whose stages include it (the release's, when the stages were used to guess)."""
    data = journal("NOT STARTED")
    data["stages"] = [stage("gate", "failed", 1000.0, 1.0)]
    for operation in ("postgres", "redis", None):
        change = exports.servicenow_change(summary_of(data, tmp_path, operation=operation), "title")
        planned = components.stages_for(operation)
        assert change["implementation_plan"].splitlines()[0].startswith(f"1. {planned[0].title} (gate): failed")
        assert change["implementation_plan"].splitlines()[1] == f"2. {planned[1].title} ({planned[1].name})"
        assert len(change["implementation_plan"].splitlines()) == len(planned)
        assert len(change["backout_plan"].splitlines()) == len(planned)
    # the three operations' second stages differ, so the checks above tell them apart
    assert len({components.stages_for(operation)[1].title for operation in ("postgres", "redis", None)}) == 3
