"""The sandbox comes up healthy, and every release migrates with its own image to its own head."""

from __future__ import annotations

import requests
import pytest

from runbook import dbstate
from sandbox import releases
from sandbox.installation import Installation
from sandbox.seed import SeedSize

SEEDED = SeedSize()


def test_oldest_release_is_healthy_with_seeded_data(sandbox: Installation) -> None:
    health = sandbox.health()
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert health.json()["version"] == "0.1.0" == sandbox.version
    with sandbox.connect() as conn:
        states = dbstate.table_states(conn)
        assert dbstate.alembic_revisions(conn) == [releases.OLDEST.head]
    assert {name: state.rows for name, state in states.items()} == {
        "users": SEEDED.users, "hosts": SEEDED.hosts, "scans": SEEDED.scans,
        "scan_results": SEEDED.scans * SEEDED.results_per_scan,
    }
    states_by_container = {
        name: sandbox.compose("ps", "--format", "{{.Health}}", service).stdout.strip()
        for name, service in (("db", "database"), ("backend", "backend"), ("worker", "worker"), ("frontend", "frontend"))
    }
    assert set(states_by_container.values()) == {"healthy"}, states_by_container


def test_api_needs_a_token_and_frontend_proxies_it(sandbox: Installation) -> None:
    assert requests.get(f"{sandbox.backend_url}/api/scans/aegis/health", timeout=5).status_code == 401
    headers = {"Authorization": f"Bearer {sandbox.token()}"}
    via_frontend = requests.get(f"{sandbox.frontend_url}/api/scans/aegis/health", headers=headers, timeout=5)
    assert via_frontend.status_code == 200 and via_frontend.json()["rules_loaded"] == 20
    assert requests.get(f"{sandbox.backend_url}/api/rules/reference/", headers=headers, timeout=5).json()["total"] == 20
    assert "<title>OpenWatch</title>" in requests.get(sandbox.frontend_url, timeout=5).text
    assert requests.get(f"{sandbox.backend_url}/docs", timeout=5).status_code == 200


def upgrade_to(sandbox: Installation, tag: str) -> None:
    """Check out, build, migrate with the release's own image, start: the procedure as it is meant."""
    sandbox.checkout(tag)
    sandbox.build()
    sandbox.alembic("upgrade", "head")
    sandbox.up()


@pytest.mark.dependency()
def test_v0_2_0_backfills_and_requires_new_setting(sandbox: Installation) -> None:
    sandbox.set_env("OPENWATCH_ENCRYPTION_KEY", "sandbox-test-key")
    with sandbox.connect() as conn:
        failed_before = conn.execute("SELECT count(*) FROM scan_results WHERE status = 'fail'").fetchone()[0]
    upgrade_to(sandbox, "v0.2.0")
    assert sandbox.heads() == ["0004_scan_failed_count"] == [releases.BY_TAG["v0.2.0"].head]
    assert sandbox.current_revision() == "0004_scan_failed_count"
    with sandbox.connect() as conn:
        families = dict(conn.execute("SELECT os_family, count(*) FROM hosts GROUP BY 1").fetchall())
        failed_after = conn.execute("SELECT sum(failed_count) FROM scans").fetchone()[0]
        nullable = conn.execute("SELECT is_nullable FROM information_schema.columns "
                                "WHERE table_name = 'hosts' AND column_name = 'os_family'").fetchone()[0]
    assert families == {"rhel": 150, "ubuntu": 150, "windows": 150, "unknown": 150}
    assert nullable == "NO"
    assert failed_after == failed_before > 0
    assert sandbox.health().json()["version"] == "0.2.0"
    summary = requests.get(f"{sandbox.backend_url}/api/hosts/summary",
                           headers={"Authorization": f"Bearer {sandbox.token()}"}, timeout=5)
    assert summary.json()["by_os_family"]["rhel"] == 150


@pytest.mark.dependency(depends=["test_v0_2_0_backfills_and_requires_new_setting"])
def test_v0_2_1_is_code_only(sandbox: Installation) -> None:
    with sandbox.connect() as conn:
        before = dbstate.table_states(conn)
    upgrade_to(sandbox, "v0.2.1")
    assert sandbox.current_revision() == releases.BY_TAG["v0.2.1"].head == "0004_scan_failed_count"
    with sandbox.connect() as conn:
        assert dbstate.table_states(conn) == before
    assert sandbox.health().json()["version"] == "0.2.1"
    rules = requests.get(f"{sandbox.backend_url}/api/rules/reference/",
                         headers={"Authorization": f"Bearer {sandbox.token()}"}, timeout=5)
    assert rules.json()["total"] == 25


@pytest.mark.dependency(depends=["test_v0_2_1_is_code_only"])
def test_v1_0_0_reshapes_results_and_drops_beat_then_downgrades_losslessly(sandbox: Installation) -> None:
    with sandbox.connect() as conn:
        before = dbstate.table_states(conn)
    upgrade_to(sandbox, "v1.0.0")
    assert sandbox.current_revision() == releases.BY_TAG["v1.0.0"].head == "0005_rule_results"
    assert "celery-beat" not in sandbox.services()
    assert "openwatch-celery-beat" not in sandbox.compose("ps", "-a", "--format", "{{.Name}}").stdout
    with sandbox.connect() as conn:
        tables = dbstate.table_states(conn)
        levels = conn.execute("SELECT severity_level, count(*) FROM rule_results GROUP BY 1 ORDER BY 1").fetchall()
    assert "scan_results" not in tables and tables["rule_results"].rows == before["scan_results"].rows
    assert [level for level, _ in levels] == [1, 2, 3, 4]
    assert sandbox.health().json()["version"] == "1.0.0"

    sandbox.compose("stop", "backend", "worker", "frontend")
    sandbox.alembic("downgrade", releases.BY_TAG["v0.2.1"].head)
    with sandbox.connect() as conn:
        assert dbstate.alembic_revisions(conn) == ["0004_scan_failed_count"]
        assert dbstate.table_states(conn) == before
