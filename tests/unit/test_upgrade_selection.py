"""The upgrade suite runs whole, in order, or not at all: any option that would drop or reorder a
pre-flight check or a stage is a one-line usage error that names it, before anything is touched.

The install dir does not exist: the selection is judged first, so its error (and not the missing
directory) is what a refused run reports, and a run the selection check lets through gets as far
as the directory check and no further.
"""

from __future__ import annotations

import json

import pytest

from tests.suite_runner import ROOT, UPGRADE_TESTS, run_suite

# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")

STAGES = ["test_stage[gate]", "test_stage[lock_and_record]", "test_stage[migrate]"]
REFUSED = "the upgrade suite runs whole and in order, or not at all"


def upgrade(pytester: pytest.Pytester, *args: str) -> str:
    run = run_suite(pytester, "upgrade", "--install-dir", str(pytester.path / "absent"), *args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR and not run.outcomes, run.output
    assert "Traceback" not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, run.output
    return errors[0]


@pytest.mark.parametrize(("args", "named"), [
    (["-k", "test_stage"], "-k"),
    (["-k", "migrate"], "-k"),
    (["-k", "no_such_test"], "-k"),
    (["-m", "not preflight"], "-m"),
    (["--deselect", "suites/upgrade/test_00_preflight_gate.py::test_every_container_running_and_healthy"],
     "--deselect"),
    (["--ignore", str(ROOT / "suites" / "upgrade" / "test_00_preflight_gate.py")], "--ignore"),
])
def test_a_selection_that_drops_part_of_the_upgrade_is_refused(pytester: pytest.Pytester, args: list[str],
                                                               named: str) -> None:
    error = upgrade(pytester, "--target", "v0.2.1", *args)
    assert error.startswith(f"ERROR: {named}: {REFUSED}; this one leaves out "), error
    assert error.endswith(f"run `pytest suites/upgrade` without {named}"), error


def test_a_node_id_is_refused(pytester: pytest.Pytester) -> None:
    run = pytester.runpytest_subprocess(
        f"{ROOT}/suites/upgrade/test_10_stages.py::test_stage[migrate]", "--install-dir", str(pytester.path / "absent"),
        "--target", "v0.2.1", "-p", "no:cacheprovider", "-o", "log_cli=false", f"--reports-dir={pytester.path}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines([f"ERROR: {ROOT}/suites/upgrade/test_10_stages.py::test_stage[[]migrate[]]: {REFUSED}; "
                              f"this one leaves out {UPGRADE_TESTS - 1} of its {UPGRADE_TESTS} tests (*"])


@pytest.mark.parametrize(("option", "reason"), [("--lf", f"leaves out {UPGRADE_TESTS - 1} of its {UPGRADE_TESTS} tests"),
                                                ("--ff", "runs test_stage[[]migrate[]] before test_backend_reports_healthy")],
                         ids=["--lf", "--ff"])
def test_last_failed_and_failed_first_are_refused(pytester: pytest.Pytester, option: str, reason: str) -> None:
    """--lf drops what passed last time, --ff runs the stage that failed last time first."""
    cache = pytester.path / "cache"
    (cache / "v" / "cache").mkdir(parents=True)
    (cache / "v" / "cache" / "lastfailed").write_text(
        json.dumps({"suites/upgrade/test_10_stages.py::test_stage[migrate]": True}))
    run = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "upgrade"), "--install-dir", str(pytester.path / "absent"), "--target", "v0.2.1",
        option, "-o", f"cache_dir={cache}", "-o", "log_cli=false", f"--reports-dir={pytester.path}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines([f"ERROR: {option}: {REFUSED}; this one {reason}*; "
                              f"run `pytest suites/upgrade` without {option}"])


@pytest.mark.parametrize(("plugin", "why"), [
    ("dependency", "the upgrade stages depend on each other through pytest-dependency (after a failed stage the later "
                   "ones must be skipped); do not disable it"),
    ("plugins.rollback", "a failed stage is rolled back by it; to leave a failure as it is, pass --no-rollback instead"),
])
def test_disabling_a_plugin_the_upgrade_needs_is_refused(pytester: pytest.Pytester, plugin: str, why: str) -> None:
    assert upgrade(pytester, "--target", "v0.2.1", "-p", f"no:{plugin}") == f"ERROR: -p no:{plugin}: {why}"


@pytest.mark.parametrize("args", [["--target", "v0.2.1"], ["--target", "v0.2.1", "-m", "not slow"],
                                  ["--target", "v0.2.1", "--collect-only"], ["--resume"], ["--rollback-to", "v0.1.0"],
                                  ["--resume", str(ROOT / "suites" / "upgrade" / "test_30_resume.py")],
                                  ["--target", "v0.2.1", "--plan"]])
def test_whole_runs_pass_the_selection_check(pytester: pytest.Pytester, args: list[str]) -> None:
    """The whole upgrade (or the whole of a --resume or --rollback-to run) gets to the install dir check."""
    error = upgrade(pytester, *args)
    assert error == f"ERROR: --install-dir {pytester.path / 'absent'} does not exist; pass the directory OpenWatch " \
                    "was cloned into", error


@pytest.mark.parametrize(("args", "named"), [(["--resume", "-k", "rollback"], "-k"),
                                             (["--rollback-to", "v0.1.0", "-m", "preflight"], "-m"),
                                             (["--target", "v0.2.1", "--plan", "-k", "stage"], "-k")])
def test_own_runs_are_whole_too(pytester: pytest.Pytester, args: list[str], named: str) -> None:
    error = upgrade(pytester, *args)
    assert error.startswith(f"ERROR: {named}: {REFUSED}; this one leaves out 1 of its 1 tests"), error



@pytest.mark.parametrize(("args", "other"), [(["--resume", "--plan"], "--resume"),
                                             (["--rollback-to", "v0.1.0", "--plan"], "--rollback-to"),
                                             (["--component", "postgres", "--pg-rollback", "--plan"], "--pg-rollback")])
def test_plan_with_a_run_that_changes_things_is_refused_first(pytester: pytest.Pytester, args: list[str],
                                                              other: str) -> None:
    """Before the install dir is read: --plan never becomes (or rides along with) a run that changes things."""
    assert upgrade(pytester, *args) == (f"ERROR: --plan shows what an upgrade would do, changing nothing; it does not "
                                        f"go with {other}, which changes the installation: drop one of them")


@pytest.mark.parametrize("component", [["--component", "postgres", "--image", "openwatch-sandbox/postgres:17"],
                                       ["--component", "redis", "--image", "openwatch-sandbox/redis:8"],
                                       ["--component", "aegis", "--rules", "aegis-2026.2"],
                                       ["--component", "backend", "--target", "v0.2.1"]])
def test_component_plans_pass_the_selection_check(pytester: pytest.Pytester, component: list[str]) -> None:
    """A component's --plan runs its one test (test_plan) and gets as far as the install dir check."""
    assert upgrade(pytester, *component, "--plan") == f"ERROR: --install-dir {pytester.path / 'absent'} does not " \
                                                      "exist; pass the directory OpenWatch was cloned into"
