"""The run's journal: stages, recorded state, backup and rollback actions, as JSON in the install dir.

Written atomically (temporary file, fsync, rename) after every change, so a later run or a person
always finds a whole file that says how far the last run got. Only the holder of the run lock
writes it: a run refused by the lock keeps its record in memory (and its report), and never
overwrites the journal of the run that holds the lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from runbook import schemas

JOURNAL_DIR = ".openwatch-upgrade"
JOURNAL_FILE = "journal.json"
# The layout's version (schemas/journal-<n>.schema.json). Journals from before it was recorded have
# version 1's layout and are read as version 1; a version this suite does not know is refused.
SCHEMA_VERSION = 1


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Journal:
    def __init__(self, install_dir: Path, data: dict, persisted: bool = True) -> None:
        self.path = install_dir / JOURNAL_DIR / JOURNAL_FILE
        self.data = data
        self.persisted = persisted

    @classmethod
    def start(cls, install_dir: Path, target: str | None, ticket: str | None, target_commit: str | None = None,
              target_kind: str | None = None) -> Journal:
        """``target`` as the operator named it; the commit it resolved to and its kind (tag, branch, commit)."""
        journal = cls(install_dir, {
            "schema_version": SCHEMA_VERSION,
            "run_id": f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}",
            "host": socket.gethostname(), "pid": os.getpid(), "ticket": ticket, "target": target,
            "target_commit": target_commit, "target_kind": target_kind,
            "started": now(), "started_epoch": time.time(), "finished": None, "outcome": "running",
            "stages": [], "before": None, "after": None, "backup": None, "rollback": None,
        }, persisted=False)
        return journal

    def take_over(self) -> None:
        """Start writing the file (call with the run lock held); the previous run's journal is kept
        next to it as ``journal-<run_id>.json``."""
        previous = Journal.load(self.path.parent.parent)
        if previous is not None and previous.data.get("run_id") != self.data["run_id"]:
            os.replace(previous.path, previous.path.with_name(f"journal-{previous.data.get('run_id', 'unknown')}.json"))
        self.persisted = True
        self.save()

    @classmethod
    def load(cls, install_dir: Path) -> Journal | None:
        path = install_dir / JOURNAL_DIR / JOURNAL_FILE
        return cls(install_dir, migrated(json.loads(path.read_text()))) if path.exists() else None

    def save(self) -> None:
        if not self.persisted:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(self.data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def stage_started(self, name: str) -> None:
        self.data["stages"].append({"name": name, "status": "running", "started": now(), "seconds": None,
                                    "t0": time.time()})
        self.save()

    def stage_ended(self, name: str, status: str, seconds: float, detail: str = "") -> None:
        entry = next(s for s in reversed(self.data["stages"]) if s["name"] == name)
        entry.update(status=status, seconds=round(seconds, 2), detail=detail, t1=time.time())
        self.save()

    def last_stage(self) -> str:
        """The stage started last (``gate`` before any): what a run stopped in, or reached."""
        stages = self.data.get("stages") or []
        return stages[-1]["name"] if stages else "gate"

    def completed(self) -> list[str]:
        return [s["name"] for s in self.data["stages"] if s["status"] == "passed"]

    def write_record(self, fields: dict) -> None:
        """The run's record (``RunRecord.to_json()``) into the journal, in one write."""
        self.data.update(fields)
        self.save()

    def set(self, key: str, value: object) -> None:
        self.data[key] = value
        self.save()

    def finish(self, outcome: str) -> None:
        self.data.update(outcome=outcome, finished=now(), finished_epoch=time.time())
        self.save()


def migrated(data: dict) -> dict:
    """``data`` in the current layout: a journal without ``schema_version`` (written before it was
    recorded) has version 1's fields and becomes version 1. Any other version is left as it is, for
    :func:`refusal` to name."""
    if isinstance(data, dict) and "schema_version" not in data:
        return {"schema_version": SCHEMA_VERSION, **data}
    return data


def refusal(path: Path, data: dict) -> str | None:
    """Why a run must not act on this journal (a version it does not know, or a layout that breaks
    the published schema), in one line; None when it can."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        return (f"{path} has journal schema_version {version!r}, this suite reads version {SCHEMA_VERSION}; "
                "settle it with the suite version that wrote it")
    found = schemas.problems(schemas.JOURNAL, data)
    if found:
        return (f"{path} does not match {schemas.SCHEMA_DIR / schemas.JOURNAL} ({len(found)} problem(s), first: "
                f"{found[0]}); read it and settle the installation by hand")
    return None
