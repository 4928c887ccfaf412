"""Fixtures of the end-to-end tests: the sandbox made ready for v0.2.0, and reset after each scenario."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import releases
from sandbox.installation import Installation


@pytest.fixture(scope="module")
def ready(sandbox: Installation) -> Installation:
    """The operator has added the variable v0.2.0 requires, as its .env.example says."""
    sandbox.set_env("OPENWATCH_ENCRYPTION_KEY", "sandbox-test-key")
    return sandbox


@pytest.fixture
def baseline(ready: Installation, baseline_dump: Path) -> Iterator[Installation]:
    """The ready sandbox, put back after the test: oldest release, seeded data, no journal or lock."""
    try:
        yield ready
    finally:
        shutil.rmtree(ready.directory / ".openwatch-upgrade", ignore_errors=True)
        (ready.directory / ".openwatch-upgrade.lock").unlink(missing_ok=True)
        ready.reset(releases.OLDEST.tag, baseline_dump)
