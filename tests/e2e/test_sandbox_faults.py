"""Each fault release fails the way its tag says, on a real installation with real data.

The sandbox is reset to the seeded v0.1.0 between scenarios by restoring a dump, not rebuilt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from runbook import dbstate
from sandbox import releases
from sandbox.installation import Installation


@pytest.fixture
def baseline(sandbox: Installation, baseline_dump: Path) -> Iterator[Installation]:
    """The seeded v0.1.0 installation, with v0.2.0's new setting present; reset afterwards."""
    sandbox.set_env("OPENWATCH_ENCRYPTION_KEY", "sandbox-test-key")
    try:
        yield sandbox
    finally:
        sandbox.reset(releases.OLDEST.tag, baseline_dump)


def checkout_and_build(sandbox: Installation, tag: str) -> None:
    sandbox.checkout(tag)
    sandbox.build()


def hosts_columns(sandbox: Installation) -> set[str]:
    with sandbox.connect() as conn:
        rows = conn.execute("SELECT column_name::text FROM information_schema.columns WHERE table_name = 'hosts'")
        return {name for (name,) in rows}


def test_fault_migration_fails_half_way_and_postgres_rolls_the_run_back(baseline: Installation) -> None:
    with baseline.connect() as conn:
        before = dbstate.table_states(conn)
    checkout_and_build(baseline, "v0.2.0-fault-migration")
    migration = baseline.alembic("upgrade", "head", check=False)
    assert migration.returncode != 0
    # 0003 and 0004 ran before 0005 failed, all in the one transaction of this run.
    assert "Running upgrade 0002_scan_indexes -> 0003_host_os_family" in migration.stderr
    assert "uq_hosts_ip_address" in migration.stderr
    with baseline.connect() as conn:
        assert dbstate.alembic_revisions(conn) == [releases.OLDEST.head]
        assert dbstate.table_states(conn) == before
    assert "os_family" not in hosts_columns(baseline)


def test_fault_partial_migration_commits_two_revisions_and_leaves_an_index_and_an_enum(
        baseline: Installation) -> None:
    checkout_and_build(baseline, "v0.2.0-fault-partial-migration")
    migration = baseline.alembic("upgrade", "head", check=False)
    assert migration.returncode != 0 and "uq_hosts_ip_address" in migration.stderr
    with baseline.connect() as conn:
        assert dbstate.alembic_revisions(conn) == ["0004_scan_failed_count"]  # committed by the autocommit block
        index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_scans_started_at'").fetchone()
        labels = conn.execute("SELECT enum_range(NULL::scan_state)::text").fetchone()
        constraint = conn.execute("SELECT 1 FROM pg_constraint WHERE conname = 'uq_hosts_ip_address'").fetchone()
    assert index == ("CREATE INDEX ix_scans_started_at ON public.scans USING btree (started_at)",)
    assert labels == ("{queued,running,done}",) and constraint is None
    assert "os_family" in hosts_columns(baseline)


def test_fault_crashloop_backend_exits_on_start_and_keeps_restarting(baseline: Installation) -> None:
    checkout_and_build(baseline, "v0.2.0-fault-crashloop")
    baseline.alembic("upgrade", "head")
    baseline.up(wait=False)
    backend = docker.from_env().containers.get("openwatch-backend")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        backend.reload()
        if backend.attrs["RestartCount"] >= 3:
            break
        time.sleep(1)
    assert backend.attrs["RestartCount"] >= 3, backend.attrs["State"]
    assert backend.attrs["State"]["Health"]["Status"] != "healthy"
    assert b"cannot import name 'scanner_engine'" in backend.logs(tail=50)
    with pytest.raises(requests.ConnectionError):
        baseline.health()


def wait_for_answer(url: str, deadline_s: float = 60) -> requests.Response:
    """The first HTTP answer from ``url``, whatever its status (connection errors are retried)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_fault_health_starts_but_answers_503_degraded(baseline: Installation) -> None:
    checkout_and_build(baseline, "v0.2.0-fault-health")
    baseline.alembic("upgrade", "head")
    baseline.up(wait=False)
    health = wait_for_answer(f"{baseline.backend_url}/health")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "degraded" and body["scanner"] == "unreachable"
    assert body["database"] == body["redis"] == "healthy"


def test_fault_downgrade_upgrades_then_fails_its_checks_and_its_downgrade(baseline: Installation) -> None:
    checkout_and_build(baseline, "v1.0.0-fault-downgrade")
    baseline.alembic("upgrade", "head")
    baseline.up()
    assert baseline.health().json()["status"] == "healthy"
    aegis = requests.get(f"{baseline.backend_url}/api/scans/aegis/health",
                         headers={"Authorization": f"Bearer {baseline.token()}"}, timeout=5)
    assert aegis.status_code == 503 and aegis.json()["rules_loaded"] == 0
    with baseline.connect() as conn:
        migrated = dbstate.table_states(conn)
    downgrade = baseline.alembic("downgrade", releases.BY_TAG["v0.2.1"].head, check=False)
    assert downgrade.returncode != 0
    assert "NotImplementedError: 0005_rule_results cannot be downgraded" in downgrade.stderr
    with baseline.connect() as conn:
        assert dbstate.alembic_revisions(conn) == ["0005_rule_results"]
        assert dbstate.table_states(conn) == migrated
