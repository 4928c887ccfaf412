"""Backend only and frontend only, for real on the sandbox: only the component's containers are
rebuilt and restarted (the others' start times do not move), the backend migrates because v0.2.0
has new revisions, the frontend never does; a backend-only upgrade to a release whose /health
stays 503 is rolled back without restarting the frontend, database or Redis, data as recorded."""

from __future__ import annotations

import subprocess

import pytest

from sandbox.installation import Installation
from tests.sandbox_state import journal, snapshot
from tests.suite_runner import run_suite

pytestmark = [pytest.mark.component, pytest.mark.slow]
BACKEND = ("openwatch-backend", "openwatch-worker", "openwatch-celery-beat")
DATABASE_AND_REDIS = ("openwatch-db", "openwatch-redis")
FRONTEND = ("openwatch-frontend",)


def started_at(names: tuple[str, ...]) -> dict[str, str]:
    return {name: subprocess.run(["docker", "inspect", name, "--format", "{{.State.StartedAt}}"], capture_output=True,
                                 text=True, check=True).stdout.strip() for name in names}


def component_run(pytester: pytest.Pytester, install: Installation, component: str, target: str):
    return run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--component", component,
                     "--target", target, "--ignore-maintenance")


def test_backend_only_then_frontend_only(pytester: pytest.Pytester, baseline: Installation) -> None:
    install = baseline
    untouched, backend = started_at(DATABASE_AND_REDIS + FRONTEND), started_at(BACKEND)
    upgraded = component_run(pytester, install, "backend", "v0.2.0")
    assert upgraded.ret == 0, upgraded.output[-3000:]
    data = journal(install)
    assert data["outcome"] == "UPGRADED"
    assert data["component"]["migration"] == "to 0004_scan_failed_count"
    assert started_at(DATABASE_AND_REDIS + FRONTEND) == untouched
    assert all(at != backend[name] for name, at in started_at(BACKEND).items())
    assert install.health().json()["version"] == "0.2.0"

    untouched, frontend = started_at(DATABASE_AND_REDIS + BACKEND), started_at(FRONTEND)
    upgraded = component_run(pytester, install, "frontend", "v0.2.1")
    assert upgraded.ret == 0, upgraded.output[-3000:]
    data = journal(install)
    assert data["outcome"] == "UPGRADED"
    assert data["component"]["migration"] == "skipped: the frontend has no migrations"
    assert started_at(DATABASE_AND_REDIS + BACKEND) == untouched
    assert started_at(FRONTEND) != frontend
    assert install.health().json()["status"] == "healthy"


def test_failed_backend_only_rolls_back_without_touching_the_rest(pytester: pytest.Pytester,
                                                                    baseline: Installation) -> None:
    install = baseline
    before = snapshot(install)
    untouched = started_at(DATABASE_AND_REDIS + FRONTEND)
    failed = component_run(pytester, install, "backend", "v0.2.0-fault-health")
    assert failed.outcomes["test_stage[start]"] == "failed", failed.outcomes
    data = journal(install)
    assert data["outcome"] in ("ROLLED BACK (full)", "ROLLED BACK (emergency)"), data["rollback"]
    assert snapshot(install) == before  # version, ref, revision, every table's rows and checksum, schema
    assert started_at(DATABASE_AND_REDIS + FRONTEND) == untouched
    assert install.health().json()["status"] == "healthy"
