"""One builder at a time for what the machine shares between test processes.

The base tarballs and the release origins live outside any one engine; parallel test workers (each
with an engine of its own) would otherwise debootstrap or clone into the same path at once.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook.shell import progress

LOCK_DIR = Path("/run/lock/openwatch-sandbox")
POLL_SECONDS = 1.0


class BusyError(RuntimeError):
    """Another process held the lock for longer than the caller would wait."""


@contextmanager
def exclusive(name: str, wait_seconds: float = 1800.0) -> Iterator[None]:
    """Hold the machine-wide lock ``name``, waiting (bounded) while another process builds."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BusyError(f"another process has been building {name} for over {wait_seconds:.0f}s; "
                                    f"wait for it or stop it (lock {LOCK_DIR / name}.lock)") from None
                if not announced:
                    progress(f"waiting for another test process to finish building {name}")
                    announced = True
                time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing drops the lock
