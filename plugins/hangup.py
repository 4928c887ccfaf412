"""A dropped SSH session (SIGHUP) does not stop a run: it goes on to its natural end, upgraded or
rolled back, and from the hang-up on its output goes to ``<bundle>.log`` in the report folder.

Unlike Ctrl-C or SIGTERM (plugins/rollback.py), a hang-up is not an operator deciding to abort:
finishing is the shortest way back to service, and a failure after it is still rolled back. What
would stop the run is its own output to the dead terminal, so that is moved to the log
(runbook/hangup.py). The commands the run starts never see the hang-up: they run in their own
process group (runbook/shell.py), so an Alembic migration or ``compose up`` in flight carries on.
A run started with SIGHUP ignored (``nohup``) keeps it ignored.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_metadata.plugin import metadata_key

from plugins.bundle import BUNDLE_KEY
from plugins.keys import UPGRADE_KEY
from runbook.hangup import Stream, redirect, session_streams


@dataclass(frozen=True)
class HangUp:
    at: str
    stage: str | None  # the upgrade stage running then; None outside an upgrade
    log: Path


STREAMS_KEY = pytest.StashKey[frozenset[Stream]]()
PREVIOUS_HANDLER_KEY = pytest.StashKey[object]()
HANGUP_KEY = pytest.StashKey[HangUp]()


def pytest_configure(config: pytest.Config) -> None:
    """After plugins/bundle.py (tryfirst) named the bundle; with output capture suspended, so
    descriptors 0-2 are still the ones the run was started with."""
    if BUNDLE_KEY not in config.stash or signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return
    config.stash[STREAMS_KEY] = session_streams()
    config.stash[PREVIOUS_HANDLER_KEY] = signal.signal(signal.SIGHUP, functools.partial(_hung_up, config))


def _hung_up(config: pytest.Config, signum: int, frame: object) -> None:
    """Only system calls here: the main thread may be inside a print or a journal write."""
    if HANGUP_KEY in config.stash:
        return  # the shell, and the kernel when the shell exits, may each send one
    upgrade = config.stash.get(UPGRADE_KEY, None)
    hangup = HangUp(time.strftime("%Y-%m-%d %H:%M:%S"), upgrade.journal.last_stage() if upgrade else None,
                    config.stash[BUNDLE_KEY].log)
    config.stash[HANGUP_KEY] = hangup
    during = f" during stage {hangup.stage}" if hangup.stage else ""
    banner = f"\n{hangup.at} SIGHUP: the terminal hung up{during}; the run goes on to its end, output continues here\n"
    try:
        redirect(config.stash[STREAMS_KEY], hangup.log, banner)
    except OSError:  # an exception here would break off whatever the run was doing: lose the output instead
        redirect(config.stash[STREAMS_KEY], Path(os.devnull), banner)
    if config.pluginmanager.has_plugin("terminalreporter"):
        config.get_terminal_writer().hasmarkup = False  # a file to read with less or grep: no colour codes


def pytest_unconfigure(config: pytest.Config) -> None:
    if PREVIOUS_HANDLER_KEY in config.stash:
        signal.signal(signal.SIGHUP, config.stash[PREVIOUS_HANDLER_KEY])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Into the report's header (pytest-metadata) before pytest-html writes it."""
    hangup = session.config.stash.get(HANGUP_KEY, None)
    if hangup is not None:
        during = f" during stage {hangup.stage}" if hangup.stage else ""
        session.config.stash.setdefault(metadata_key, {})["Terminal hang-up"] = (
            f"{hangup.at}{during}; the run went on, its output from then on is in {hangup.log}")
