"""Fixtures for the project's own tests: the Docker engine and sandbox installations."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.shell import PROGRESS_LOG, progress
from sandbox import engine as engines
from sandbox import images, installation, releases
from tests import local_postgres, module_costs
from tests.fleet.bed import host_engines

PROGRESS_FILE_ENV = "OPENWATCH_PROGRESS_FILE"


@pytest.hookimpl(trylast=True)  # after the plugins' own configure: their unconfigure then finds their state
def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n`` the workers' live log is not shown: with ``OPENWATCH_PROGRESS_FILE`` set, each
    process appends its progress lines (and each test's start) there, for CI to follow with ``tail -F``.
    A bad ``OPENWATCH_FLEET_ENGINES``, or engines of this run that would share addresses (a fleet engine
    named fleetc has the slot of tests2, ``-n 3``'s third worker), is refused in one line before anything runs."""
    try:
        fleet = host_engines()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    workers = config.getoption("numprocesses", None)
    if isinstance(workers, int) and not os.environ.get("PYTEST_XDIST_WORKER"):
        base = engines.from_environment().name  # this process is no worker: the first worker's engine
        clash = engines.shared_slot([engines.worker_engine_name(base, f"gw{n}") for n in range(workers)] + list(fleet))
        if clash:
            raise pytest.UsageError(f"with -n {workers} the private engines {clash} would share addresses; set "
                                    "OPENWATCH_TEST_ENGINE or OPENWATCH_FLEET_ENGINES to other names")
    if config.getoption("store_module_costs") and not os.environ.get("PYTEST_XDIST_WORKER"):
        config.pluginmanager.register(module_costs.CostRecorder(), "module-costs-recorder")
    target = os.environ.get(PROGRESS_FILE_ENV)
    if not target:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{worker}] %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.INFO)
    PROGRESS_LOG.addHandler(handler)
    PROGRESS_LOG.setLevel(logging.INFO)


def pytest_runtest_logstart(nodeid: str) -> None:
    if os.environ.get(PROGRESS_FILE_ENV) and os.environ.get("PYTEST_XDIST_WORKER"):
        PROGRESS_LOG.info(f"start {nodeid}")


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> module_costs.SameWorkerScheduling | None:
    if config.getvalue("dist") == "loadfile":
        return module_costs.SameWorkerScheduling(config, log)
    return None  # xdist's own scheduler for the other --dist modes


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-module-costs", action="store_true",
                     help="write each test module's seconds in this run to tests/module_costs.json (read to run "
                          "the slowest modules first)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
    items[:] = module_costs.longest_first(items, module_costs.load())


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[engines.PrivateEngine]:
    """The tests' own Docker engine, started for this run and stopped after it.

    Everything the tests start (sandboxes, suite runs, compose, the SDK) goes there through
    ``DOCKER_HOST``, so an installation on the host's engine is neither seen nor touched.
    """
    try:
        with engines.from_environment().serving() as engine:
            left = engine.remove_leftovers()
            if left:
                progress(f"removed containers an interrupted earlier run left in the private engine: {', '.join(left)}")
            yield engine
    except engines.EngineError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def sandbox_ready(docker_engine: None) -> Path:
    """Base and infrastructure images built, release origin built: once per run."""
    images.ensure_all()
    return releases.ensure_origin()


@pytest.fixture(scope="module")
def sandbox(sandbox_ready: Path, docker_engine: engines.PrivateEngine,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[installation.Installation]:
    """A seeded, healthy installation at the oldest release, destroyed after the module."""
    directory = tmp_path_factory.mktemp("openwatch") / "install"
    install = installation.create(directory, releases.OLDEST.tag, origin=sandbox_ready, ports=docker_engine.ports,
                                  subnet=docker_engine.install_subnet)
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


@pytest.fixture(scope="session")
def local_postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL of this machine (no container), for tests that need a real catalog."""
    if local_postgres.server_bin() is None:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian: postgresql-15)")
    with local_postgres.cluster() as conninfo:
        yield conninfo
