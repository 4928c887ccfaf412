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
    """Released by removing the file while still holding it, then unlocking. A process that opened
    the file just before the removal then locks an inode nobody can find any more: :meth:`acquire`
    sees that and takes the file now at the path instead, so two runs never both hold "the" lock."""

    ATTEMPTS = 5  # each retry means another run released in between; more in a row means a loop of runs

    def __init__(self, install_dir: Path) -> None:
        self.path = install_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, ticket: str | None) -> None:
        for _ in range(self.ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise Problem(held_by(self.path.parent, lock_holder(self.path.parent) or {})) from None
            if self._at_path(fd):
                break
            os.close(fd)  # released and removed between our open and our lock: try the file there now
        else:
            raise Problem(f"{self.path} was replaced {self.ATTEMPTS} times while taking it; other runs keep "
                          "starting: stop them and run again")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now(),
                                 "ticket": ticket}).encode())
        os.fsync(fd)
        self._fd = fd

    def _at_path(self, fd: int) -> bool:
        """Whether ``fd`` is the file the lock path names (not one a releasing run has just removed)."""
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # first, while held: unlocked, the file may already be another run's
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
