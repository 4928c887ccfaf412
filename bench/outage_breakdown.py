"""Where a run's user-visible outage went: the seconds of it spent in each stage and each rollback
action, read from the journal alone (stage and action start/end times, and the prober's outage
intervals on the same wall clock).

    .venv/bin/python -m bench.outage_breakdown /path/to/install/.openwatch-upgrade/journal.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Phase:
    label: str
    t0: float  # epoch seconds
    t1: float


def phases(journal: dict) -> list[Phase]:
    """Stages, then rollback actions, in time order; what ran between two of them (the rollback's
    choice of tier, pytest's reporting) is a phase of its own, named by its neighbours."""
    timed = [Phase(f"stage {stage['name']}", stage["t0"], stage["t1"])
             for stage in journal.get("stages") or [] if stage.get("t0") and stage.get("t1")]
    timed += [Phase(f"rollback: {action['name']}", action["t0"], action["t1"])
              for action in (journal.get("rollback") or {}).get("actions") or []]
    timed.sort(key=lambda phase: phase.t0)
    found: list[Phase] = []
    for phase in timed:
        if found and phase.t0 > found[-1].t1:
            found.append(Phase(f"between {found[-1].label} and {phase.label}", found[-1].t1, phase.t0))
        found.append(phase)
    return found


def outage_intervals(journal: dict) -> list[tuple[float, float]]:
    downtime = journal.get("downtime") or {}
    origin = float(downtime.get("origin_epoch") or 0.0)
    return [(origin + start, origin + end) for start, end in downtime.get("intervals") or []]


def breakdown(journal: dict) -> dict[str, float]:
    """Seconds of outage per phase (phases with none left out), in time order."""
    intervals = outage_intervals(journal)
    seconds: dict[str, float] = {}
    for phase in phases(journal):
        overlap = sum(max(0.0, min(phase.t1, end) - max(phase.t0, start)) for start, end in intervals)
        if overlap >= 0.005:
            seconds[phase.label] = round(seconds.get(phase.label, 0.0) + overlap, 2)
    return seconds


def main() -> int:
    journal = json.loads(Path(sys.argv[1]).read_text())
    parts = breakdown(journal)
    for label, seconds in parts.items():
        print(f"{seconds:6.2f}s  {label}")
    total = sum(end - start for start, end in outage_intervals(journal))
    print(f"{sum(parts.values()):6.2f}s  in phases, of {total:.2f}s outage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
