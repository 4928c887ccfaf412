"""An installation mounted read-only: the pre-flight says, in one line each, that the install dir
and the backup folder cannot be written and what needs them, never with an OSError traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook import host_checks
from runbook.errors import Problem
from tests.fake_installation import NOWHERE, fake_installation
from tests.suite_runner import ROOT, run_suite

# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")


@pytest.fixture
def read_only_install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real read-only bind mount (root ignores chmod; a mount it cannot write through)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    install = fake_installation(pytester.path)
    (install / ".git").mkdir()
    mount = subprocess.run(["mount", "--bind", "-o", "ro", str(install), str(install)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mount.stderr.strip()}")
    try:
        yield install
    finally:
        subprocess.run(["umount", str(install)], check=True)


def test_read_only_install_dir_is_two_one_line_problems(pytester: pytest.Pytester, read_only_install: Path) -> None:
    run = run_suite(pytester, "preflight", "--install-dir", str(read_only_install), *NOWHERE,
                    "-k", "writable")
    assert run.outcomes == {"test_install_dir_writable": "failed", "test_backup_dir_writable": "failed"}, run.output
    assert run.messages["test_install_dir_writable"] == (  # JUnit's message: pytest.fail's text, prefixed
        f"Failed: {read_only_install} is not writable (Read-only file system); the upgrade's lock file, journal and "
        "checkout must write there: mount it read-write or fix its ownership")
    assert run.messages["test_backup_dir_writable"] == (
        f"Failed: backup folder {read_only_install / 'backups' / 'postgres'} is not writable (Read-only file system); the "
        "upgrade writes its database dump and config copy there: fix its permissions, mount it read-write or free space")
    assert "OSError" not in run.output and "Traceback" not in run.output and "pathlib.py" not in run.output


def test_each_place_the_upgrade_writes_is_probed(tmp_path: Path) -> None:
    """The journal folder and .git can be read-only on their own (a separate mount, another owner)."""
    install = fake_installation(tmp_path)
    (install / ".git").mkdir()
    host_checks.install_dir_writable(install)
    assert not list(install.rglob(host_checks.WRITE_PROBE))
    subprocess.run(["mount", "--bind", "-o", "ro", str(install / ".git"), str(install / ".git")], check=True)
    try:
        with pytest.raises(Problem) as refused:
            host_checks.install_dir_writable(install)
    finally:
        subprocess.run(["umount", str(install / ".git")], check=True)
    assert str(refused.value) == (f"{install / '.git'} is not writable (Read-only file system); the checkout of the "
                                  "target must write there: mount it read-write or fix its ownership")
