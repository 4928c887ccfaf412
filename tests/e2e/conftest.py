"""Fixtures of the end-to-end tests: the sandbox made ready for v0.2.0, and reset after each scenario."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.shell import progress
from sandbox import engine as engines
from sandbox import releases
from sandbox.installation import Installation
from sandbox.real import installation as real_installation
from sandbox.real import releases as real_releases
from tests.sandbox_state import all_up, at_rest, forget_runs


@pytest.fixture(scope="module")
def ready(sandbox: Installation) -> Installation:
    """The operator has added the variable v0.2.0 requires, as its .env.example says."""
    sandbox.set_env("OPENWATCH_ENCRYPTION_KEY", "sandbox-test-key")
    return sandbox


@pytest.fixture(scope="module")
def baseline_state(ready: Installation, baseline_dump: Path) -> dict:
    """The seeded sandbox as :func:`at_rest` reads it, taken with the baseline dump."""
    return at_rest(ready)


def unchanged(install: Installation, baseline_state: dict) -> bool:
    try:
        found = at_rest(install)
    except Exception:  # noqa: BLE001 - a database or container the scenario left unreadable needs the reset
        return False
    return found == baseline_state and all_up(found)


@pytest.fixture
def baseline(request: pytest.FixtureRequest, ready: Installation, baseline_dump: Path,
             baseline_state: dict) -> Iterator[Installation]:
    """The ready sandbox, put back after the test: oldest release, seeded data, no journal or lock.

    A scenario that left it as the baseline, every container up (a refused run, a plan, most roll-backs),
    only loses its journal and lock: the full reset (restore, checkout, build, up) is for the others."""
    try:
        yield ready
    finally:
        forget_runs(ready.directory)
        if unchanged(ready, baseline_state):
            progress(f"{request.node.name}: sandbox left at its baseline, only its journal and lock removed")
        else:
            ready.reset(releases.OLDEST.tag, baseline_dump)


@pytest.fixture(scope="module")
def real_origin(docker_engine: engines.PrivateEngine) -> Path:
    """Images (base, stand-ins, node) and the origin cloned from the bundle: once per module."""
    real_installation.ensure_images()
    return real_releases.ensure_origin()


@pytest.fixture(scope="module")
def real_install(request: pytest.FixtureRequest, real_origin: Path, docker_engine: engines.PrivateEngine,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[real_installation.RealInstallation]:
    """One real installation per tag and module (parametrize with ``indirect=True, scope="module"``:
    the tests of a tag run together, and one installation exists at a time, its container names
    being OpenWatch's fixed ones)."""
    directory = tmp_path_factory.mktemp("real") / "install"
    try:
        install = real_installation.create(directory, request.param, origin=real_origin, ports=docker_engine.ports,
                                           subnet=docker_engine.install_subnet)
    except BaseException:  # a creation that failed half-way (a service never healthy) leaves nothing running
        real_installation.RealInstallation(directory).destroy()
        raise
    try:
        yield install
    finally:
        install.destroy()
    left = install.compose("ps", "--all", "--quiet", check=False).stdout.split() if install.directory.exists() else []
    assert not left and not install.directory.exists()
