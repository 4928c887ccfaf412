"""runbook.shell.run kills the command's whole process group when it gives up on the command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook.shell import CommandError, run

# A parent that starts a child holding the inherited output pipes, like `docker` running its compose plugin.
PARENT_WITH_CHILD = ("import subprocess, sys, time; child = subprocess.Popen(['sleep', '600']); "
                     "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(600)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def wait_for_pid(path: Path) -> int:
    for _ in range(100):
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_a_timeout_kills_the_grandchild_that_holds_the_pipes(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        # Long enough for the parent to start its child even on a loaded machine.
        run([sys.executable, "-c", PARENT_WITH_CHILD, str(pid_file)], timeout=20)
    # Without the group kill, waiting for the pipes would last as long as the child: 600 s.
    assert time.monotonic() - started < 300
    assert not alive(wait_for_pid(pid_file))


def test_a_failed_command_names_itself_and_its_stderr() -> None:
    with pytest.raises(CommandError, match=r"exited 3: the reason"):
        run([sys.executable, "-c", "import sys; sys.stderr.write('the reason'); sys.exit(3)"])


def test_input_reaches_the_command() -> None:
    assert run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], stdin="abc").stdout == "ABC\n"
