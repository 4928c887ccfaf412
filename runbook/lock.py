"""The whole-run lock: an OS lock held by this process plus a lock file naming the holder."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from runbook.errors import Problem
from runbook.journal import now
from runbook.release_checks import LOCK_FILE, held_by, lock_holder


class RunLock:
    def __init__(self, install_dir: Path) -> None:
        self.path = install_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, ticket: str | None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Problem(held_by(self.path.parent, lock_holder(self.path.parent) or {})) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now(),
                                 "ticket": ticket}).encode())
        os.fsync(fd)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
