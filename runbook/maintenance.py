"""Whether an upgrade run is working on the installation, or died half-way, as an audit sees it.

Read from the lock file and the journal only, never by taking the lock: an audit must not get in
the way of the run it reports (a second ``flock``, even a shared one for an instant, could make
an upgrade starting at that moment refuse to run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook.journal import Journal
from runbook.release_checks import died_unfinished, holder_alive, lock_holder

RUNNING = "MAINTENANCE"
DIED = "UPGRADE DIED"


@dataclass(frozen=True)
class Maintenance:
    outcome: str  # RUNNING or DIED
    line: str  # the audit's one result line
    reason: str  # why each check is skipped
    run_id: str | None
    target: str | None
    ticket: str | None
    stage: str | None
    since: str | None

    def to_json(self) -> dict:
        return {"outcome": self.outcome, "line": self.line, "run_id": self.run_id, "target": self.target,
                "ticket": self.ticket, "stage": self.stage, "since": self.since}


def find(install_dir: Path) -> Maintenance | None:
    """The upgrade run in progress (its lock holder or journal writer is alive on this host), else
    the one that died with its journal still ``running`` (``--resume`` settles it), else None.

    A lock whose holder is gone while the journal does not say ``running`` is not maintenance: that
    run died before it recorded anything, so it changed nothing (the pre-flight reports the lock)."""
    holder = lock_holder(install_dir)
    journal = Journal.load(install_dir)
    recorded = journal.data if journal is not None and journal.data.get("outcome") == "running" else {}
    if (holder and holder_alive(holder)) or (recorded and holder_alive(recorded)):
        return _running(journal if recorded else None, holder or {})
    died = died_unfinished(journal)
    if died:
        return _died(journal, died)
    return None


def _running(journal: Journal | None, holder: dict) -> Maintenance:
    """Described by the journal when it says ``running``; by the lock alone when the holder has not
    written its journal yet, or runs without one of its own (``--rollback-to`` of a finished run)."""
    data = journal.data if journal is not None else {}
    stages = data.get("stages") or []
    run_id = data.get("run_id") or f"run pid {holder.get('pid')}"
    target, ticket = data.get("target"), data.get("ticket") or holder.get("ticket")
    stage = journal.last_stage() if journal is not None else None
    since = (stages[-1].get("started") if stages else None) or data.get("started") or holder.get("started")
    detail = (f"upgrade {run_id}" + (f" to {target}" if target else "") + f" ({ticket or 'no ticket'})"
              + (f" in stage {stage}" if stage else "") + f" since {since}")
    return Maintenance(RUNNING, f"{RUNNING}: {detail}",
                       f"not audited during maintenance: {detail}; --ignore-maintenance audits anyway",
                       data.get("run_id"), target, ticket, stage, since)


def _died(journal: Journal, died: str) -> Maintenance:
    data, stage = journal.data, journal.last_stage()
    return Maintenance(DIED, f"{DIED} IN {stage}: run --resume; {died}",
                       f"not audited: {died}; --ignore-maintenance audits anyway",
                       data.get("run_id"), data.get("target"), data.get("ticket"), stage, data.get("started"))
