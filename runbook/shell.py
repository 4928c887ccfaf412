"""Run commands as argument lists and fail with the command, exit code and stderr tail."""

from __future__ import annotations

import logging
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
    """Run ``argv`` capturing text output; raise :class:`CommandError` when ``check`` fails."""
    __tracebackhide__ = True
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, **OWN_GROUP,
    )
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc


def progress(message: str) -> None:
    """A step worth seeing as it happens: pytest shows INFO live (``log_cli``), ``python -m sandbox`` too."""
    PROGRESS_LOG.info(message)
