"""Benchmark: what recording and comparing the schema fingerprint costs, next to the table
checksums the recorded state already takes, on the seeded sandbox database; and how both scale to
a schema of the real OpenWatch's size (about 65 tables) built in a scratch database beside it.

    .venv/bin/python -m bench.schema_fingerprint [--reps 20] [--tables 65]

Prints the figures and writes JSON to bench/results/. Never run by the tests (speed is not asserted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from runbook import dbstate, schema_fingerprint
from sandbox import engine as engines
from sandbox import images, installation, releases
from sandbox.installation import Installation

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = "openwatch_bench_fingerprint"


def median_ms(action: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def journal_bytes(fingerprint: schema_fingerprint.Fingerprint) -> int:
    """Its size as the journal writes it (indent 2, keys sorted)."""
    return len(json.dumps({"schema": fingerprint.to_json()}, indent=2, sort_keys=True).encode())


def figures(conn: psycopg.Connection, reps: int) -> dict[str, float]:
    fingerprint = schema_fingerprint.capture(conn)
    fingerprint_ms = median_ms(lambda: schema_fingerprint.capture(conn), reps)
    checksums_ms = median_ms(lambda: dbstate.table_states(conn), max(3, reps // 4))
    return {"objects": len(fingerprint.objects), "tables": len(dbstate.user_tables(conn)),
            "fingerprint_ms": fingerprint_ms, "checksums_ms": checksums_ms,
            "fingerprint_to_checksums": round(fingerprint_ms / checksums_ms, 3),
            "diff_ms": median_ms(lambda: schema_fingerprint.differences(fingerprint, fingerprint), reps),
            "journal_bytes": journal_bytes(fingerprint),
            "compact_bytes": len(json.dumps(fingerprint.to_json(), separators=(",", ":")).encode())}


def real_sized_schema(tables: int) -> str:
    """Tables shaped like the real OpenWatch's (serial id, a dozen typed columns with defaults, a
    foreign key, two indexes, a check), an enum, a trigger function."""
    statements = ["CREATE TYPE severity AS ENUM ('info', 'low', 'medium', 'high', 'critical')",
                  "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.updated_at = now(); "
                  "RETURN NEW; END$$"]
    for i in range(tables):
        parent = f", parent_id integer REFERENCES t{i - 1:02}(id)" if i else ""
        statements += [
            f"CREATE TABLE t{i:02} (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, description text, "
            f"level severity NOT NULL DEFAULT 'info', enabled boolean NOT NULL DEFAULT true, "
            f"settings jsonb NOT NULL DEFAULT '{{}}', score numeric(5,2) CHECK (score BETWEEN 0 AND 100), "
            f"created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz{parent})",
            f"CREATE INDEX ix_t{i:02}_created_at ON t{i:02} (created_at)",
            f"CREATE INDEX ix_t{i:02}_level ON t{i:02} (level) WHERE enabled",
            f"CREATE TRIGGER t{i:02}_touch BEFORE UPDATE ON t{i:02} FOR EACH ROW EXECUTE FUNCTION touch()"]
    return ";\n".join(statements)


def measure(install: Installation, reps: int, tables: int) -> dict:
    with install.connect() as conn:
        seeded = figures(conn, reps)
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(install.conninfo(), dbname=SCRATCH),
                             autocommit=True) as scratch:
            scratch.execute(real_sized_schema(tables))
            sized = figures(scratch, reps)
    finally:
        with install.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    return {"seeded_sandbox_v0.1.0": seeded, f"empty_schema_of_{tables}_tables": sized}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--tables", type=int, default=65)
    args = parser.parse_args()
    try:
        with engines.from_environment(default="bench").serving() as engine:
            images.ensure_all()
            install = installation.create(Path(tempfile.mkdtemp(prefix="openwatch-bench-")) / "install",
                                          releases.OLDEST.tag, ports=engine.ports, subnet=engine.install_subnet)
            try:
                results = measure(install, args.reps, args.tables)
            finally:
                install.destroy()
    except engines.EngineError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    report = {"bench": "schema_fingerprint", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "reps": args.reps, "results": results}
    out = ROOT / "bench" / "results" / f"schema_fingerprint_{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
