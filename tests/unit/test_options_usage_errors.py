"""Options that cannot work are refused before any check runs, with one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite_runner import ROOT, run_suite

# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")


def test_missing_install_dir(pytester: pytest.Pytester, tmp_path: Path) -> None:
    run = run_suite(pytester, "postflight", "--install-dir", str(tmp_path / "absent"))
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: --install-dir {tmp_path / 'absent'} does not exist; pass the directory OpenWatch was cloned into" in run.output


def test_directory_that_is_not_an_installation(pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "VERSION").write_text("0.1.0\n")
    run = run_suite(pytester, "preflight", "--install-dir", str(tmp_path))
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert (f"ERROR: {tmp_path} is not an OpenWatch installation (missing docker-compose.yml, backend/alembic.ini); "
            "pass the right --install-dir") in run.output
    assert "Traceback" not in run.output


def test_project_tests_need_no_installation(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pytest tests` never validates --install-dir: the default /opt/openwatch may not exist."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    pytester.makeconftest('pytest_plugins = ("plugins.options",)\n')
    result = pytester.runpytest_subprocess("--install-dir", "/nonexistent/openwatch")
    result.assert_outcomes(passed=1)
