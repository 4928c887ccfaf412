"""The suite upgrades the real OpenWatch (compose era) for real, and rolls a real failure back.

February -> April (Redis, Celery worker and beat retired, 19 real migrations, a real Celery task sent as
the drain starts) and on to June from there; February -> June in one run; then a fault commit on April whose new
migration the seeded data violates, after migration 041's mid-run COMMIT: the rollback tries the real
downgrade chain, finds what it cannot undo, escalates, and ends exactly as recorded.

One February installation (module-scoped) serves every scenario; between them it is reset from its saved
dump and cached images (restore, checkout, build from cache), never built again from nothing.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook import dbstate
from runbook.shell import run
from runbook.schema_fingerprint import canonical
from sandbox.real import installation as real_installation
from sandbox.real import releases as real_releases
from sandbox.real import seed
from tests import real_upgrade
from tests.sandbox_state import forget_runs, journal, schema_dump
from tests.suite_runner import SuiteRun, run_suite

pytestmark = [pytest.mark.real, pytest.mark.slow]
FEB, APR, JUN = "compose-2026-02-17", "compose-2026-04-14", "compose-2026-06-04"
SEEDED = seed.SeedSize()
REDIS_VOLUME = real_installation.REDIS_VOLUME


@pytest.fixture
def at_baseline(request: pytest.FixtureRequest,
                real_install: real_installation.RealInstallation) -> real_installation.RealInstallation:
    """The installation at its tag's seeded baseline: reset from the saved dump when a scenario ran on it."""
    tag = request.node.callspec.params["real_install"]
    if (real_install.directory / ".openwatch-upgrade").exists():
        forget_runs(real_install.directory)
        commit = real_install.git("rev-parse", f"{tag}^{{commit}}").stdout.strip()
        real_install.reset(tag, real_installation.dump_path(real_releases.BY_TAG[tag], commit, SEEDED))
    return real_install


@dataclass
class Recorded:
    """What the test reads itself before the run: the operator's columns and their rows, the schema."""
    commit: str
    columns: dict[str, dict[int, str]]
    operator_rows: dict[str, tuple[int, str]]
    schema: list[str]


def record(install: real_installation.RealInstallation) -> Recorded:
    with install.connect() as conn:
        kept = real_upgrade.columns(conn)
        rows = real_upgrade.contents_in(conn, {table: list(names.values()) for table, names in kept.items()})
    return Recorded(install.git("rev-parse", "HEAD").stdout.strip(), kept, rows, schema_dump(install))


def measured(run: SuiteRun, data: dict) -> str:
    """One line of the numbers the closing note's table needs (printed with -s / in the test log)."""
    stages = {stage["name"]: stage["seconds"] for stage in data["stages"]}
    downtime = (run.bundle or {}).get("downtime") or {}
    rollback = data.get("rollback") or {}
    rollback_s = round(sum(action["seconds"] for action in rollback.get("actions") or []), 1)
    return (f"stages {stages}; downtime {downtime.get('downtime_total_s')} s; "
            f"rollback {rollback.get('tier')} in {rollback_s} s")


def assert_upgraded(install: real_installation.RealInstallation, run: SuiteRun, before: Recorded,
                    target: str) -> dict:
    """UPGRADED with every stage passed and the post-flight green; the operator's rows unchanged in the
    columns they had (the tables the app does not write, live; all of them quiesced, by the suite's own
    at-the-stop and migrated checksums where the migration left a table's columns alone); the schema
    what a fresh migration of the target makes; the target's services only, healthy."""
    assert run.ret == 0 and "UPGRADED" in run.output, run.output[-4000:]
    data = journal(install)
    assert data["outcome"] == "UPGRADED"
    assert all(stage["status"] == "passed" for stage in data["stages"]), data["stages"]
    release = real_releases.BY_TAG[target]
    assert install.git("rev-parse", "HEAD").stdout.strip() == install.git("rev-parse", f"{target}^{{commit}}").stdout.strip()
    assert sorted(install.services()) == sorted(release.services)
    assert install.health().json()["status"] == "healthy"
    with install.connect() as conn:
        assert dbstate.alembic_revisions(conn) == [release.head]
        after = real_upgrade.contents_in(conn, real_upgrade.same_columns_now(before.columns, real_upgrade.columns(conn)))
    untouched = set(real_upgrade.OPERATOR_TABLES) - real_upgrade.WRITTEN_BY_THE_APP
    assert {t: after[t] for t in untouched} == {t: before.operator_rows[t] for t in untouched}
    for table in real_upgrade.WRITTEN_BY_THE_APP:  # the app keeps writing: rows only grow or stay
        assert after[table][0] >= before.operator_rows[table][0], (table, before.operator_rows[table], after[table])
    schema_after = schema_dump(install)
    at_stop, migrated = data["at_stop"]["tables"], data["migrated"]["tables"]
    same_columns = [t for t in real_upgrade.OPERATOR_TABLES
                    if table_definition(before.schema, t) == table_definition(schema_after, t)]
    assert {t: at_stop[t] for t in same_columns} == {t: migrated[t] for t in same_columns}
    kept = [t for t in at_stop if t in migrated]  # aegis_rules is kensa_rules now (036): the suite pairs those
    assert {t: at_stop[t]["rows"] for t in kept} == {t: migrated[t]["rows"] for t in kept}
    # Every object a fresh `alembic upgrade head` of the target makes, as it makes it; the upgraded database
    # also holds what the running app creates itself at start (its `_migrations` table, scan_baselines, ...),
    # which a bare migration does not.
    fresh = real_upgrade.fresh_migration_schema(install)
    missing = Counter(canonical(line) for line in fresh) - Counter(canonical(line) for line in schema_after)
    assert not missing, sorted(missing)[:20]
    return data


def redis_volume_created() -> str:
    return run(["docker", "volume", "inspect", "--format", "{{.CreatedAt}}", REDIS_VOLUME]).stdout.strip()


def table_definition(schema: list[str], table: str) -> list[str]:
    """``table``'s CREATE TABLE lines as pg_dump prints them (its columns, types and defaults)."""
    start = f"CREATE TABLE public.{table} ("
    if start not in schema:
        return []
    index = schema.index(start)
    return schema[index:schema.index(");", index)]


# -- the upgrades ------------------------------------------------------------------------------------
@pytest.mark.parametrize("real_install", [FEB], indirect=True, scope="module")
def test_february_to_april_then_june_and_the_drain_finishes_a_real_celery_task(
        pytester: pytest.Pytester, at_baseline: real_installation.RealInstallation) -> None:
    """19 real migrations, Redis, Celery worker and beat retired. A real task sent through Celery with a
    countdown (as the app's retries are) the moment the drain starts is held by the worker, not queued:
    the drain waits for it, and its result is back in Redis before the worker stops. Then April -> June
    from there, as the operator would go on."""
    install = at_baseline
    before = record(install)
    redis_created = redis_volume_created()
    task = real_upgrade.TaskAtDrain(install.directory)
    task.start()
    run = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--target", APR,
                    "--ticket", "CHG-REAL-APR")
    sent, done = task.finish()
    data = assert_upgraded(install, run, before, APR)
    print(f"\nreal {FEB} -> {APR}: {measured(run, data)}")
    drain = next(stage for stage in data["stages"] if stage["name"] == "drain_and_stop")
    assert sent is not None and done is not None, (sent, done, task.proc.stderr.read()[-2000:] if task.proc.stderr else "")
    assert done["status"] == "SUCCESS" and done["result"] == ["openwatch-suite drain test"]
    assert drain["t0"] <= sent["sent"] and done["done"] <= drain["t1"]
    retired = {entry["service"]: entry for entry in data["retired"]}
    assert set(retired) == {"redis", "celery-beat"} and retired["redis"]["volumes"] == [REDIS_VOLUME]
    assert all(entry["volumes_kept_until"] for entry in retired.values())
    assert "openwatch-redis" not in install.compose("ps", "--all", "--format", "{{.Name}}").stdout
    assert redis_volume_created() == redis_created  # kept, not recreated: a rollback would find its data

    # The operator's next step, from the installation the upgrade left (no April built from nothing).
    shutil.rmtree(install.directory / ".openwatch-upgrade")
    before = record(install)
    run = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--target", JUN,
                    "--ticket", "CHG-REAL-APR-JUN")
    data = assert_upgraded(install, run, before, JUN)
    print(f"\nreal {APR} -> {JUN}: {measured(run, data)}")
    assert not data["retired"]


@pytest.mark.parametrize("real_install", [FEB], indirect=True, scope="module")
def test_february_to_june_in_one_run(pytester: pytest.Pytester,
                                     at_baseline: real_installation.RealInstallation) -> None:
    install = at_baseline
    before = record(install)
    run = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--target", JUN,
                    "--ticket", "CHG-REAL-JUN")
    data = assert_upgraded(install, run, before, JUN)
    print(f"\nreal {FEB} -> {JUN}: {measured(run, data)}")


@pytest.mark.parametrize("real_install", [FEB], indirect=True, scope="module")
def test_a_migration_failing_after_041s_commit_rolls_back_exactly_as_recorded(
        pytester: pytest.Pytester, at_baseline: real_installation.RealInstallation, real_origin: Path) -> None:
    """A fault commit on April adds migration 055, a unique constraint the seeded findings violate,
    after a column. 041 committed mid-run, so everything from 036 to 054 and 055's column stay when 055
    fails. The suite must find that, not assume PostgreSQL rolled the run back: the full tier runs the
    real downgrade chain, the schema fingerprint still differs (041's downgrade does nothing, and
    055's column is behind a revision that says 054), so it escalates to the emergency restore, names
    041, and everything ends as recorded: February's commit, services (Redis back), revision, schema
    and the operator's rows."""
    install = at_baseline
    before = record(install)
    redis_created = redis_volume_created()
    fault = real_upgrade.fault_commit(real_origin, APR)
    try:
        run = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--target",
                        real_upgrade.FAULT_BRANCH, "--ticket", "CHG-REAL-FAULT")
    finally:
        real_upgrade.remove_fault(real_origin)
    assert run.ret == 1 and "ROLLED BACK" in run.output, run.output[-4000:]
    data = journal(install)
    print(f"\nreal {FEB} -> fault {fault[:10]}: {measured(run, data)}")
    migrate = next(stage for stage in data["stages"] if stage["name"] == "migrate")
    assert migrate["status"] == "failed" and "uq_scan_findings_one_per_scan" in migrate["detail"], migrate
    rollback = data["rollback"]
    assert rollback["ok"] is True and rollback["tier"] == "emergency", rollback
    assert "041_add_manual_remediation_status does nothing" in rollback["problem"], rollback["problem"]
    assert "column scan_findings.reviewed_by_suite_fault is still there" in rollback["problem"]  # 055's, committed alone
    assert f"ROLLED BACK ({rollback['tier']})" in run.output
    assert install.git("rev-parse", "HEAD").stdout.strip() == before.commit
    assert sorted(install.services()) == sorted(real_releases.BY_TAG[FEB].services)
    assert "openwatch-redis" in install.compose("ps", "--format", "{{.Name}}").stdout
    assert redis_volume_created() == redis_created  # Redis back on its own data, not an empty new volume
    assert install.health().json()["status"] == "healthy"
    assert [canonical(line) for line in schema_dump(install)] == [canonical(line) for line in before.schema]
    with install.connect() as conn:
        assert dbstate.alembic_revisions(conn) == [real_releases.BY_TAG[FEB].head]
        after = real_upgrade.contents_in(conn, {table: list(names.values()) for table, names in before.columns.items()})
    untouched = set(real_upgrade.OPERATOR_TABLES) - real_upgrade.WRITTEN_BY_THE_APP
    assert {t: after[t] for t in untouched} == {t: before.operator_rows[t] for t in untouched}
