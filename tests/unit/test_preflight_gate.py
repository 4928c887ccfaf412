"""The gate lets the upgrade go on only when every pre-flight check ran in this session and passed:
no failed test is not enough (a check that was deselected, skipped or never run fails the gate)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from plugins.gate import OUTCOMES_KEY, PLAN_KEY, SuitePlan, unmet, verify_preflight
from runbook.errors import Problem
from tests.suite_runner import ROOT

CHECKS = ("test_backend_reports_healthy", "test_env_has_every_variable_the_target_expects",
          "test_every_container_running_and_healthy")
PASSED = {"setup": "passed", "call": "passed", "teardown": "passed"}


def test_every_check_passed_or_did_not_apply() -> None:
    outcomes = {CHECKS[0]: PASSED, CHECKS[1]: {"setup": "passed", "call": "not applicable", "teardown": "passed"},
                CHECKS[2]: {"setup": "not applicable", "teardown": "passed"}}
    assert unmet(CHECKS, outcomes) == []


@pytest.mark.parametrize(("phases", "why"), [
    (None, "did not run"),
    ({}, "did not run"),
    ({"setup": "failed", "teardown": "passed"}, "failed"),
    ({"setup": "passed", "call": "failed", "teardown": "passed"}, "failed"),
    ({"setup": "passed", "call": "passed", "teardown": "failed"}, "failed"),
    ({"setup": "skipped", "teardown": "passed"}, "was skipped"),
    ({"setup": "passed", "call": "skipped", "teardown": "passed"}, "was skipped"),
    ({"setup": "passed"}, "did not run to the end"),
])
def test_a_check_that_did_not_pass_holds_the_gate(phases: dict | None, why: str) -> None:
    outcomes = {CHECKS[0]: PASSED, CHECKS[2]: PASSED}
    if phases is not None:
        outcomes[CHECKS[1]] = phases
    assert unmet(CHECKS, outcomes) == [f"{CHECKS[1]} {why}"]


def _config(outcomes: dict) -> SimpleNamespace:
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[PLAN_KEY] = SuitePlan(ROOT / "suites" / "upgrade", CHECKS, ("test_stage[gate]",))
    config.stash[OUTCOMES_KEY] = outcomes
    return config


def test_gate_names_what_held_it_on_one_line() -> None:
    """As with openwatch-redis stopped and the other checks deselected: no test failed, and yet."""
    with pytest.raises(Problem) as held:
        verify_preflight(_config({CHECKS[0]: PASSED, CHECKS[2]: {"setup": "passed", "call": "failed"}}))
    assert str(held.value) == (
        "the pre-flight gate failed: 2 of 3 pre-flight checks did not pass (test_env_has_every_variable_the_target_"
        "expects did not run; test_every_container_running_and_healthy failed); nothing was changed")
    verify_preflight(_config({name: PASSED for name in CHECKS}))
    with pytest.raises(Problem, match="1 of 3 pre-flight checks did not pass"):
        verify_preflight(_config({name: PASSED for name in CHECKS[1:]}))


def test_gate_without_recorded_outcomes_fails() -> None:
    """The recording plugin disabled (-p no:plugins.gate) records nothing: the gate must not open."""
    config = _config({})
    del config.stash[OUTCOMES_KEY]
    with pytest.raises(Problem, match="3 of 3 pre-flight checks did not pass"):
        verify_preflight(config)


def test_outcomes_are_recorded_in_the_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real session: a NotApplicable skip is accepted, a plain skip and a failure hold the gate."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(
        "from pathlib import Path\n"
        "from plugins.gate import PLAN_KEY, SuitePlan\n"
        "def pytest_configure(config):\n"
        "    checks = ('test_passes', 'test_does_not_apply', 'test_skipped', 'test_fails')\n"
        "    config.stash[PLAN_KEY] = SuitePlan(Path(__file__).parent, checks, ('test_gate',))\n")
    pytester.makepyfile(test_suite=(
        "import pytest\n"
        "from plugins.gate import verify_preflight\n"
        "from runbook.errors import NotApplicable\n"
        "def test_passes(): pass\n"
        "def test_does_not_apply(): raise NotApplicable('no audit user configured')\n"
        "def test_skipped(): pytest.skip('skipped by hand')\n"
        "def test_fails(): assert False\n"
        "def test_gate(request): verify_preflight(request.config)\n"))
    result = pytester.runpytest_subprocess("-p", "plugins.checks", "-p", "plugins.gate", "-p", "dependency",
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2, failed=2, warnings=0)
    result.stdout.fnmatch_lines(["the pre-flight gate failed: 2 of 4 pre-flight checks did not pass (test_skipped was "
                                 "skipped; test_fails failed); nothing was changed"])
