"""Checks about the release to move to: .env drift, local changes, a running upgrade (the target
itself is resolved and judged in :mod:`runbook.targets`)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from runbook import gitrepo
from runbook.errors import NotApplicable, Problem
from runbook.journal import Journal
from runbook.envfile import parse_env, unset_secrets
from runbook.profile import Profile
from runbook.shell import CommandError
from runbook.targets import Target

LOCK_FILE = ".openwatch-upgrade.lock"


def env_drift(profile: Profile, target: Target | None) -> None:
    if target is None:
        raise NotApplicable("no --target given; pass --target to compare .env with the target's .env.example")
    try:
        example = gitrepo.file_at(profile.install_dir, target.commit, ".env.example")
    except CommandError:
        raise Problem(f"cannot read .env.example at {target.label}; the checkout stage needs it to compare .env") from None
    expected = parse_env(example, interpolate=False)
    missing = sorted(name for name in expected if name not in profile.env)
    if missing:
        raise Problem(f".env lacks variables that {target.name} expects: {', '.join(missing)}; "
                      f"add them to .env (see {target.name}'s .env.example for what each one is)")
    unset = unset_secrets(profile.env, example)
    if unset:
        raise Problem(f".env leaves secrets that {target.name} requires unset: {', '.join(unset)}; "
                      f"set them (see {target.name}'s .env.example)")


def no_local_changes(install_dir: Path) -> None:
    changed = gitrepo.modified_tracked_files(install_dir)
    if changed:
        shown = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
        raise Problem(f"{len(changed)} tracked files are modified locally ({shown}); a checkout would clobber them: "
                      "commit them to a branch or `git stash` them first")


def lock_holder(install_dir: Path) -> dict | None:
    lock = install_dir / LOCK_FILE
    if not lock.exists():
        return None
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {"pid": None, "host": "?", "started": "?", "ticket": "?"}


def live_holder(install_dir: Path) -> str | None:
    """Who holds the upgrade lock, when a live run on this host does (see :func:`held_by`)."""
    holder = lock_holder(install_dir)
    return held_by(install_dir, holder) if holder is not None and holder_alive(holder) else None


def held_by(install_dir: Path, holder: dict) -> str:
    """The refusal that names a lock holder: pid, host, ticket, the stage its journal is at, and since when."""
    journal = Journal.load(install_dir)
    data = journal.data if journal is not None else {}
    if data.get("outcome") == "running" and data.get("pid") == holder.get("pid"):
        stage = journal.last_stage()
    elif (data.get("resumed") or {}).get("by_pid") == holder.get("pid"):
        stage = f"--resume of {journal.last_stage()}"
    else:  # it has not written its journal yet, or it is a --rollback-to run, which keeps the upgrade's
        stage = "unknown"
    return (f"another upgrade run holds {install_dir / LOCK_FILE} (pid {holder.get('pid')}, host {holder.get('host')}, "
            f"ticket {holder.get('ticket')}, stage {stage}, since {holder.get('started')}); wait for it to finish")


def no_upgrade_running(install_dir: Path, break_lock: bool = False) -> str | None:
    """Refuses while another run holds the lock. A lock whose holder is gone (or on another host,
    where this host cannot tell) is reported and only taken over with ``break_lock``; the OS lock
    still stops a live holder on this host even then. Returns what was taken over, if anything."""
    holder = lock_holder(install_dir)
    journal = Journal.load(install_dir)
    if holder is None and (journal is None or journal.data.get("outcome") != "running"):
        return None
    holder = holder or {key: journal.data.get(key) for key in ("pid", "host", "started", "ticket")}
    who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}, ticket {holder.get('ticket')}"
    if holder_alive(holder):
        raise Problem(held_by(install_dir, holder))
    died = died_unfinished(journal)
    if died:
        raise Problem(died)
    same_host = holder.get("host") == socket.gethostname()
    if break_lock:
        return who
    gone = "is gone" if same_host else "ran on another host, which this host cannot check"
    raise Problem(f"a previous upgrade run left its lock ({who}) and {gone}; read .openwatch-upgrade/journal.json, "
                  "then rerun with --break-lock")


def died_unfinished(journal: Journal | None) -> str | None:
    """What to do about a run on this host that died mid-way (its journal still says running)."""
    data = journal.data if journal is not None else {}
    if data.get("outcome") != "running" or data.get("host") != socket.gethostname() or holder_alive(data):
        return None
    return (f"the upgrade run {data.get('run_id')} (pid {data.get('pid')}, ticket {data.get('ticket')}, to "
            f"{data.get('target')}) died in stage {journal.last_stage()} without finishing; settle it first with "
            "`pytest suites/upgrade --resume` (it rolls back, or completes a run that had verified the new version)")


def holder_alive(holder: dict) -> bool:
    """Whether the run named by ``holder`` (pid, host) runs on this host (another host's is not checked)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder.get("pid") or 0)
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
