"""A check's outcome does not depend on whether it is the first or a later user of a session fixture:
pytest re-raises a cached fixture exception as it was, so the domain errors are turned into pytest
outcomes at test setup too (plugins/checks.py)."""

from __future__ import annotations

import pytest

from tests.suite_runner import ROOT
from tests.unit.test_redaction import fake_installation

pytestmark = pytest.mark.usefixtures("docker_engine")

SHARED_FIXTURE_SUITE = '''
import pytest
from runbook.errors import NotApplicable, Problem

@pytest.fixture(scope="session")
def queue_that_is_not_here():
    raise NotApplicable("no such queue on this installation")

@pytest.fixture(scope="session")
def broken_probe():
    raise Problem("the probe cannot reach the worker; start it")

def test_first_not_applicable(queue_that_is_not_here): pass
def test_second_not_applicable(queue_that_is_not_here): pass
def test_first_broken(broken_probe): pass
def test_second_broken(broken_probe): pass
'''


def test_later_users_of_a_session_fixture_get_the_same_outcome(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    install = fake_installation(pytester.path)
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_shared.py").write_text(SHARED_FIXTURE_SUITE)
    result = pytester.runpytest_subprocess("suites", "--install-dir", str(install), "-rA")
    result.assert_outcomes(skipped=2, errors=2)
    output = "\n".join(result.outlines)
    assert "SKIPPED [2]" in output and "no such queue on this installation" in output
    assert output.count("the probe cannot reach the worker; start it") >= 2
    assert "Traceback" not in output and "runbook.errors" not in output
