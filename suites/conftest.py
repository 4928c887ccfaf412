"""Shared by every suite: start the slow probes first so they overlap the quick checks."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _start_slow_probes(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("worker_inspection")
