"""A real second process holding an installation's upgrade lock, at a given stage of its journal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.suite_runner import ROOT

HOLD_THE_LOCK = """
import sys
from pathlib import Path
from runbook.journal import Journal
from runbook.lock import RunLock
install, target, ticket, stage = Path(sys.argv[1]), *sys.argv[2:]
journal = Journal.start(install, target, ticket)
lock = RunLock(install)
lock.acquire(ticket)
journal.take_over()
journal.stage_started(stage)
print("holding", flush=True)
sys.stdin.read()
lock.release()
"""


@contextmanager
def holding_the_lock(install_dir: Path, target: str, ticket: str, stage: str) -> Iterator[subprocess.Popen]:
    """The lock taken and the journal at ``stage``, as an upgrade run would have them, until the block ends
    (then the lock is released; the journal, still ``running``, is the caller's to remove)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(install_dir), target, ticket, stage],
                              cwd=ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        if holder.stdout.readline() != "holding\n":
            raise RuntimeError("the lock-holding process did not take the lock")
        yield holder
    finally:
        holder.communicate(input="", timeout=30)
