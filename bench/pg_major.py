"""PostgreSQL 15 -> 17 on a database grown to about 1 GB: the suite's major upgrade (dump, verify,
restore onto a new volume, analyze, compare every table, switch, verify with a new backup) next to
the procedure's raw ``pg_dumpall | psql`` into a PostgreSQL 17 container, and the suite's way back
(``--pg-rollback``). Stage durations and the user-visible downtime come from the run's own journal
and report. Writes bench/results/pg_major_<time>.json; never run by the tests.

    OPENWATCH_TEST_ENGINE=<engine> .venv/bin/python -m bench.pg_major --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.backup_throughput import grow
from runbook.shell import progress, run
from sandbox import engine as engines
from sandbox import images, installation, releases
from sandbox.installation import Installation
from tests.bundles import read_summaries

ROOT = Path(__file__).resolve().parent.parent
NEW_IMAGE = images.POSTGRES_17.tag
RAW_TARGET = "openwatch-bench-pg17"


def raw_dumpall_into_psql(install: Installation) -> dict:
    """The procedure's way, timed: ``pg_dumpall`` of the old server piped into ``psql`` of a fresh 17."""
    password = install.env["POSTGRES_PASSWORD"]
    run(["docker", "run", "--detach", "--name", RAW_TARGET, "--env", "POSTGRES_USER=openwatch", "--env",
         "POSTGRES_PASSWORD", NEW_IMAGE], env={**os.environ, "POSTGRES_PASSWORD": password})
    try:
        # Not pg_isready: the entrypoint's temporary server (socket only) answers it during initialisation,
        # then stops. Only the final server logs that it is ready (the temporary one's log goes to /dev/null).
        deadline = time.monotonic() + 300
        while "ready to accept connections" not in run(["docker", "logs", RAW_TARGET], check=False).stderr:
            if time.monotonic() > deadline:
                raise RuntimeError("the raw target never became ready")
            time.sleep(0.5)
        started = time.monotonic()
        dump = subprocess.Popen(["docker", "exec", "openwatch-db", "pg_dumpall", "-U", "openwatch"],
                                stdout=subprocess.PIPE)
        restore = subprocess.run(["docker", "exec", "-i", RAW_TARGET, "psql", "-q", "-U", "openwatch", "-d", "postgres"],
                                 stdin=dump.stdout, capture_output=True, timeout=7200)
        dump.stdout.close()
        dump.wait(timeout=60)
        seconds = time.monotonic() - started
        return {"seconds": round(seconds, 1), "pg_dumpall_exit": dump.returncode, "psql_exit": restore.returncode}
    finally:
        run(["docker", "rm", "--force", "--volumes", RAW_TARGET], check=False)


def suite_run(install: Installation, reports: Path, *args: str) -> tuple[float, dict, dict]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), "--install-dir",
                           str(install.directory), *args, "--ignore-maintenance", f"--reports-dir={reports}",
                           "-p", "no:cacheprovider", "-o", "log_cli=false", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=7200)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"suite run {' '.join(args)} failed:\n{proc.stdout[-3000:]}")
    journal = json.loads((install.directory / ".openwatch-upgrade" / "journal.json").read_text())
    summaries = read_summaries(reports)
    return seconds, journal, summaries[-1] if summaries else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--raw-only", action="store_true", help="measure only the raw pg_dumpall | psql")
    args = parser.parse_args()
    with engines.from_environment(default="bench").serving() as engine, \
            tempfile.TemporaryDirectory(prefix="pg-major-bench-") as workdir:
        engine.remove_leftovers()
        images.ensure_component_images()
        origin = releases.ensure_origin()
        install = installation.create(Path(workdir) / "install", releases.OLDEST.tag, origin=origin,
                                      ports=engine.ports, subnet=engine.install_subnet)
        try:
            size = grow(install, args.size_mb)
            progress(f"database grown to {size / 2**20:.0f} MiB")
            raw = raw_dumpall_into_psql(install)
            progress(f"raw pg_dumpall | psql: {raw['seconds']}s")
            if args.raw_only:
                out = ROOT / "bench" / "results" / f"pg_major_raw_{time.strftime('%Y%m%dT%H%M%S')}.json"
                out.write_text(json.dumps({"database_bytes": size, "raw_pg_dumpall_into_psql": raw,
                                           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
                print(json.dumps(raw))
                return 0
            wall, journal, summary = suite_run(install, Path(workdir) / "reports-up", "--component", "postgres",
                                               "--image", NEW_IMAGE)
            stages = {s["name"]: s["seconds"] for s in journal["stages"]}
            back_wall, back_journal, back_summary = suite_run(install, Path(workdir) / "reports-back", "--component",
                                                              "postgres", "--pg-rollback",
                                                              "--pg-rollback-discarding-writes")
        finally:
            run(["docker", "volume", "rm", "--force", "openwatch_postgres_data_pg17"], check=False)
            install.destroy()
            run(["docker", "volume", "rm", "--force", "openwatch_postgres_data_pg17"], check=False)
    dump_restore = sum(stages.get(name, 0) for name in ("dump", "start_new", "restore"))
    result = {
        "database_bytes": size,
        "raw_pg_dumpall_into_psql": raw,  # valid only when both exit codes are 0
        "suite": {"wall_s": round(wall, 1), "stages_s": stages, "dump_start_restore_s": round(dump_restore, 1),
                  "downtime": (summary or {}).get("downtime"), "dump_bytes": sum(
                      d["size"] for d in journal["pg_major"]["dumps"])},
        "suite_to_raw_dump_restore": round(dump_restore / raw["seconds"], 2),
        "pg_rollback": {"wall_s": round(back_wall, 1), "actions": back_journal["rollback"]["actions"],
                        "downtime": (back_summary or {}).get("downtime")},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = ROOT / "bench" / "results" / f"pg_major_{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("database_bytes", "raw_pg_dumpall_into_psql", "suite_to_raw_dump_restore")}))
    print(f"stages: {stages}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
