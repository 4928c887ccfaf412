"""Benchmark: user-visible downtime of the literal procedure, the suite, and the floor, side by
side in one run on the sandbox; the suite's downtime when the new version fails to start (its
/health always 503, or its backend crash-looping) and is rolled back; backup + verification
throughput; post-flight audit wall time.

    .venv/bin/python -m bench.upgrade_downtime [--reps 3] [--big-db-mb 1024]
    .venv/bin/python -m bench.upgrade_downtime --only suite,fault_health,fault_crashloop --reps 3

Prints a table and writes JSON to bench/results/. Never run by the tests (speed is not asserted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from runbook.downtime import Prober
from runbook.shell import run
from bench import backup_throughput
from sandbox import engine as engines
from sandbox import images, installation, releases
from sandbox.installation import Installation

ROOT = Path(__file__).resolve().parent.parent
TARGET = "v0.2.0"
FAULT_TARGETS = {"fault_health": "v0.2.0-fault-health", "fault_crashloop": "v0.2.0-fault-crashloop"}
FAULT_OUTCOME = "ROLLED BACK (full)"
FAULT_TARGET_S = 15.0  # issue 17: a release that never becomes healthy costs users at most this
BACKUP_TARGET = 0.8  # issue 17: backup + verification at least 0.8x the throughput of a raw pg_dump -Fc
APP_CONTAINERS = ["openwatch-frontend", "openwatch-backend", "openwatch-worker", "openwatch-celery-beat"]


def wait_healthy(install: Installation, deadline_s: float = 300, poll_s: float = 1.0) -> None:
    """As start-openwatch.sh does: poll /health once a second."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if install.health().status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(poll_s)
    raise RuntimeError("not healthy in time")


Figures = dict[str, float]  # downtime_s and wall_s, and what else a scenario measures


def probed(install: Installation, action: Callable[[], None]) -> tuple[float, float]:
    """(downtime, wall) of ``action`` as the external prober sees it."""
    prober = Prober(f"{install.backend_url}/health", f"{install.frontend_url}/").start()
    time.sleep(0.5)
    started = time.monotonic()
    try:
        action()
    finally:
        wall = time.monotonic() - started
        time.sleep(0.5)
        report = prober.stop()
    return report.total_s, wall


def procedure(install: Installation) -> Figures:
    """UPGRADE_PROCEDURE.md in its order; its migration made to run with the new image."""
    install.checkout(TARGET)  # step 1, while the old version still serves
    install.save_database(install.directory / "backups" / "postgres" / "procedure.dump")  # step 4

    def steps() -> None:
        run(["docker", "stop", *APP_CONTAINERS])  # step 5
        install.compose("build", "--no-cache", "--quiet", timeout=3600)  # step 7's --build, done first
        install.alembic("upgrade", "head")  # step 6, with the new image
        install.compose("up", "-d")  # step 7
        wait_healthy(install)  # start-openwatch.sh's health wait
    return dict(zip(("downtime_s", "wall_s"), probed(install, steps)))


def upgrade_suite(install: Installation, target: str, outcome: str) -> dict:
    """``pytest suites/upgrade --target target``; its journal, which must say ``outcome``."""
    finished = subprocess.run([sys.executable, "-m", "pytest", "suites/upgrade", "--install-dir",
                               str(install.directory), "--target", target, "-q", "-o", "log_cli=false",
                               "-p", "no:cacheprovider"], cwd=ROOT, check=False, capture_output=True, text=True)
    journal = json.loads((install.directory / ".openwatch-upgrade" / "journal.json").read_text())
    if journal.get("outcome") != outcome:
        tail = "\n".join(finished.stdout.splitlines()[-15:])
        raise RuntimeError(f"upgrade to {target} ended {journal.get('outcome')!r}, not {outcome!r}:\n{tail}")
    return journal


def stage_seconds(journal: dict, name: str) -> float:
    return float(next(stage["seconds"] for stage in journal["stages"] if stage["name"] == name))


def suite(install: Installation) -> Figures:
    started = time.monotonic()
    journal = upgrade_suite(install, TARGET, "UPGRADED")
    wall = time.monotonic() - started
    return {"downtime_s": float(journal["downtime"]["downtime_total_s"]), "wall_s": wall,
            "start_stage_s": stage_seconds(journal, "start")}


def fault(target: str) -> Callable[[Installation], Figures]:
    """The suite upgrading to a release whose new version never becomes healthy, rolled back: the
    downtime as the external prober sees it, and the start stage's time to judge it failed."""
    def scenario(install: Installation) -> Figures:
        journals = []
        downtime, wall = probed(install, lambda: journals.append(upgrade_suite(install, target, FAULT_OUTCOME)))
        return {"downtime_s": downtime, "wall_s": wall, "start_stage_s": stage_seconds(journals[0], "start"),
                "suite_reported_downtime_s": float(journals[0]["downtime"]["downtime_total_s"])}
    return scenario


def floor(install: Installation) -> Figures:
    """The least any upgrade can cost: new images ready, then migration + backend start to healthy."""
    install.checkout(TARGET)
    install.build()
    run(["docker", "stop", "openwatch-worker", "openwatch-celery-beat"])

    def steps() -> None:
        run(["docker", "stop", "openwatch-backend"])
        install.alembic("upgrade", "head")
        install.compose("up", "-d", "--no-deps", "backend", "frontend")
        wait_healthy(install, poll_s=0.05)
    return dict(zip(("downtime_s", "wall_s"), probed(install, steps)))


SCENARIOS: dict[str, Callable[[Installation], Figures]] = {
    "procedure": procedure, "suite": suite, "floor": floor,
    **{name: fault(target) for name, target in FAULT_TARGETS.items()},
}
# post-flight audit wall time; backup throughput on a grown database; the prober's accuracy on a real outage
EXTRAS = ("audit", "backup", "prober")
PROBER_TARGET_MS = 300.0  # the prober's measured outage within this of the true one


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "runs": [round(v, 2) for v in values]}


def audit_wall(install: Installation, reps: int) -> dict:
    walls = []
    for _ in range(reps):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "suites/postflight", "--install-dir", str(install.directory),
                        "-q", "-o", "log_cli=false", "-p", "no:cacheprovider"], cwd=ROOT, check=True,
                       capture_output=True)
        walls.append(time.monotonic() - started)
    return spread(walls)


def first_healthy_answer(url: str, deadline_s: float = 60) -> float:
    """Ground truth for the end of an outage: a 20 ms poll for the first healthy answer."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=0.2).status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not come back within {deadline_s}s")


def prober_accuracy(install: Installation, reps: int) -> dict:
    """The prober against a real outage (the backend killed, started again after ~3 s): how far its
    measured outage is from the true one (kill to the first healthy answer), in ms, per repetition."""
    health = f"{install.backend_url}/health"
    errors = []
    for _ in range(reps):
        prober = Prober(health, f"{install.frontend_url}/").start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        run(["docker", "kill", "openwatch-backend"])
        time.sleep(3.0)
        run(["docker", "start", "openwatch-backend"])
        back_at = first_healthy_answer(health)
        time.sleep(1.0)
        report = prober.stop()
        if len(report.outages) != 1:
            raise RuntimeError(f"the prober saw {len(report.outages)} outages, not one: {report.outages}")
        errors.append(abs(report.outages[0].seconds - (back_at - killed_at)) * 1000)
    return spread(errors)


def selection(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in (*SCENARIOS, *EXTRAS)]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'empty list'}; "
                                         f"choose from {', '.join((*SCENARIOS, *EXTRAS))}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--big-db-mb", type=int, default=1024)
    parser.add_argument("--only", type=selection, default=(*SCENARIOS, *EXTRAS), metavar="NAME,...",
                        help=f"measure only these, comma-separated: {', '.join((*SCENARIOS, *EXTRAS))} (default: all)")
    parser.add_argument("--backup-candidates", type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
                        default=(), metavar="NAME,...",
                        help=f"backup candidates to measure beside the raw dump: "
                             f"{', '.join(backup_throughput.CANDIDATES)} (default: all)")
    args = parser.parse_args()
    unknown = [name for name in args.backup_candidates if name not in backup_throughput.CANDIDATES]
    if unknown:
        parser.error(f"unknown backup candidate {', '.join(unknown)}")
    bench_started = time.monotonic()
    # An engine of its own, as the tests have: a demo or an operator's OpenWatch on the host's engine
    # (and its ports 8000/5432) is neither measured nor disturbed.
    try:
        with engines.from_environment(default="bench").serving() as engine:
            return measure(args, engine, bench_started)
    except engines.EngineError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1


def measure(args: argparse.Namespace, engine: engines.PrivateEngine, bench_started: float) -> int:
    images.ensure_all()
    workdir = Path(tempfile.mkdtemp(prefix="openwatch-bench-"))
    install = installation.create(workdir / "install", releases.OLDEST.tag, ports=engine.ports,
                                  subnet=engine.install_subnet)
    try:
        install.set_env("OPENWATCH_ENCRYPTION_KEY", "bench-key-0123456789")
        dump = workdir / "baseline.dump"
        install.save_database(dump)
        results: dict[str, dict[str, list[float]]] = {}
        audit = audit_wall(install, args.reps) if "audit" in args.only else None
        for rep in range(args.reps):
            for name, scenario in SCENARIOS.items():
                if name not in args.only:
                    continue
                install.reset(releases.OLDEST.tag, dump)
                figures = scenario(install)
                for figure, value in figures.items():
                    results.setdefault(name, {}).setdefault(figure, []).append(value)
                shown = " ".join(f"{figure.removesuffix('_s')} {value:6.2f}s" for figure, value in figures.items())
                print(f"rep {rep + 1} {name:15s} {shown}", flush=True)
        prober = prober_accuracy(install, args.reps) if "prober" in args.only else None
        throughput = None
        if "backup" in args.only:
            install.reset(releases.OLDEST.tag, dump)
            throughput = backup_throughput.measure(install, args.big_db_mb, args.reps,
                                                   Path(tempfile.mkdtemp(dir=install.directory)),
                                                   only=args.backup_candidates)
    finally:
        install.destroy()
    summary = {name: {figure: spread(values) for figure, values in v.items()} for name, v in results.items()}
    med = {name: summary[name]["downtime_s"]["median"] for name in summary}
    figures = {f"{name}_downtime_median_s": med[name] for name in med}
    ratios, targets = {}, {}
    if {"suite", "procedure"} <= med.keys():
        ratios["suite_to_procedure"] = round(med["suite"] / med["procedure"], 2)
        targets["suite_downtime_le_0.35x_procedure"] = ratios["suite_to_procedure"] <= 0.35
    if {"suite", "floor"} <= med.keys():
        ratios["suite_to_floor"] = round(med["suite"] / med["floor"], 2)
        targets["suite_downtime_le_1.3x_floor"] = ratios["suite_to_floor"] <= 1.3
    for name in FAULT_TARGETS:
        if name in med:
            targets[f"{name}_downtime_le_{FAULT_TARGET_S:.0f}s"] = med[name] <= FAULT_TARGET_S
    if throughput:
        for name, candidate in throughput["candidates"].items():
            figures[f"backup_{name}_to_raw"] = candidate["ratio_to_raw"]
        chosen = throughput["candidates"].get(backup_throughput.CHOSEN)
        if chosen is not None:
            figures["backup_verify_to_raw"] = chosen["ratio_to_raw"]
            figures["backup_verify_to_raw_cpu"] = chosen["cpu_ratio_to_raw"]
            targets[f"backup_verify_ge_{BACKUP_TARGET}x_raw"] = chosen["ratio_to_raw"] >= BACKUP_TARGET
        before = throughput["candidates"].get(backup_throughput.BEFORE)
        if before is not None:  # the suite's path before the cheaper checksum, measured in the same run
            figures["backup_verify_to_raw_before"] = before["ratio_to_raw"]
    if audit:
        targets["audit_le_5s"] = audit["median"] <= 5.0
    if prober:
        figures["prober_error_median_ms"], figures["prober_error_max_ms"] = prober["median"], prober["max"]
        targets[f"prober_error_le_{PROBER_TARGET_MS:.0f}ms"] = prober["max"] <= PROBER_TARGET_MS
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "target": TARGET,
        "fault_targets": {name: FAULT_TARGETS[name] for name in FAULT_TARGETS if name in med},
        "reps": args.reps, "measured": list(args.only),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "docker": run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()},
        "figures": figures, "downtime": summary, "ratios": ratios, "targets_met": targets,
        "backup_throughput": throughput, "postflight_audit_wall_s": audit, "prober_error_ms": prober,
        "bench_wall_s": round(time.monotonic() - bench_started),
    }
    out = ROOT / "bench" / "results" / f"upgrade_downtime_{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'scenario':15s} {'downtime median (min-max)':>28s} {'wall median (min-max)':>26s}")
    for name, values in summary.items():
        d, w = values["downtime_s"], values["wall_s"]
        print(f"{name:15s} {d['median']:10.2f}s ({d['min']:.2f}-{d['max']:.2f}) {w['median']:12.1f}s ({w['min']:.1f}-{w['max']:.1f})")
    print(f"figures: {figures}\nratios: {ratios}\nbackup: {throughput}\naudit: {audit}\n"
          f"targets: {report['targets_met']}\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
