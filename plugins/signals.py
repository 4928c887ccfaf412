"""SIGTERM (a dropped session, systemd, kill) ends a run like Ctrl-C: as an interruption, which
plugins/rollback.py rolls back. Once an upgrade was interrupted, a second signal is refused with a
message: stopping the rollback half-way would leave the installation worse than either end."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from plugins.keys import UPGRADE_KEY

SIGNALLED_KEY = pytest.StashKey[bool]()
PREVIOUS_HANDLERS_KEY = pytest.StashKey[dict]()
INTERRUPTING = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Refuse SIGINT and SIGTERM while the block runs (a rollback must finish)."""
    previous = {sig: signal.signal(sig, refuse) for sig in INTERRUPTING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pytest_configure(config: pytest.Config) -> None:
    handler = functools.partial(interrupt, config)
    config.stash[PREVIOUS_HANDLERS_KEY] = {sig: signal.signal(sig, handler) for sig in INTERRUPTING}


def pytest_unconfigure(config: pytest.Config) -> None:
    for sig, previous in config.stash.get(PREVIOUS_HANDLERS_KEY, {}).items():
        signal.signal(sig, previous)


def interrupt(config: pytest.Config, signum: int, frame: object) -> None:
    """The first signal interrupts the run; once an upgrade was interrupted, further ones are refused
    from that instant on, not only once the rollback has begun (a quick second Ctrl-C would otherwise
    land between the two and stop the run half-way)."""
    if config.stash.get(SIGNALLED_KEY, False) and UPGRADE_KEY in config.stash:
        refuse(signum, frame)
        return
    config.stash[SIGNALLED_KEY] = True
    raise KeyboardInterrupt(signal.Signals(signum).name)


def refuse(signum: int, frame: object) -> None:
    sys.stderr.write(f"\n{signal.Signals(signum).name} ignored: the upgrade is being rolled back and must finish\n")
