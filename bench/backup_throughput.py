"""Backup + verification against a raw ``pg_dump -Fc``, on a database grown to about 1 GB: every way
of backing up and verifying that was considered, side by side in one run (issue 17).

Each candidate must end where the upgrade's backup and verify_backup stages end: a dump on disk
with its sha256, proven restorable by a scratch restore whose every table has the rows and checksum
of the live database at the moment of the dump. Wall seconds are what the figure is about; CPU
seconds (the db container's cgroup plus this process and its children) are recorded beside them
because on a shared two-core machine they are the steadier number.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from runbook import backup, dbstate
from sandbox.installation import Installation

DB, USER, NAME = "openwatch-db", "openwatch", "openwatch"
CHOSEN = "z1_streamed_h64_split2"
BEFORE = "z1_streamed_md5"  # the suite's path before the h64 checksum (issue 17's "today")


def container_cpu_s(container: str) -> float | None:
    """CPU seconds the container has used (cgroup v1 cpuacct or v2 cpu.stat); None where neither is readable."""
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", container], capture_output=True, text=True,
                         check=True).stdout.strip()
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    for path in (Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat"), Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")):
        if path.is_file():
            return int(path.read_text().split("usage_usec ", 1)[1].split()[0]) / 1e6
    return None


def own_cpu_s() -> float:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


class Bed:
    """The grown database and what every candidate needs to reach it."""

    def __init__(self, install: Installation, scratch: Path) -> None:
        self.install, self.scratch = install, scratch
        self.conninfo = {"host": "127.0.0.1", "port": int(install.env["POSTGRES_PORT"]), "user": USER,
                         "password": install.env["POSTGRES_PASSWORD"]}
        self.recorded: dict[str, dict[str, dict]] = {}  # checksum kind -> the recorded tables

    @property
    def expected(self) -> dict[str, dict]:
        return self.recorded[dbstate.CURRENT_CHECKSUM]

    def record_state(self, kinds: set[str]) -> dict[str, float]:
        """The live tables read in an exported snapshot with each kind of checksum, as the upgrade's
        lock_and_record stage does (not part of any candidate's time: the upgrade records them whatever
        the backup does). Seconds per kind."""
        seconds = {}
        for kind in sorted(kinds):
            started = time.monotonic()
            snapshot = backup.Snapshot({**self.conninfo, "dbname": NAME})
            try:
                self.recorded[kind] = dbstate.as_json(dbstate.table_states(snapshot.conn, kind=kind))
            finally:
                snapshot.close()
            seconds[kind] = time.monotonic() - started
        return seconds

    def snapshot(self) -> backup.Snapshot:
        """A snapshot to dump in. The bench database does not change between candidates, so the state
        recorded once per repetition is what every snapshot holds."""
        return backup.Snapshot({**self.conninfo, "dbname": NAME})

    def folder(self, name: str) -> Path:
        folder = self.scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def raw(bed: Bed) -> Path:
    """The yardstick: ``pg_dump -Fc`` at its default level straight to a file, nothing verified."""
    dump = bed.folder("raw") / "raw.dump"
    with dump.open("wb") as out:
        subprocess.run(["docker", "exec", DB, "pg_dump", "-U", USER, "-d", NAME, "-Fc"], stdout=out, check=True)
    return dump


def suite_backup(compression: int | None, streamed: bool, in_snapshot: bool, kind: str = dbstate.CURRENT_CHECKSUM,
                 connections: int = backup.SCRATCH_CONNECTIONS) -> Callable[[Bed], Path]:
    """runbook/backup.py's take + verify, as the upgrade calls them, with these choices: ``kind`` of
    table checksum (recorded and compared), read over ``connections`` in the scratch."""
    def candidate(bed: Bed) -> Path:
        snapshot = bed.snapshot() if in_snapshot else None
        try:
            record = backup.take(bed.install.directory, bed.folder("suite"), DB, USER, NAME, "bench",
                                 restore_into="openwatch_verify_bench" if streamed else None,
                                 snapshot=snapshot, compression=compression)
        finally:
            if snapshot:
                snapshot.close()
        backup.verify(record, DB, USER, bed.conninfo, bed.recorded[kind], full_restore=True, connections=connections)
        return Path(record.dump)
    return candidate


def checksums_during_dump(bed: Bed) -> Path:
    """The live tables' checksums computed in the dump's snapshot while it streams (instead of before
    it): the time includes recording the state, so compare it with record_state_s + the chosen one."""
    snapshot = bed.snapshot()
    pool = ThreadPoolExecutor(max_workers=1)
    live = pool.submit(dbstate.table_states, snapshot.conn)
    try:
        record = backup.take(bed.install.directory, bed.folder("during"), DB, USER, NAME, "bench",
                             restore_into="openwatch_verify_bench", snapshot=snapshot)
        expected = dbstate.as_json(live.result())
    except BaseException:
        snapshot.conn.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        snapshot.close()
    backup.verify(record, DB, USER, bed.conninfo, expected, full_restore=True)
    return Path(record.dump)


def directory_jobs(bed: Bed) -> Path:
    """``pg_dump -Fd -Z1 -j2`` in the db container, copied out and hashed file by file, then
    ``pg_restore -j2`` into a scratch database (from the container's copy, which spares it the
    copy back in the emergency restore would need) and every table compared."""
    inside, scratch = "/tmp/bench_directory_dump", "openwatch_verify_bench"
    docker = ["docker", "exec", DB]
    subprocess.run([*docker, "rm", "-rf", inside], check=True)
    snapshot = bed.snapshot()
    try:
        subprocess.run([*docker, "pg_dump", "-U", USER, "-d", NAME, "-Fd", "-Z1", "-j2", "--snapshot", snapshot.id,
                        "-f", inside], check=True)
    finally:
        snapshot.close()
    target = bed.folder("directory") / "dump"
    subprocess.run(["docker", "cp", f"{DB}:{inside}", str(target)], check=True, capture_output=True)
    for path in sorted(target.iterdir()):
        backup.sha256_of(path)
    backup.psql(DB, USER, f"CREATE DATABASE {scratch}")
    try:
        subprocess.run([*docker, "pg_restore", "-U", USER, "-d", scratch, "--no-owner", "--exit-on-error", "-j2",
                        inside], check=True)
        with psycopg.connect(**bed.conninfo, dbname=scratch) as conn:
            if dbstate.as_json(dbstate.table_states(conn)) != bed.expected:
                raise RuntimeError("directory-format restore differs from the live database")
    finally:
        backup.drop_scratch(DB, USER, scratch)
        subprocess.run([*docker, "rm", "-rf", inside], check=True)
    return target


CANDIDATES: dict[str, tuple[str, Callable[[Bed], Path]]] = {
    "today": ("-Fc at the default level 6, restored while it streams, compared with the state recorded before",
              suite_backup(None, streamed=True, in_snapshot=False)),
    BEFORE: ("-Fc -Z1 in the recorded state's snapshot, restored while it streams, then compared by md5 "
             "checksums, one connection", suite_backup(1, streamed=True, in_snapshot=True, kind="md5", connections=1)),
    "z1_streamed_h64": ("-Fc -Z1 in the recorded state's snapshot, restored while it streams, then compared by "
                        "hashtextextended (h64) checksums, one connection",
                        suite_backup(1, streamed=True, in_snapshot=True, connections=1)),
    CHOSEN: ("as z1_streamed_h64, the scratch's tables read in page ranges over two connections",
             suite_backup(1, streamed=True, in_snapshot=True, connections=2)),
    "z0_streamed": ("-Fc -Z0 (uncompressed) in the recorded state's snapshot, restored while it streams, then "
                    "compared", suite_backup(0, streamed=True, in_snapshot=True)),
    "z1_restore_after": ("-Fc -Z1 in the snapshot, restored from the file once written, then compared",
                         suite_backup(1, streamed=False, in_snapshot=True)),
    "z1_checksums_during_dump": ("-Fc -Z1 restored while it streams, the live checksums computed in the same "
                                 "snapshot meanwhile (includes recording the state)", checksums_during_dump),
    "directory_z1_j2": ("-Fd -Z1 -j2, copied out, pg_restore -j2, then compared", directory_jobs),
}


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def timed(bed: Bed, action: Callable[[Bed], Path]) -> dict:
    cpu0, own0, started = container_cpu_s(DB), own_cpu_s(), time.monotonic()
    result = action(bed)
    wall, cpu1 = time.monotonic() - started, container_cpu_s(DB)
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0 + own_cpu_s() - own0
    # The machine's 1-minute load at the end: on a shared two-core machine it says how far wall
    # seconds are the candidate's own.
    return {"wall_s": wall, "cpu_s": cpu, "bytes": size_of(result), "load_1m": os.getloadavg()[0]}


def grow(install: Installation, size_mb: int) -> int:
    with install.connect() as conn:
        conn.execute("CREATE TABLE bench_filler (id bigserial PRIMARY KEY, payload text NOT NULL)")
        rows = size_mb * 1024 * 1024 // 240
        conn.execute("INSERT INTO bench_filler (payload) SELECT md5(g::text) || repeat(md5((g * 7)::text), 5) "
                     "FROM generate_series(1, %s) AS g", (rows,))
        conn.execute("VACUUM ANALYZE bench_filler")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def measure(install: Installation, size_mb: int, reps: int, scratch: Path, only: tuple[str, ...] = ()) -> dict:
    """Grow the database, then per repetition: record the state, the raw dump and every candidate, in an
    order rotated each repetition so none always runs first or after the same neighbour."""
    size = grow(install, size_mb)
    bed = Bed(install, scratch)
    names = [name for name in CANDIDATES if not only or name in only]
    runs: dict[str, list[dict]] = {name: [] for name in ("raw", *names)}
    record_s: dict[str, list[float]] = {}
    kinds = {dbstate.CURRENT_CHECKSUM} | ({"md5"} if BEFORE in names else set())
    for rep in range(reps):
        for kind, seconds in bed.record_state(kinds).items():
            record_s.setdefault(kind, []).append(seconds)
        order = ["raw", *names]
        order = order[rep % len(order):] + order[:rep % len(order)]
        for name in order:
            figures = timed(bed, raw if name == "raw" else CANDIDATES[name][1])
            runs[name].append(figures)
            print(f"backup rep {rep + 1} {name:26s} {figures['wall_s']:6.1f}s wall "
                  f"{figures['cpu_s'] or 0:6.1f}s cpu {figures['bytes'] / 1e6:7.1f} MB load {figures['load_1m']:.1f}",
                  flush=True)
            for leftover in scratch.iterdir():
                shutil.rmtree(leftover)
    raw_wall = statistics.median(r["wall_s"] for r in runs["raw"])
    raw_cpu = median_or_none([r["cpu_s"] for r in runs["raw"]])

    def summary(name: str) -> dict:
        wall = statistics.median(r["wall_s"] for r in runs[name])
        cpu = median_or_none([r["cpu_s"] for r in runs[name]])
        return {"what": CANDIDATES[name][0] if name in CANDIDATES else "pg_dump -Fc to a file, nothing verified",
                "wall_s": round(wall, 1), "wall_runs": [round(r["wall_s"], 1) for r in runs[name]],
                "cpu_s": None if cpu is None else round(cpu, 1),
                "cpu_runs": [None if r["cpu_s"] is None else round(r["cpu_s"], 1) for r in runs[name]],
                "load_1m_runs": [round(r["load_1m"], 1) for r in runs[name]],
                "mb": round(runs[name][0]["bytes"] / 1e6, 1),
                "ratio_to_raw": round(raw_wall / wall, 2),
                "cpu_ratio_to_raw": None if cpu is None or raw_cpu is None else round(raw_cpu / cpu, 2)}
    return {"database_mb": round(size / 1024 / 1024), "reps": reps, "chosen": CHOSEN,
            "record_state_s": {kind: round(statistics.median(values), 1) for kind, values in record_s.items()},
            "parallel_query": parallel_settings(bed),
            "raw": summary("raw"), "candidates": {name: summary(name) for name in names}}


def parallel_settings(bed: Bed) -> dict[str, str]:
    """The server's parallel query settings: a one-connection checksum may still use several cores."""
    with psycopg.connect(**bed.conninfo, dbname=NAME) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("max_parallel_workers_per_gather", "max_parallel_workers")}


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None
