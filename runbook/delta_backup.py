"""What the app wrote between the backup and the stop, kept so the emergency restore loses none of it.

The backup is taken while the old version still serves (it is not downtime), and a live OpenWatch
keeps writing: the job queue's scheduler, Celery beat's host checks, users. Once every app container
is stopped the database is still; the tables whose rows or checksum changed since the state was
recorded (a superset of those changed since the dump, which came after the recording) are dumped
again, data only. The emergency restore loads the backup into a scratch database, replaces those
tables' rows with these, and only then swaps it in; its verification compares the result with the
state recorded at the stop.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from runbook import backup
from runbook.errors import Problem
from runbook.shell import OWN_GROUP, run


@dataclass(frozen=True)
class DeltaRecord:
    dump: str
    sha256: str
    size: int
    tables: list[str]
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


def take(container: str, user: str, database: str, tables: list[str], destination: Path) -> DeltaRecord:
    """``pg_dump -Fc --data-only`` of ``tables`` (with the sequences they own), streamed and hashed as
    the backup is (``backup.dump_database``: private to its owner, a partial file never left)."""
    started = time.monotonic()
    selection = ["--data-only", *(arg for table in tables for arg in ("--table", f'public."{table}"'))]
    sha256, size, _ = backup.dump_database(container, user, database, destination, selection=selection)
    return DeltaRecord(str(destination), sha256, size, tables, round(time.monotonic() - started, 2))


def apply(record: DeltaRecord, container: str, user: str, database: str) -> None:
    """Replace the rows of the delta's tables in ``database`` (a scratch restore, never the live one)
    with the delta's. Foreign keys are not re-checked row by row (``session_replication_role``),
    since the whole database is then as it was at the stop, which the verification proves."""
    dump = Path(record.dump)
    if backup.sha256_of(dump) != record.sha256:
        raise Problem(f"{dump} no longer matches its sha256; the rows written since the backup cannot be restored")
    deletes = "".join(f'DELETE FROM public."{table}";' for table in record.tables)
    run(["docker", "exec", container, "psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database, "-c",
         f"SET session_replication_role = replica; {deletes}"], timeout=600)
    with dump.open("rb") as handle:
        loaded = subprocess.run(["docker", "exec", "-i", container, "pg_restore", "-U", user, "-d", database,
                                 "--data-only", "--disable-triggers", "--exit-on-error", "--single-transaction"],
                                stdin=handle, capture_output=True, timeout=600, **OWN_GROUP)
    if loaded.returncode != 0:
        raise Problem(f"loading the rows written since the backup failed ({backup.last_line(loaded.stderr)})")
