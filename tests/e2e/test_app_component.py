"""Backend only and frontend only, for real on the sandbox: only the component's containers are
rebuilt and restarted (the others' start times do not move), the backend migrates because v0.2.0
has new revisions, the frontend never does; a backend-only upgrade to a release whose /health
stays 503 is rolled back without restarting the frontend, database or Redis, data as recorded;
``--plan`` for either lists the component's stages and changes nothing."""

from __future__ import annotations

import re
import subprocess

import pytest

from runbook import app_component
from sandbox.installation import Installation
from tests.sandbox_state import engine_and_files, journal, snapshot
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


@pytest.mark.parametrize("component", ["backend", "frontend"])
def test_component_plan_changes_nothing(pytester: pytest.Pytester, baseline: Installation, component: str) -> None:
    """``--component X --plan``: the component's own stages and what each changes, and nothing changed
    (no container created, recreated or restarted, no image built, no file, volume or row touched)."""
    database, around = snapshot(baseline), engine_and_files(baseline)
    run = run_suite(pytester, "upgrade", "--install-dir", str(baseline.directory), "--component", component,
                    "--target", "v0.2.0", "--ignore-maintenance", "--plan")
    assert run.ret == 0, run.output[-3000:]
    assert run.outcomes == {"test_plan": "passed"}, run.outcomes
    assert re.search(rf"PLAN \(nothing was changed\): upgrade the {component} component of "
                     rf"{re.escape(str(baseline.directory))} from {re.escape(database['version'])} \(\w+\) to v0\.2\.0 "
                     rf"\(tag \w+\)", run.output), run.output[-3000:]
    planned = re.findall(r"^\s+\d+\. (\w+): ", run.output, re.MULTILINE)
    assert planned == [stage.name for stage in app_component.STAGES]
    assert f"      changes: {app_component.EFFECTS['drain_and_stop']}" in run.output
    assert engine_and_files(baseline) == around
    assert snapshot(baseline) == database
    assert not (baseline.directory / ".openwatch-upgrade.lock").exists()


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
