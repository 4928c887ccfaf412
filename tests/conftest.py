"""Fixtures for the project's own tests: the Docker engine and sandbox installations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import images, installation, releases
from runbook.shell import run

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if run(["docker", "info"], check=False).returncode != 0:
        pytest.fail("no Docker engine answers; run `bash sandbox/bootstrap-docker.sh` (or `make test`)", pytrace=False)
    clashing = run(["docker", "ps", "-a", "--filter", "name=^openwatch-", "--format", "{{.Names}}"]).stdout.split()
    if clashing:
        pytest.fail(f"OpenWatch containers already exist ({', '.join(clashing)}); the sandbox uses fixed container "
                    "names, so stop that installation first (`make demo-down`)", pytrace=False)


@pytest.fixture(scope="session")
def sandbox_ready(docker_engine: None) -> Path:
    """Base and infrastructure images built, release origin built: once per run."""
    images.ensure_all()
    return releases.ensure_origin()


@pytest.fixture(scope="module")
def sandbox(sandbox_ready: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[installation.Installation]:
    """A seeded, healthy installation at the oldest release, destroyed after the module."""
    directory = tmp_path_factory.mktemp("openwatch") / "install"
    install = installation.create(directory, releases.OLDEST.tag, origin=sandbox_ready)
    try:
        yield install
    finally:
        install.destroy()


@pytest.fixture(scope="module")
def baseline_dump(sandbox: installation.Installation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The freshly seeded database, to reset the sandbox between scenarios without rebuilding it."""
    dump = tmp_path_factory.mktemp("dumps") / "baseline.dump"
    sandbox.save_database(dump)
    return dump

