"""The tests run in their private engine, and the set-up works on a stock Debian 12.

The stock system is a container of the project's own offline bookworm minbase: it has neither
make, nor python3-venv, nor iproute2. README's one prerequisite (make; git only clones the
repository) is installed, then `make venv` must give a working venv with the suite's packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.shell import run
from sandbox import images
from sandbox.engine import PrivateEngine
from sandbox.installation import Installation

ROOT = Path(__file__).resolve().parents[2]
SETUP_FILES = ("Makefile", "requirements.txt", "fleet/requirements.txt", "sandbox/setup-host.sh", "sandbox/apt-guarded.sh")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE_MODULES = "import pytest, pytest_dependency, testinfra, docker, requests, psycopg, pytest_html, pytest_metadata, jsonschema"


def test_sandbox_lives_in_the_private_engine(sandbox: Installation, docker_engine: PrivateEngine) -> None:
    root_dir = run(["docker", "info", "--format", "{{.DockerRootDir}}"]).stdout.strip()
    assert root_dir == str(docker_engine.data_root)
    published = run(["docker", "port", "openwatch-backend", "8000"]).stdout.split()
    assert published == [f"127.0.0.1:{docker_engine.ports.backend}"]
    assert sandbox.health().json()["status"] == "healthy"


@pytest.fixture
def stock_debian(sandbox_ready: Path, tmp_path: Path) -> Iterator[list[str]]:
    """A running container of stock bookworm with the set-up files at /src; removed afterwards."""
    for name in SETUP_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    name = f"stock-debian-{uuid.uuid4().hex[:8]}"
    mounts = ["-v", f"{tmp_path}:/src"]
    if HOST_CA.exists():  # this machine's TLS goes through a proxy only its CA bundle trusts
        mounts += ["-v", f"{HOST_CA}:/host-ca.crt:ro", "-e", "PIP_CERT=/host-ca.crt"]
    run(["docker", "run", "--detach", "--name", name, *mounts, "-w", "/src", images.BASE_IMAGE, "sleep", "900"])
    try:
        yield ["docker", "exec", "-w", "/src", name]
    finally:
        run(["docker", "rm", "--force", name], check=False)


def test_stock_debian_gets_a_working_venv(stock_debian: list[str]) -> None:
    assert run([*stock_debian, "python3", "-c", "import ensurepip"], check=False).returncode != 0  # really stock
    run([*stock_debian, "apt-get", "update", "-qq"], timeout=300)
    run([*stock_debian, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "make"], timeout=300)
    setup = subprocess.run([*stock_debian, "make", "venv"], capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    assert "installing what this Debian lacks: python3-venv iproute2" in setup.stdout
    assert "apt-guarded: installing new packages:" in setup.stdout
    run([*stock_debian, ".venv/bin/python", "-c", SUITE_MODULES])
    again = run([*stock_debian, "make", "venv"])
    assert "is up to date" in again.stdout or "Nothing to be done" in again.stdout


def start_in_another_process(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", f"from sandbox.engine import PrivateEngine; PrivateEngine({name!r}).start()"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_killed_runs_engine_is_taken_over_and_a_live_runs_refused(docker_engine: PrivateEngine) -> None:
    """A run killed before it could stop its engine must not block the next run; a live run's engine must."""
    engine = PrivateEngine("takeover")
    try:
        assert start_in_another_process(engine.name).returncode == 0  # that process exits: a killed run
        left_running = engine.running_pid()
        assert left_running is not None
        engine.start()
        assert engine.running_pid() not in (None, left_running)
        refused = start_in_another_process(engine.name)
        assert refused.returncode != 0
        assert f"the private engine 'takeover' is already running (dockerd pid {engine.running_pid()})" in refused.stderr
    finally:
        engine.stop()
        shutil.rmtree(engine.data_root, ignore_errors=True)
        engine.log.unlink(missing_ok=True)
    assert engine.running_pid() is None
    assert run(["ip", "link", "show", engine.bridge], check=False).returncode != 0
