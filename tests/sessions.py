"""Process sessions as a login makes them: a command run in a pseudo-terminal whose session leader
plays the shell, the terminal hung up as sshd does when the connection drops, a whole session
killed as by power loss."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The session leader, as a shell running one command in the foreground: killed by SIGHUP (the
# default), and the command is in its process group, which the terminal then signals too.
LOGIN_SHELL = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


@dataclass
class TerminalSession:
    leader: int
    master: int | None
    output: bytearray = field(default_factory=bytearray)

    @classmethod
    def start(cls, argv: Sequence[str], cwd: Path) -> TerminalSession:
        """``argv`` under a shell that leads a new session with a pseudo-terminal as its
        controlling terminal and as its stdin, stdout and stderr."""
        pid, master = pty.fork()
        if pid == 0:
            try:
                os.chdir(cwd)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as a login gets it, even if we run under nohup
                os.execv(sys.executable, [sys.executable, "-c", LOGIN_SHELL, *argv])
            finally:
                os._exit(127)
        return cls(pid, master)

    def read(self, seconds: float) -> None:
        """What the terminal shows within ``seconds`` (a terminal nobody reads blocks its writers)."""
        if self.master is None:
            time.sleep(seconds)
            return
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                self.output += os.read(self.master, 1 << 16)
            except OSError:  # EIO: nothing has the terminal open any more
                time.sleep(seconds)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.read(0.005)
        return False

    def hang_up(self) -> None:
        """Close the master: the kernel hangs the terminal up and sends SIGHUP to the session
        leader, which dies of it; its exit sends SIGHUP to the terminal's foreground process group."""
        os.close(self.master)
        self.master = None
        os.waitpid(self.leader, 0)

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def close(self) -> None:
        """After a failed test: nothing of the session may go on running."""
        if self.master is not None:
            os.close(self.master)
            self.master = None
        kill_session(self.leader)
        try:
            os.waitpid(self.leader, 0)
        except ChildProcessError:
            pass  # reaped by hang_up


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def session_members(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat_fields(int(entry.name))
            except OSError:
                continue  # ended while being read
            if int(fields[3]) == session and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def kill_session(session: int) -> None:
    """SIGKILL for every process of ``session``: a run and the commands it started, each of which
    has a process group of its own (runbook/shell.py)."""
    deadline = time.monotonic() + 10
    while (members := session_members(session)) and time.monotonic() < deadline:
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.05)


def ended(pid: int) -> bool:
    """``pid`` is gone or a zombie (an orphan is reaped by whoever adopted it, maybe never)."""
    try:
        return _stat_fields(pid)[0] in ("Z", "X")
    except OSError:
        return True


def wait_ended(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ended(pid):
            return True
        time.sleep(0.2)
    return False
