"""What a run writes to must outlive a dropped session: the descriptors on the terminal (or pipe)
the run was started with are pointed at a log file when the session hangs up.

Once the terminal is gone every write to it fails with EIO, and a pipe's reader (``| tee``) dies
with the session, so writes fail with EPIPE; either would end the run half-way through a stage.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

Stream = tuple[int, int]  # (st_dev, st_ino): the same terminal or pipe, whichever descriptor holds it
OPEN_DESCRIPTORS = Path("/proc/self/fd")


def session_streams(descriptors: tuple[int, ...] = (0, 1, 2)) -> frozenset[Stream]:
    """The terminals, pipes and sockets among ``descriptors``: what dies with the session. A regular
    file (``nohup``, ``> file``) or /dev/null outlives it and is left alone."""
    found = set()
    for descriptor in descriptors:
        try:
            status = os.fstat(descriptor)
        except OSError:
            continue
        if os.isatty(descriptor) or stat.S_ISFIFO(status.st_mode) or stat.S_ISSOCK(status.st_mode):
            found.add((status.st_dev, status.st_ino))
    return frozenset(found)


def redirect(streams: frozenset[Stream], log: Path, banner: str) -> list[int]:
    """Point every open descriptor on one of ``streams`` at ``log`` (appended to, created 0600,
    ``banner`` first) and return them. Not only 0, 1 and 2: pytest keeps copies of them (output
    capture restores them after each test, faulthandler writes to one), and those must move too.
    fstat still works on a hung-up terminal, where isatty no longer does."""
    # Read and write, appending: a read finds the end of the file, as it would find it in /dev/null.
    target = os.open(log, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(target, banner.encode())
        moved = []
        for name in os.listdir(OPEN_DESCRIPTORS):
            descriptor = int(name)
            try:
                status = os.fstat(descriptor)
            except OSError:
                continue  # the descriptor listdir itself used, closed by now
            if descriptor != target and (status.st_dev, status.st_ino) in streams:
                os.dup2(target, descriptor, inheritable=os.get_inheritable(descriptor))
                moved.append(descriptor)
        return moved
    finally:
        os.close(target)
