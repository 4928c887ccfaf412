"""What the real upgrade tests read and do around a run of the suite: the operator's data restricted to the
columns it had before, the schema a fresh migration of the checked-out code makes, a Celery task sent at
the moment the drain starts, and a fault commit made in the test origin."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

from runbook.shell import run
from sandbox.real import installation as real_installation
from tests import real_openwatch

# The operator's tables the seed fills (sandbox/real/seed.py), and the ones the running app also writes.
OPERATOR_TABLES = ("users", "hosts", "host_groups", "host_group_memberships", "scans", "scan_results",
                   "scan_findings", "audit_logs")
WRITTEN_BY_THE_APP = {"hosts", "audit_logs", "users", "scans", "scan_results"}
FRESH_DATABASE = "openwatch_fresh_migration"


def columns(conn: psycopg.Connection, tables: tuple[str, ...] = OPERATOR_TABLES) -> dict[str, dict[int, str]]:
    """Each table's columns by position (``attnum``: a renamed column keeps it, a dropped one leaves a gap)."""
    rows = conn.execute("SELECT table_name::text, ordinal_position, column_name::text FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
                        [list(tables)]).fetchall()
    found: dict[str, dict[int, str]] = {}
    for table, position, column in rows:
        found.setdefault(table, {})[position] = column
    return found


def same_columns_now(before: dict[str, dict[int, str]], now: dict[str, dict[int, str]]) -> dict[str, list[str]]:
    """The columns a table had before, by the names they have now (a migration renamed some: 040 renamed
    ``aegis_remediation_id``); a column gone is named as such, so the comparison fails saying so."""
    return {table: [now.get(table, {}).get(position, f"<column {name} gone>") for position, name in positions.items()]
            for table, positions in before.items()}


def contents_in(conn: psycopg.Connection, kept: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Rows and the md5 of every row's values in the columns ``kept`` names (the ones the table had
    before the upgrade: a column a migration adds changes no row the operator wrote)."""
    found = {}
    for table, names in kept.items():
        row = sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Identifier(name) for name in names))
        query = sql.SQL("SELECT count(*), coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') "
                        "FROM (SELECT {} AS r FROM {}) AS rows").format(row, sql.Identifier(table))
        found[table] = tuple(conn.execute(query).fetchone())
    return found


def schema_of(database: str) -> list[str]:
    """``pg_dump --schema-only`` of ``database`` in openwatch-db, as tests/sandbox_state.schema_dump filters it."""
    dump = subprocess.run(["docker", "exec", "openwatch-db", "pg_dump", "-U", "openwatch", "-d", database,
                           "--schema-only", "--no-owner", "--no-privileges"],
                          capture_output=True, text=True, check=True, timeout=120).stdout
    return [line for line in dump.splitlines()
            if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))]


def fresh_migration_schema(install: real_installation.RealInstallation) -> list[str]:
    """The schema ``alembic upgrade head`` of the checked-out code makes on an empty database (a scratch
    one beside the operator's, dropped again), with the image that code built."""
    psql = ["docker", "exec", "openwatch-db", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "openwatch", "-d", "postgres"]
    run([*psql, "-c", f"DROP DATABASE IF EXISTS {FRESH_DATABASE}"])
    run([*psql, "-c", f"CREATE DATABASE {FRESH_DATABASE} OWNER openwatch"])
    try:
        url = f"postgresql://openwatch:{install.env['POSTGRES_PASSWORD']}@database:5432/{FRESH_DATABASE}"
        # -e NAME without a value: Compose takes it from its own environment, so the password is in no argv.
        run(["docker", "compose", "run", "--rm", "--no-deps", "-T", "--workdir", real_installation.BACKEND_DIR,
             "-e", "OPENWATCH_DATABASE_URL", "backend", "alembic", "upgrade", "head"],
            cwd=install.directory, env={**os.environ, "OPENWATCH_DATABASE_URL": url}, timeout=600)
        return schema_of(FRESH_DATABASE)
    finally:
        run([*psql, "-c", f"DROP DATABASE IF EXISTS {FRESH_DATABASE} WITH (FORCE)"])


# -- a real Celery task at the moment the drain starts ---------------------------------------------
# Sent from the worker container (stopped last) with the real app, held ready before the run so the
# import is not on the clock: on a line from stdin, one task with a countdown (as the app's retries are
# sent), then its result from the Redis backend, printed as soon as it is there.
SEND_ON_SIGNAL = """
import json, sys, time
from app.celery_app import celery_app
print("ready", flush=True)
sys.stdin.readline()
sent = time.time()
result = celery_app.send_task("celery.accumulate", args=["openwatch-suite drain test"], countdown=COUNTDOWN)
print(json.dumps({"id": result.id, "sent": sent}), flush=True)
value = result.get(timeout=300)
print(json.dumps({"id": result.id, "status": result.status, "result": value, "done": time.time()}), flush=True)
result.forget()
"""


class TaskAtDrain(threading.Thread):
    """Watches the run's journal; when ``drain_and_stop`` starts, sends one real Celery task with a
    countdown and collects what the worker container printed (nothing more once the worker stopped)."""

    def __init__(self, install_dir: Path, countdown_s: float = 8.0, deadline_s: float = 900.0) -> None:
        super().__init__(name="celery-task-at-drain", daemon=True)
        self.journal = install_dir / ".openwatch-upgrade" / "journal.json"
        self.deadline_s = deadline_s
        self.lines: list[dict] = []
        self.proc = subprocess.Popen(["docker", "exec", "-i", "openwatch-worker", "python3", "-c",
                                      SEND_ON_SIGNAL.replace("COUNTDOWN", repr(countdown_s))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip()
        if ready != "ready":
            self.proc.kill()
            raise RuntimeError(f"the Celery sender did not start: {ready!r} {self.proc.stderr.read()[-500:]}")

    def drain_started(self) -> bool:
        try:
            stages = json.loads(self.journal.read_text()).get("stages") or []
        except (OSError, ValueError):
            return False
        return any(stage["name"] == "drain_and_stop" for stage in stages)

    def run(self) -> None:
        deadline = time.monotonic() + self.deadline_s
        while not self.drain_started():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                return
            time.sleep(0.05)
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def finish(self, timeout_s: float = 60.0) -> tuple[dict | None, dict | None]:
        """(sent, done): what the sender printed; ``done`` is None when the worker stopped first."""
        self.join(timeout_s)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        sent = next((line for line in self.lines if "sent" in line), None)
        done = next((line for line in self.lines if "status" in line), None)
        return sent, done


# -- a fault commit on April ------------------------------------------------------------------------
FAULT_BRANCH = "fault-after-041"
FAULT_REVISION = "055_unique_finding_per_scan"
FAULT_MIGRATION = f'''"""One finding per scan (a fault of the upgrade suite's tests, never upstream).

The seeded data has several findings per scan, so the constraint fails. It runs after 041's mid-run
COMMIT: from there on each statement commits by itself, so the column the first statement adds stays.
"""

import sqlalchemy as sa

from alembic import op

revision = "{FAULT_REVISION}"
down_revision = "054_seed_recurring_jobs"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("scan_findings", sa.Column("reviewed_by_suite_fault", sa.Boolean(), nullable=True))
    op.create_unique_constraint("uq_scan_findings_one_per_scan", "scan_findings", ["scan_id"])


def downgrade():
    op.drop_constraint("uq_scan_findings_one_per_scan", "scan_findings", type_="unique")
    op.drop_column("scan_findings", "reviewed_by_suite_fault")
'''


def fault_commit(origin: Path, base: str) -> str:
    """April plus the failing migration 055, as branch ``fault-after-041`` of the test origin."""
    path = f"backend/alembic/versions/20260415_0000_{FAULT_REVISION}.py"
    return real_openwatch.commit_on(origin, base, FAULT_BRANCH, {path: FAULT_MIGRATION},
                                    "fault: a migration the seeded data violates (openwatch-upgrade-suite tests)")


def remove_fault(origin: Path) -> None:
    run(["git", "--git-dir", str(origin), "update-ref", "-d", f"refs/heads/{FAULT_BRANCH}"], check=False)
