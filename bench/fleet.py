"""Benchmark: the fleet layer on the simulated hosts of the fleet tests (tests/fleet/bed.py).

    OPENWATCH_TEST_ENGINE=fleetu [OPENWATCH_FLEET_ENGINES=hosx,hosy,hosz] .venv/bin/python -m bench.fleet

(the hosts' engines are fleetp, fleetq, fleetr unless ``OPENWATCH_FLEET_ENGINES`` names others.)
Measures, on three hosts upgraded v0.1.0 -> v0.2.0:
- a fleet audit at concurrency 3 first (it installs the suite on every host: the cold part);
- side by side, host by host: the upgrade suite run locally on the host (in its namespace, at its
  engine, from this checkout: no fleet layer), then, right after (the host reset between, so at the
  same moment and load), the same upgrade through the fleet (``--limit`` that host, ``-f 1``). For
  each pair: both walls, the fleet's "Run the suite" task, the suite's own wall on the host
  (``fleet.host_run`` times it), and for both suite runs the time inside their tests (stages and
  checks) against the time outside them (interpreter, imports, collection, fixtures, report);
- the fleet's wall time with concurrency 1 (``-f 1``) and 3 (``-f 3``), one wave of 100%, warm, and
  their ratio;
- the per-host overhead of the fleet layer: (fleet wall at -f 1 - the same moment's local runs) /
  hosts, and per pair (a one-host fleet run, so the run's fixed steps land on one host);
- where a fleet run's time goes: each task's wall time (Ansible's junit callback), per task name.
Writes JSON after every phase (``complete`` false until the end) to the log folder, at the end to
bench/results/, and prints it;
the playbook logs and the callback's JUnit files stay in reports/fleet-bench/<time>/. Never run by
the tests (speed is not asserted).
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

from fleet import results
from runbook.shell import progress
from sandbox import engine as engines
from sandbox import images, releases
from tests.fleet.bed import ROOT, Bed, host_engines
from tests.fleet.runs import FleetRun, play

TARGET = "v0.2.0"
SUITE_TASK = "Upgrade in waves: Run the suite"
UPGRADE = {"target": TARGET, "ticket": "BENCH", "waves": ["100%"]}


def suite_split(reports_dir: Path) -> dict[str, float]:
    """Seconds the suite spent inside its tests (each test's call phase, as its JSON summary records
    it) and its three slowest tests: set against a run's wall, what is left is outside the tests."""
    summary = results.latest_bundle(reports_dir, "upgrade")
    if summary is None:
        return {}
    tests = sorted(summary["tests"], key=lambda test: test["seconds"], reverse=True)
    return {"in_tests_s": round(sum(test["seconds"] for test in tests), 2),
            **{f"slowest:{test['nodeid'].rpartition('::')[2]}": test["seconds"] for test in tests[:3]}}


def local_run(bed: Bed, name: str, reports: Path) -> dict[str, float]:
    """The upgrade suite run on the host itself (in its namespace, at its engine), as an operator would."""
    host = bed.host(name)
    load = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.run(host.inside([sys.executable, "-m", "pytest", "suites/upgrade", "--install-dir",
                                       str(host.install_dir), "--target", TARGET, "--ticket", "BENCH",
                                       "--reports-dir", str(reports), "-q", "-o", "log_cli=false",
                                       "-p", "no:cacheprovider"]),
                          cwd=ROOT, env=host.environment(), capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"local upgrade on {name} failed:\n{proc.stdout[-2000:]}")
    return {"wall_s": round(seconds, 2), "load_1m_at_start": round(load, 2), **suite_split(reports)}


def timed_play(bed: Bed, logs: Path, failed_runs: dict[str, dict], label: str, playbook: str,
               **options) -> tuple[FleetRun, dict[str, float]]:
    """The playbook's run and its tasks' wall times (seconds, by play and task name)."""
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
    return result, task_walls(junit_dir)


def task_walls(junit_dir: Path) -> dict[str, float]:
    """Per task (``play: task``), the longest of its hosts' times: the callback times a host from the
    task's start, so with hosts one after another (-f 1) the longest is the task's whole wall."""
    walls: dict[str, float] = defaultdict(float)
    for path in junit_dir.glob("*.xml"):
        for case in ET.parse(path).iter("testcase"):
            task = case.get("name", "").partition("] ")[2]
            walls[task] = max(walls[task], float(case.get("time") or 0))
    return dict(sorted(walls.items(), key=lambda item: item[1], reverse=True))


def side_by_side(bed: Bed, name: str, logs: Path, failed_runs: dict[str, dict], *, fleet_first: bool) -> dict:
    """One host: the local run and the fleet's run of it alone at -f 1, one right after the other (the
    host reset after each); ``fleet_first`` alternates the order between hosts, against any bias of
    going first."""
    if not fleet_first:
        local = local_run(bed, name, bed.home / "local-reports" / name)
        bed.reset((name,))
    load = os.getloadavg()[0]
    # The limit keeps localhost: the playbook's control-node plays (prepare, summary) run there.
    fleet_run, walls = timed_play(bed, logs, failed_runs, f"upgrade-{name}-alone", "upgrade.yml", forks=1,
                                  limit=f"{name},localhost", **UPGRADE)
    host_dir = fleet_run.run_dir / name
    on_host = json.loads((host_dir / "host_run.json").read_text()) if (host_dir / "host_run.json").exists() else {}
    bed.reset((name,))
    if fleet_first:
        local = local_run(bed, name, bed.home / "local-reports" / name)
        bed.reset((name,))
    fleet = {"wall_s": round(fleet_run.seconds, 2), "load_1m_at_start": round(load, 2),
             "run_the_suite_task_s": round(walls.get(SUITE_TASK, 0.0), 2), "suite_on_host_s": on_host.get("suite_s"),
             "host_python": on_host.get("python"), **suite_split(host_dir)}
    pair = {"host": name, "first": "fleet" if fleet_first else "local", "local": local, "fleet": fleet,
            "local_python": platform.python_version(),
            "fleet_minus_local_s": round(fleet["wall_s"] - local["wall_s"], 2)}
    if fleet["suite_on_host_s"] is not None:
        pair["suite_on_host_minus_local_s"] = round(fleet["suite_on_host_s"] - local["wall_s"], 2)
        pair["suite_task_minus_suite_on_host_s"] = round(fleet["run_the_suite_task_s"] - fleet["suite_on_host_s"], 2)
    for run in (local, fleet):
        wall = run.get("suite_on_host_s") or run["wall_s"]
        if "in_tests_s" in run:
            run["outside_tests_s"] = round(wall - run["in_tests_s"], 2)
    progress(f"fleet bench: {name} side by side: {json.dumps(pair)}")
    return pair


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    try:
        host_names = host_engines()
    except ValueError as error:
        raise SystemExit(f"bench.fleet: {error}") from None
    hosts = len(host_names)
    figures: dict[str, float] = {}
    tasks: dict[str, dict[str, float]] = {}
    failed_runs: dict[str, dict] = {}
    pairs: list[dict] = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    logs = ROOT / "reports" / "fleet-bench" / stamp
    logs.mkdir(parents=True)
    # Written in the (git-ignored) log folder until the end: a file new in the project changes the suite's
    # archive, so every host would reinstall the suite in the next fleet run (the 10:00 bench's did).
    path = logs / "fleet.partial.json"

    def write(complete: bool) -> dict:
        output = {"bench": "fleet", "complete": complete, "hosts": hosts, "host_engines": list(host_names),
                  "target": TARGET, "machine": platform.node(), "cpus": os.cpu_count(),
                  "load_average_at_write": os.getloadavg(),
                  "figures": {key: round(value, 2) for key, value in figures.items()},
                  "per_host_overhead_target_s": 20.0, "side_by_side": pairs,
                  "task_wall_s": {label: {task: round(value, 2) for task, value in walls.items() if value >= 0.5}
                                  for label, walls in tasks.items()},
                  "logs": str(logs.relative_to(ROOT)), "failed_runs": failed_runs}
        path.write_text(json.dumps(output, indent=2))
        return output

    with engines.from_environment("fleetu").serving() as engine, tempfile.TemporaryDirectory(prefix="fleet-bench-") as home:
        images.ensure_all()
        releases.ensure_origin()
        bed = Bed(Path(home), host_names, images_from=engine)
        try:
            bed.up()
            bed.install(releases.OLDEST.tag, prepare_for=TARGET)
            figures.update({f"bed_{key}": value for key, value in bed.timings.items()})
            # The audit installs the suite on every host (venv, offline pip install): every fleet run
            # below is warm, as every run after an operator's first one is.
            audit, tasks["audit_cold_f3"] = timed_play(bed, logs, failed_runs, "audit-cold-f3", "audit.yml", forks=3)
            figures["fleet_audit_cold_install_f3_s"] = audit.seconds
            write(False)
            for index, name in enumerate(host_names):
                pairs.append(side_by_side(bed, name, logs, failed_runs, fleet_first=index % 2 == 1))
                write(False)
            local = [pair["local"]["wall_s"] for pair in pairs]
            figures["local_run_s_mean"] = mean(local)
            figures["fleet_alone_s_mean"] = mean([pair["fleet"]["wall_s"] for pair in pairs])
            figures["per_host_overhead_alone_s"] = mean([pair["fleet_minus_local_s"] for pair in pairs])
            on_host = [pair for pair in pairs if "suite_on_host_minus_local_s" in pair]
            if on_host:
                figures["suite_on_host_minus_local_s_mean"] = mean([pair["suite_on_host_minus_local_s"] for pair in on_host])
                figures["suite_task_minus_suite_on_host_s_mean"] = mean(
                    [pair["suite_task_minus_suite_on_host_s"] for pair in on_host])
            f1, tasks["upgrade_warm_f1"] = timed_play(bed, logs, failed_runs, "upgrade-f1", "upgrade.yml", forks=1, **UPGRADE)
            figures["fleet_f1_warm_s"] = f1.seconds
            # The fleet layer over the local runs just measured (same definition as earlier benches).
            figures["per_host_overhead_warm_s"] = (f1.seconds - sum(local)) / hosts
            figures["fleet_f1_suite_task_s_mean"] = tasks["upgrade_warm_f1"].get(SUITE_TASK, 0.0) / hosts
            figures["per_host_fleet_tasks_warm_s"] = (f1.seconds - tasks["upgrade_warm_f1"].get(SUITE_TASK, 0.0)) / hosts
            write(False)
            bed.reset()
            f3, tasks["upgrade_warm_f3"] = timed_play(bed, logs, failed_runs, "upgrade-f3", "upgrade.yml", forks=3, **UPGRADE)
            figures["fleet_f3_warm_s"] = f3.seconds
            figures["ratio_f1_over_f3"] = f1.seconds / f3.seconds
            progress(f"fleet bench: {figures}")
        finally:
            write(False)
            left = bed.tear_down()
            if left:
                raise RuntimeError(f"the bed left: {left}")
    path = ROOT / "bench" / "results" / f"fleet_{stamp}.json"
    print(json.dumps(write(True), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
