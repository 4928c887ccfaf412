"""Benchmark: the real OpenWatch, February -> April 2026, side by side: the literal procedure, the suite
and the floor, user-visible downtime as the external prober sees it (the rows of bench/upgrade_downtime.py
for the real code).

    .venv/bin/python -m bench.real_upgrade_downtime [--reps 1]

One real installation at compose-2026-02-17, reset from its saved dump before each scenario. The images
of both tags are built before anything is measured, so the procedure's `up --build` finds them cached
(its best case; the suite builds before it stops anything). Writes JSON to bench/results/. Never run by
the tests (speed is not asserted).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.upgrade_downtime import ROOT, Figures, probed, spread, stage_seconds, upgrade_suite, wait_healthy
from runbook.shell import run
from sandbox import engine as engines
from sandbox.real import installation as real_installation
from sandbox.real import releases as real_releases

FEB, APR = "compose-2026-02-17", "compose-2026-04-14"
APP_CONTAINERS = ["openwatch-frontend", "openwatch-backend", "openwatch-worker", "openwatch-celery-beat"]


def procedure(install: real_installation.RealInstallation) -> Figures:
    """UPGRADE_PROCEDURE.md in its order: step 1 while serving, step 4's dump, stop, migrate with the
    new image (the literal `compose run` would take the old one), `up -d --build`, wait for /health."""
    install.checkout(APR)
    install.save_database(install.directory / "backups" / "postgres" / "procedure.dump")

    def steps() -> None:
        run(["docker", "stop", *APP_CONTAINERS])
        install.compose("build", "--quiet", timeout=3600)
        install.alembic("upgrade", "head")
        install.compose("up", "-d", "--remove-orphans")
        wait_healthy(install)
    return dict(zip(("downtime_s", "wall_s"), probed(install, steps)))


def suite(install: real_installation.RealInstallation) -> Figures:
    started = time.monotonic()
    journal = upgrade_suite(install, APR, "UPGRADED")
    return {"downtime_s": float(journal["downtime"]["downtime_total_s"]), "wall_s": time.monotonic() - started,
            **{f"{name}_stage_s": stage_seconds(journal, name) for name in ("drain_and_stop", "migrate", "start",
                                                                            "verify")}}


def floor(install: real_installation.RealInstallation) -> Figures:
    """The least any upgrade can cost: April's images ready, the workers stopped beforehand, then the
    backend stopped, migrated, and April started to healthy (polled every 50 ms). April's /health
    counts its job-queue worker, so the worker starts with the backend (started alone, /health said
    503 for 238 s, the first run of this bench)."""
    install.checkout(APR)
    install.build()
    run(["docker", "stop", "openwatch-worker", "openwatch-celery-beat"])

    def steps() -> None:
        run(["docker", "stop", "openwatch-backend"])
        install.alembic("upgrade", "head")
        install.compose("up", "-d", "--remove-orphans")
        wait_healthy(install, poll_s=0.05)
    return dict(zip(("downtime_s", "wall_s"), probed(install, steps)))


SCENARIOS: dict[str, Callable[[real_installation.RealInstallation], Figures]] = {
    "real_procedure": procedure, "real_suite": suite, "real_floor": floor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    try:
        with engines.from_environment(default="bench").serving() as engine:
            return measure(args.reps, engine, started)
    except engines.EngineError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1


def measure(reps: int, engine: engines.PrivateEngine, started: float) -> int:
    real_installation.ensure_images()
    workdir = Path(tempfile.mkdtemp(prefix="openwatch-real-bench-"))
    install = real_installation.create(workdir / "install", FEB, ports=engine.ports, subnet=engine.install_subnet)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        commit = install.git("rev-parse", f"{FEB}^{{commit}}").stdout.strip()
        dump = real_installation.dump_path(real_releases.BY_TAG[FEB], commit, real_installation.seed.SeedSize())
        install.checkout(APR)
        install.build()  # April's images cached before anything is timed
        for rep in range(reps):
            for name, scenario in SCENARIOS.items():
                shutil.rmtree(install.directory / ".openwatch-upgrade", ignore_errors=True)
                install.reset(FEB, dump)
                figures = scenario(install)
                for figure, value in figures.items():
                    results.setdefault(name, {}).setdefault(figure, []).append(value)
                print(f"rep {rep + 1} {name:15s} " + " ".join(f"{f.removesuffix('_s')} {v:6.2f}s"
                                                              for f, v in figures.items()), flush=True)
    finally:
        install.destroy()
    summary = {name: {figure: spread(values) for figure, values in v.items()} for name, v in results.items()}
    med = {name: summary[name]["downtime_s"]["median"] for name in summary}
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": FEB, "target": APR, "reps": reps,
              "downtime": summary,
              "ratios": {"suite_to_procedure": round(med["real_suite"] / med["real_procedure"], 2),
                         "suite_to_floor": round(med["real_suite"] / med["real_floor"], 2)},
              "bench_wall_s": round(time.monotonic() - started)}
    out = ROOT / "bench" / "results" / f"real_upgrade_downtime_{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'scenario':15s} {'downtime median (min-max)':>28s} {'wall median (min-max)':>26s}")
    for name, values in summary.items():
        d, w = values["downtime_s"], values["wall_s"]
        print(f"{name:15s} {d['median']:10.2f}s ({d['min']:.2f}-{d['max']:.2f}) {w['median']:12.1f}s "
              f"({w['min']:.1f}-{w['max']:.1f})")
    print(f"ratios: {report['ratios']}\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
