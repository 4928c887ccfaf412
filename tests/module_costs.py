"""Run the slowest test modules first, so parallel workers finish together.

Under ``pytest -n N --dist loadfile`` a module stays on one worker, and xdist hands the modules out in
the order it is given them: by default, most tests first. Here that puts the hundreds of quick unit
tests first and leaves the e2e modules (a few tests each, minutes each) for the end, where one worker
still runs a long module while the other has long finished. Longest first (``--no-loadscope-reorder``
keeps this order) leaves only short modules for the end.

Modules that build the same images go to one worker together (see ``SAME_WORKER``): each worker has an
engine of its own, so on two workers the real OpenWatch's images (3-4.5 min of builds on a fresh engine,
measured in CI) would be built twice.

A module's cost is its seconds in an earlier full run (setup, call and teardown of all its tests), kept in
``module_costs.json`` beside this file and rewritten by ``pytest tests --store-module-costs``. A module not
in it yet is taken as a typical e2e module, or a quick one outside ``tests/e2e``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

COSTS_FILE = Path(__file__).with_name("module_costs.json")
UNKNOWN_E2E_MODULE_S = 60.0
UNKNOWN_OTHER_MODULE_S = 1.0
# Work units of more than one module: the modules marked ``real`` build the real OpenWatch's images in their
# worker's engine (a unit test checks that this lists every such module).
SAME_WORKER = {
    "tests/e2e/test_real_sandbox.py": "real OpenWatch images",
    "tests/e2e/test_real_upgrades.py": "real OpenWatch images",
}


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def load(path: Path = COSTS_FILE) -> dict[str, float]:
    """The recorded costs; none (every module then unknown) if the file is missing or unreadable."""
    try:
        costs = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(module): float(seconds) for module, seconds in costs.items()} if isinstance(costs, dict) else {}


def cost(module: str, costs: dict[str, float]) -> float:
    if module in costs:
        return costs[module]
    return UNKNOWN_E2E_MODULE_S if module.startswith("tests/e2e/") else UNKNOWN_OTHER_MODULE_S


def work_unit(module: str) -> str:
    """What one worker runs whole: the module, or the group of modules it shares images with."""
    return SAME_WORKER.get(module, module)


def longest_first(items: list[pytest.Item], costs: dict[str, float]) -> list[pytest.Item]:
    """``items`` with the work units ordered by cost, longest first, and a unit's modules side by side;
    each module's tests keep their order (the sort is stable), so its fixtures and dependencies see what
    they saw before."""
    unit_seconds: dict[str, float] = defaultdict(float)
    for module in {module_of(item.nodeid) for item in items}:
        unit_seconds[work_unit(module)] += cost(module, costs)

    def key(item: pytest.Item) -> tuple[float, str]:
        unit = work_unit(module_of(item.nodeid))
        return -unit_seconds[unit], unit

    return sorted(items, key=key)


class SameWorkerScheduling(LoadFileScheduling):
    """``--dist loadfile``, with the modules of one :data:`SAME_WORKER` group handed out as one work unit."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(module_of(nodeid))


class CostRecorder:
    """Sums each module's test durations as the reports arrive (under xdist, in the controller, which
    sees every worker's reports) and writes them at the end of the run."""

    def __init__(self, path: Path = COSTS_FILE) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.config.getoption("collectonly") or not self.seconds:
            return
        # Modules this run did not reach (a -k, a single file) keep their earlier cost; deleted ones go.
        merged = load(self.path) | {module: round(seconds, 1) for module, seconds in self.seconds.items()}
        merged = {module: seconds for module, seconds in merged.items()
                  if (session.config.rootpath / module).is_file()}
        self.path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
