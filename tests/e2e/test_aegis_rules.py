"""The Aegis rule bundle updated by the suite (``--component aegis --rules REF``), for real on the
sandbox with the bundle cloned in ``backend/aegis``: a good rule release is served with its own rule
count and nothing but the backend and worker restarts; the empty release (engine health 503) is
detected and rolled back to the recorded commit, serving the recorded count; a run killed while
the new backend starts is settled by ``--resume`` the same way. The database is as recorded in each
case (every table's rows and checksum, the schema). ``--plan`` changes nothing, the bundle's
checkout included."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runbook import aegis_rules, gitrepo
from sandbox import aegis_bundle
from sandbox.installation import Installation
from tests.e2e.test_app_component import started_at
from tests.e2e.test_crash_safety import wait_for_stage
from tests.sandbox_state import engine_and_files, journal, snapshot
from tests.sessions import kill_session
from tests.suite_runner import ROOT, run_suite

pytestmark = [pytest.mark.component, pytest.mark.slow]
REBUILT = ("openwatch-backend", "openwatch-worker")
UNTOUCHED = ("openwatch-db", "openwatch-redis", "openwatch-celery-beat", "openwatch-frontend")


@pytest.fixture
def with_bundle(baseline: Installation) -> Iterator[Installation]:
    """The sandbox with the rule bundle at its oldest release in backend/aegis, backend and worker
    rebuilt on it; the bundle is removed after the test (baseline's reset rebuilds without it)."""
    install = baseline
    aegis_bundle.install(install.directory, aegis_bundle.OLDEST.tag)
    try:
        install.compose("build", "--quiet", *(name.removeprefix("openwatch-") for name in REBUILT))
        install.up()
        yield install
    finally:
        shutil.rmtree(install.directory / aegis_bundle.BUNDLE_DIR, ignore_errors=True)


def engine(install: Installation) -> tuple[int, int]:
    """The engine's health status code and the number of rules the reference endpoint lists."""
    headers = {"Authorization": f"Bearer {install.token()}"}
    health = requests.get(f"{install.backend_url}/api/scans/aegis/health", headers=headers, timeout=5)
    listed = requests.get(f"{install.backend_url}/api/rules/reference/", headers=headers, timeout=5)
    return health.status_code, listed.json()["total"]


def bundle_commit(install: Installation, ref: str = "HEAD") -> str:
    return gitrepo.commit_of(install.directory / aegis_bundle.BUNDLE_DIR, ref)


def rules_run(pytester: pytest.Pytester, install: Installation, rules: str):
    return run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--component", "aegis",
                     "--rules", rules, "--ignore-maintenance")


def measured(data: dict, record_property) -> None:
    """Stage durations, downtime and rollback time into the JUnit properties (the closing note's table)."""
    for stage in data["stages"]:
        record_property(f"stage_{stage['name']}_s", stage["seconds"])
    record_property("downtime_total_s", (data.get("downtime") or {}).get("downtime_total_s"))
    if data.get("rollback"):
        record_property("rollback_s", round(sum(action["seconds"] for action in data["rollback"]["actions"]), 2))


@pytest.mark.parametrize(("args", "said"), [
    (["--rules", "aegis-2026.2"], "ERROR: --rules: {bundle} is not a git repository; the Aegis rule bundle must be "
                                  "cloned there before its rules can be updated"),
    ([], "ERROR: --component aegis needs --rules (a tag, branch or commit of the rule bundle's origin, e.g. "
         "aegis-2026.2)"),
])
def test_rules_that_cannot_work_are_refused_in_one_line(pytester: pytest.Pytester, ready: Installation,
                                                         args: list[str], said: str) -> None:
    result = run_suite(pytester, "upgrade", "--install-dir", str(ready.directory), "--component", "aegis", *args,
                       "--ignore-maintenance")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said.format(bundle=ready.directory / aegis_bundle.BUNDLE_DIR) in result.output
    assert "Traceback" not in result.output and not (ready.directory / ".openwatch-upgrade").exists()


def test_rules_plan_changes_nothing(pytester: pytest.Pytester, with_bundle: Installation) -> None:
    """``--component aegis --rules REF --plan``: the rule update's own stages, and nothing changed (the
    bundle's checkout, the containers, files, volumes and data as they were)."""
    install = with_bundle
    before, around = snapshot(install), engine_and_files(install)
    commit, served = bundle_commit(install), engine(install)
    run = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--component", "aegis",
                    "--rules", "aegis-2026.2", "--ignore-maintenance", "--plan")
    assert run.ret == 0, run.output[-3000:]
    assert run.outcomes == {"test_plan": "passed"}, run.outcomes
    assert f"PLAN (nothing was changed): upgrade the aegis component of {install.directory}" in run.output
    planned = re.findall(r"^\s+\d+\. (\w+): ", run.output, re.MULTILINE)
    assert planned == [stage.name for stage in aegis_rules.STAGES]
    assert engine_and_files(install) == around
    assert (snapshot(install), bundle_commit(install), engine(install)) == (before, commit, served)
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


def test_good_rules_release_is_served_and_only_backend_and_worker_restart(
        pytester: pytest.Pytester, with_bundle: Installation, record_property) -> None:
    install = with_bundle
    assert engine(install) == (200, aegis_bundle.OLDEST.rule_count)
    before, untouched, rebuilt = snapshot(install), started_at(UNTOUCHED), started_at(REBUILT)
    target = aegis_bundle.BY_TAG["aegis-2026.2"]
    result = rules_run(pytester, install, target.tag)
    assert result.ret == 0, result.output[-3000:]
    data = journal(install)
    measured(data, record_property)
    assert data["outcome"] == "UPGRADED"
    assert data["aegis_rules"]["expected_rules"] == target.rule_count == 25
    assert engine(install) == (200, target.rule_count)
    assert bundle_commit(install) == bundle_commit(install, f"{target.tag}^{{commit}}")
    assert snapshot(install) == before  # the database untouched: every table's rows and checksum, the schema
    assert started_at(UNTOUCHED) == untouched
    assert all(at != rebuilt[name] for name, at in started_at(REBUILT).items())


def test_empty_rules_release_is_rolled_back_to_the_recorded_commit(
        pytester: pytest.Pytester, with_bundle: Installation, record_property) -> None:
    install = with_bundle
    before, untouched, commit = snapshot(install), started_at(UNTOUCHED), bundle_commit(install)
    result = rules_run(pytester, install, "aegis-2026.3-empty")
    assert result.outcomes["test_stage[verify]"] == "failed", result.outcomes
    assert "/api/scans/aegis/health with a valid token answered 503" in result.messages["test_stage[verify]"]
    data = journal(install)
    measured(data, record_property)
    assert data["outcome"] == "ROLLED BACK (rules)", data["rollback"]
    assert bundle_commit(install) == commit
    assert engine(install) == (200, aegis_bundle.OLDEST.rule_count)
    assert snapshot(install) == before
    assert started_at(UNTOUCHED) == untouched
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


def test_run_killed_while_the_new_rules_start_is_rolled_back_by_resume(
        pytester: pytest.Pytester, with_bundle: Installation, tmp_path: Path, record_property) -> None:
    install = with_bundle
    before, untouched, commit = snapshot(install), started_at(UNTOUCHED), bundle_commit(install)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), "--install-dir",
                             str(install.directory), "--component", "aegis", "--rules", "aegis-2026.2",
                             "--ignore-maintenance", f"--reports-dir={tmp_path}", "-p", "no:cacheprovider",
                             "-o", "log_cli=false"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert wait_for_stage(install, proc, "start"), proc.communicate()[0]
    kill_session(proc.pid)  # power loss for the run and the commands it started
    proc.communicate(timeout=60)
    assert journal(install)["outcome"] == "running"

    resumed = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--resume")
    assert resumed.ret == 0, resumed.output[-3000:]
    data = journal(install)
    measured(data, record_property)
    assert data["outcome"] == "ROLLED BACK (rules)" and data["resumed"]["stage"] == "start", data["rollback"]
    assert bundle_commit(install) == commit
    assert engine(install) == (200, aegis_bundle.OLDEST.rule_count)
    assert snapshot(install) == before
    assert started_at(UNTOUCHED) == untouched
