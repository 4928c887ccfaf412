"""Run commands as argument lists and fail with the command, exit code and stderr tail."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


PROGRESS_LOG = logging.getLogger("openwatch.progress")
# Every command runs in its own process group. The signals a terminal sends its foreground group
# (SIGHUP when the SSH session drops, SIGINT on Ctrl-C) then reach only the run, which decides what
# happens to a command in flight: it kills it when interrupted, lets it finish after a hang-up
# (plugins/hangup.py). Such a command must not read the terminal (a background group that does is
# stopped), so its stdin is /dev/null unless it is given input.
OWN_GROUP = {"process_group": 0}


class CommandError(RuntimeError):
    """A command exited non-zero; the message carries what an operator needs to act."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__(f"{' '.join(argv)} exited {returncode}: {tail}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = 600,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` capturing text output; raise :class:`CommandError` when ``check`` fails.

    On a timeout or an interrupt the command's whole process group is killed, not only ``argv[0]``:
    ``docker compose`` runs its plugin as a child, which would otherwise go on (creating a container the
    rollback has already swept for) and keep the output pipes open, so waiting for them would hang."""
    __tracebackhide__ = True
    command = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **OWN_GROUP,
    )
    try:
        stdout, stderr = command.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(command)
        stdout, stderr = command.communicate()
        raise subprocess.TimeoutExpired(command.args, timeout or 0, output=stdout, stderr=stderr) from None
    except BaseException:
        kill_group(command)
        command.wait()
        raise
    proc = subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc


def kill_group(command: subprocess.Popen[str]) -> None:
    """SIGKILL every process of the command's group (it has its own: ``OWN_GROUP``)."""
    try:
        os.killpg(command.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already gone
        pass


def progress(message: str) -> None:
    """A step worth seeing as it happens: pytest shows INFO live (``log_cli``), ``python -m sandbox`` too."""
    PROGRESS_LOG.info(message)
