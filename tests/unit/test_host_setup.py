"""The set-up never upgrades the host: what the Docker bootstrap would install is only new packages,
and the guard it installs through refuses a command that would upgrade (the old `-t trixie` one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("apt-get") is None,
                                reason="needs root on a Debian machine (apt-get)")


def bash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def docker_simulation() -> subprocess.CompletedProcess[str]:
    """Exactly what `make test` / `make demo` would install, simulated (adds the pinned trixie source if missing)."""
    return bash(str(SANDBOX / "bootstrap-docker.sh"), "--simulate")


def test_docker_install_upgrades_and_removes_nothing(docker_simulation: subprocess.CompletedProcess[str]) -> None:
    assert docker_simulation.returncode == 0, docker_simulation.stderr
    assert "would install only new packages:" in docker_simulation.stdout


def test_guard_refuses_the_old_target_release_install(docker_simulation: subprocess.CompletedProcess[str]) -> None:
    """`-t trixie` raised libc6, systemd and python3 to Debian 13; the guard must say so and install nothing.

    `hello` stands in for docker.io (which this machine may already have): any package not installed
    yet, taken with `-t trixie`, drags trixie's libc6 in.
    """
    refused = bash(str(SANDBOX / "apt-guarded.sh"), "-t", "trixie", "hello")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("apt-guarded: refusing to install")
    assert " libc6 " in lines[0]


def test_guard_names_packages_to_install() -> None:
    refused = bash(str(SANDBOX / "apt-guarded.sh"), "--simulate")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "apt-guarded: name the packages to install"
