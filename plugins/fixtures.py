"""Session fixtures shared by the suites: the profile, Docker client, database, HTTP and host handles."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import docker
import psycopg
import pytest
import requests
import testinfra
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from plugins.options import OPTIONS_KEY, PROFILE_KEY, SuiteOptions
from runbook import celery_checks, containers, host_checks, job_queue_checks, service_checks
from runbook.errors import Problem
from runbook.profile import Profile


def _stashed(config: pytest.Config, key):
    try:
        return config.stash[key]
    except KeyError:
        pytest.fail("the OpenWatch fixtures are for tests under suites/", pytrace=False)


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    return _stashed(pytestconfig, PROFILE_KEY)


@pytest.fixture(scope="session")
def options(pytestconfig: pytest.Config) -> SuiteOptions:
    return _stashed(pytestconfig, OPTIONS_KEY)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=30)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def db(profile: Profile) -> Iterator[psycopg.Connection]:
    """Autocommit connection to the OpenWatch database through its published 127.0.0.1 port."""
    conninfo = profile.db_conninfo()
    port = conninfo["port"]
    try:
        conn = psycopg.connect(**conninfo, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as error:
        first = profile.redactor(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        raise Problem(f"cannot connect to the database at 127.0.0.1:{port} ({first}); "
                      "is openwatch-db up? `docker compose up -d database`") from None
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    """Retries only idempotent requests, only on connection trouble; every call sets its own timeout."""
    session = requests.Session()
    retry = Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.2, allowed_methods=frozenset({"GET", "HEAD"}))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def host() -> testinfra.host.Host:
    return testinfra.get_host("local://")


@pytest.fixture(scope="session")
def states_at_start(docker_client: docker.DockerClient, profile: Profile) -> dict[str, containers.ContainerState]:
    return service_checks.container_states(docker_client, profile)


@pytest.fixture(scope="session")
def _background() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="openwatch-probe") as pool:
        yield pool


@pytest.fixture(scope="session")
def worker_inspection(_background: ThreadPoolExecutor, docker_client: docker.DockerClient,
                      profile: Profile) -> Future[celery_checks.WorkerSnapshot]:
    """Started at the first request and read later: the slowest probe overlaps the other checks."""
    return _background.submit(celery_checks.inspect_worker, docker_client, profile)


@pytest.fixture(scope="session")
def worker(worker_inspection: Future[celery_checks.WorkerSnapshot]) -> celery_checks.WorkerSnapshot:
    return worker_inspection.result()


@pytest.fixture(scope="session")
def queued(docker_client: docker.DockerClient, profile: Profile) -> dict[str, int]:
    _, queues = celery_checks.worker_command(docker_client, profile)
    return celery_checks.queue_lengths(profile, queues)


@pytest.fixture(scope="session")
def job_queue(db: psycopg.Connection, profile: Profile) -> job_queue_checks.QueueSnapshot:
    job_queue_checks.require_job_queue(profile)
    return job_queue_checks.snapshot(db)


@pytest.fixture(scope="session")
def api_paths(http: requests.Session, options: SuiteOptions) -> frozenset[str]:
    """The API of the installed code, as its OpenAPI document declares it."""
    return service_checks.api_paths(http, options.base_url)


@pytest.fixture(scope="session")
def space_needed(db: psycopg.Connection, docker_client: docker.DockerClient, profile: Profile) -> int:
    return host_checks.space_needed(host_checks.database_bytes(db), host_checks.image_bytes(docker_client, profile))


@pytest.fixture(scope="session")
def audit_token(http: requests.Session, options: SuiteOptions, profile: Profile) -> str:
    return service_checks.login(http, options.base_url, profile.setting("OPENWATCH_AUDIT_USER"),
                                profile.setting("OPENWATCH_AUDIT_PASSWORD"))
