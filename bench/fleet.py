"""Benchmark: the fleet layer on the simulated hosts of the fleet tests (tests/fleet/bed.py).

    OPENWATCH_TEST_ENGINE=fleetu [OPENWATCH_FLEET_ENGINES=hosx,hosy,hosz] .venv/bin/python -m bench.fleet

(the hosts' engines are fleeta, fleetb, fleetc unless ``OPENWATCH_FLEET_ENGINES`` names others.)

Measures, on three hosts upgraded v0.1.0 -> v0.2.0:
- the wall time of one host's upgrade run locally on that host (the suite alone, no fleet layer);
- a fleet audit at concurrency 3 first (it installs the suite on every host: the cold part);
- the fleet's wall time with concurrency 1 (``-f 1``) and 3 (``-f 3``), one wave of 100%, the hosts'
  venvs already made (a warm run), and their ratio;
- the per-host overhead the fleet layer adds to a warm run, twice: (fleet wall at concurrency 1 - sum
  of the local runs) / hosts, and (fleet wall at concurrency 1 - its suite runs' wall) / hosts, the
  fleet layer's own time, which the machine's load swings less;
- where a fleet run's time goes: each task's wall time (Ansible's built-in junit callback records
  every task per host; a task's wall is its latest host's finish), summed per task name.
Prints JSON and writes it to bench/results/; the playbook logs and the callback's JUnit files stay
in reports/fleet-bench/<time>/. Never run by the tests (speed is not asserted).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from runbook.shell import progress
from sandbox import engine as engines
from sandbox import images, releases
from tests.fleet.bed import ROOT, Bed, host_engines
from tests.fleet.runs import play

TARGET = "v0.2.0"


def local_run(bed: Bed, name: str) -> float:
    """The upgrade suite run on the host itself (in its namespace, at its engine), as an operator would."""
    host = bed.host(name)
    started = time.monotonic()
    proc = subprocess.run(host.inside([sys.executable, "-m", "pytest", "suites/upgrade", "--install-dir",
                                       str(host.install_dir), "--target", TARGET, "--ticket", "BENCH",
                                       "--reports-dir", str(bed.home / "local-reports"), "-q", "-o", "log_cli=false",
                                       "-p", "no:cacheprovider"]),
                          cwd=ROOT, env=host.environment(), capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"local upgrade on {name} failed:\n{proc.stdout[-2000:]}")
    return seconds


def timed_play(bed: Bed, logs: Path, failed_runs: dict[str, dict], label: str, playbook: str,
               **options) -> tuple[float, dict[str, float]]:
    """The playbook's wall time and its tasks' wall times (seconds, by play and task name)."""
    junit_dir = logs / f"junit-{label}"
    result = play(bed, playbook, ansible_env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.junit",
                                               "JUNIT_OUTPUT_DIR": str(junit_dir), "JUNIT_HIDE_TASK_ARGUMENTS": "true"},
                  **options)
    (logs / f"{label}.log").write_text(result.output)
    summary = result.run_dir / "fleet.json"
    if summary.exists():  # the per-host reasons outlive the bed's temporary folder
        shutil.copyfile(summary, logs / f"{label}.fleet.json")
    if result.returncode != 0:
        # A host's suite failing under the machine's load still timed every fleet task; say so, keep going.
        progress(f"fleet {label}: exit status {result.returncode}; see {logs / label}.fleet.json")
        failed_runs[label] = result.status() if summary.exists() else {"playbook": f"exit status {result.returncode}"}
    return result.seconds, task_walls(junit_dir)


def task_walls(junit_dir: Path) -> dict[str, float]:
    """Per task (``play: task``), the longest of its hosts' times: the callback times a host from the
    task's start, so with hosts one after another (-f 1) the longest is the task's whole wall."""
    walls: dict[str, float] = defaultdict(float)
    for path in junit_dir.glob("*.xml"):
        for case in ET.parse(path).iter("testcase"):
            task = case.get("name", "").partition("] ")[2]
            walls[task] = max(walls[task], float(case.get("time") or 0))
    return dict(sorted(walls.items(), key=lambda item: item[1], reverse=True))


def main() -> int:
    try:
        host_names = host_engines()
    except ValueError as error:
        raise SystemExit(f"bench.fleet: {error}") from None
    figures: dict[str, float] = {}
    tasks: dict[str, dict[str, float]] = {}
    failed_runs: dict[str, dict] = {}
    logs = ROOT / "reports" / "fleet-bench" / time.strftime("%Y%m%dT%H%M%S")
    logs.mkdir(parents=True)
    with engines.from_environment("fleetu").serving() as engine, tempfile.TemporaryDirectory(prefix="fleet-bench-") as home:
        images.ensure_all()
        releases.ensure_origin()
        bed = Bed(Path(home), host_names, images_from=engine)
        try:
            bed.up()
            bed.install(releases.OLDEST.tag, prepare_for=TARGET)
            figures.update({f"bed_{key}": value for key, value in bed.timings.items()})
            local = []
            for name in host_names:
                local.append(local_run(bed, name))
            figures["local_run_s_mean"] = sum(local) / len(local)
            bed.reset()
            # The audit installs the suite on every host (venv, offline pip install): the fleet runs
            # below are warm, as every run after an operator's first one is.
            figures["fleet_audit_cold_install_f3_s"], tasks["audit_cold_f3"] = timed_play(
                bed, logs, failed_runs, "audit-cold-f3", "audit.yml", forks=3)
            upgrade = {"target": TARGET, "ticket": "BENCH", "waves": ["100%"]}
            figures["fleet_f1_warm_s"], tasks["upgrade_warm_f1"] = timed_play(bed, logs, failed_runs, "upgrade-f1", "upgrade.yml",
                                                                              forks=1, **upgrade)
            bed.reset()
            figures["fleet_f3_warm_s"], tasks["upgrade_warm_f3"] = timed_play(bed, logs, failed_runs, "upgrade-f3", "upgrade.yml",
                                                                              forks=3, **upgrade)
            progress(f"fleet bench: {figures}")
        finally:
            left = bed.tear_down()
            if left:
                raise RuntimeError(f"the bed left: {left}")
    hosts = len(host_names)
    figures["ratio_f1_over_f3"] = figures["fleet_f1_warm_s"] / figures["fleet_f3_warm_s"]
    figures["per_host_overhead_warm_s"] = (figures["fleet_f1_warm_s"] - sum(local)) / hosts
    # The suite's own run on the host swings with the machine's load as much as the fleet layer costs;
    # the fleet layer's own time is everything else of the -f 1 run (hosts one after another).
    suite_task = "Upgrade in waves: Run the suite"
    figures["fleet_f1_suite_task_s_mean"] = tasks["upgrade_warm_f1"][suite_task] / hosts
    figures["per_host_fleet_tasks_warm_s"] = (figures["fleet_f1_warm_s"] - tasks["upgrade_warm_f1"][suite_task]) / hosts
    output = {"bench": "fleet", "hosts": hosts, "target": TARGET, "machine": platform.node(),
              "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
              "figures": {key: round(value, 2) for key, value in figures.items()},
              "per_host_overhead_target_s": 20.0, "local_runs_s": [round(value, 2) for value in local],
              "task_wall_s": {label: {task: round(value, 2) for task, value in walls.items() if value >= 0.5}
                              for label, walls in tasks.items()},
              "logs": str(logs.relative_to(ROOT)), "failed_runs": failed_runs}
    path = ROOT / "bench" / "results" / f"fleet_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(output, indent=2))
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
