"""Backups: a streamed ``pg_dump -Fc`` with its sha256, configuration copies, verification by a
scratch restore, restore for the emergency rollback, and pruning by retention.

The dump reads the snapshot the recorded state was read in (:class:`Snapshot`), so "the scratch
restore equals the recorded tables" means equal to the live database at the moment of the dump,
whatever the app writes meanwhile."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from runbook import dbstate, schema_fingerprint
from runbook.errors import Problem
from runbook.shell import OWN_GROUP, CommandError, run

CHUNK = 1 << 20
# gzip level of the dump's table data. pg_dump's default (6) spends three times the CPU of level 1
# for 7 % fewer bytes on OpenWatch-like data (1.1 GB database: 29 vs 10 CPU seconds, 199 vs 212 MB);
# on two cores that CPU is what the backup waits for (bench/upgrade_downtime.py, backup candidates).
COMPRESSION = 1
# Connections the scratch restore's tables are read over (page ranges, runbook/dbstate.py): on two
# cores the verification's checksums take about half the wall time of one connection's (1.1 GB
# database: backup + verify 32-40 s instead of 49-57 s, bench/backup_throughput.py).
SCRATCH_CONNECTIONS = 2
CONFIG_FILES = (".env", "docker-compose.yml", "docker-compose.prod.yml")
# Databases only a lock holder creates, for verification and restore; a killed run can leave them.
# Named by the suite whatever POSTGRES_DB says, so a leftover is recognised by its prefix alone.
SCRATCH_PREFIXES = ("openwatch_verify_", "openwatch_restore_", "openwatch_replaced_")


# The rows the app wrote after a backup (runbook/delta_backup.py) sit next to it under a suffix of their
# own: a few tables' rows are no backup, and they go when the backup they complete is pruned. Runs
# before this suffix named them ``<backup>.since-backup.dump``.
DELTA_SUFFIX = ".since-backup.delta"
LEGACY_DELTA_SUFFIX = ".since-backup.dump"

def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier: any POSTGRES_DB or POSTGRES_USER, read as one name."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class BackupRecord:
    dump: str
    sha256: str
    size: int
    config_dir: str
    seconds: float
    scratch_db: str | None = None  # restored from the same stream while it was written
    scratch_error: str | None = None
    format: str = "custom"  # pg_dump -Fc; restored by pg_restore from a stream
    compression: int | None = None  # gzip level of its table data (None: pg_dump's default, 6)
    snapshot: str | None = None  # the exported snapshot it was dumped in, shared with the recorded state

    def to_json(self) -> dict:
        return asdict(self)


class _Restorer:
    """``pg_restore`` into a scratch database, fed the dump's bytes as they are written to the file,
    so verifying by restore costs no extra pass over the dump."""

    def __init__(self, container: str, user: str, database: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["docker", "exec", "-i", container, "pg_restore", "-U", user, "-d", database,
                                      "--no-owner", "--exit-on-error"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log, **OWN_GROUP)
        self.broken = False

    def feed(self, chunk: bytes) -> None:
        if not self.broken:
            try:
                self.proc.stdin.write(chunk)
            except BrokenPipeError:  # pg_restore stopped; its exit code and log tell why
                self.broken = True

    def finish(self) -> str | None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=3600)
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").strip()
        self.log.close()
        return None if self.proc.returncode == 0 else (text[-300:] or f"pg_restore exited {self.proc.returncode}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class Snapshot:
    """A REPEATABLE READ transaction that exported its snapshot: while it stays open, what it reads is
    exactly what ``pg_dump --snapshot`` with its id dumps. Close it once the dump has ended."""

    def __init__(self, conninfo: dict) -> None:
        self.conn = psycopg.connect(**conninfo, connect_timeout=5)
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        # Open between two stages: an installation's idle-in-transaction timeout must not end it.
        self.conn.execute("SET idle_in_transaction_session_timeout = 0")
        self.id: str = self.conn.execute("SELECT pg_export_snapshot()").fetchone()[0]

    def close(self) -> None:
        self.conn.close()  # ends the read-only transaction


def dump_database(container: str, user: str, database: str, destination: Path,
                  restorer: _Restorer | None = None, snapshot: str | None = None,
                  compression: int | None = COMPRESSION, selection: Sequence[str] = ()) -> tuple[str, int, str | None]:
    """Stream ``pg_dump -Fc`` from the db container to ``destination`` (and ``restorer``), hashing as
    it goes; in the exported ``snapshot`` when given; ``selection``: more pg_dump options (what to
    dump). Returns sha256, size and the restorer's error (None when it restored cleanly)."""
    digest, size = hashlib.sha256(), 0
    partial = destination.with_suffix(".partial")
    argv = ["docker", "exec", container, "pg_dump", "-U", user, "-d", database, "-Fc",
            *(["-Z", str(compression)] if compression is not None else []),
            *(["--snapshot", snapshot] if snapshot else []), *selection]
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          **OWN_GROUP) as proc:
        assert proc.stdout is not None
        try:
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                while chunk := proc.stdout.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if restorer is not None:
                        restorer.feed(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            proc.kill()
            partial.unlink(missing_ok=True)
            raise Problem(f"writing the backup to {destination.parent} failed ({error.strerror}) after "
                          f"{size / 1024 / 1024:.1f} MiB; the partial file was removed and nothing was changed: "
                          f"free at least {needed_hint(container, user, database)} there or pass another --backup-dir") from None
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0 or size == 0:
        partial.unlink(missing_ok=True)
        raise Problem(f"pg_dump failed (exit {proc.returncode}): {stderr.strip()[-200:]}")
    partial.rename(destination)
    return digest.hexdigest(), size, restorer.finish() if restorer is not None else None


def needed_hint(container: str, user: str, database: str) -> str:
    """Room a dump may need: the database's size (compression usually makes it far smaller)."""
    proc = run(["docker", "exec", container, "psql", "-At", "-U", user, "-d", database, "-c",
                "SELECT pg_size_pretty(pg_database_size(current_database()))"], check=False, timeout=30)
    return f"{proc.stdout.strip()} (the database's size)" if proc.returncode == 0 else "the database's size"


def take(install_dir: Path, backup_dir: Path, container: str, user: str, database: str, label: str,
         restore_into: str | None = None, snapshot: Snapshot | None = None,
         compression: int | None = COMPRESSION) -> BackupRecord:
    """Dump (in ``snapshot``, when given) and copy the configuration; with ``restore_into``, also
    restore the dump into that scratch database in the same pass (dropped again if anything fails)."""
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d_%H%M%S")
    for folder in (backup_dir, backup_dir.parent / "config"):  # dumps and .env copies hold secrets
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    dump = backup_dir / f"pre_upgrade_{label}_{stamp}.dump"
    restorer = None
    if restore_into:
        psql(container, user, f"CREATE DATABASE {identifier(restore_into)}")
        restorer = _Restorer(container, user, restore_into)
    try:
        sha256, size, scratch_error = dump_database(container, user, database, dump, restorer,
                                                    snapshot.id if snapshot else None, compression)
    except BaseException:
        if restorer is not None:
            restorer.kill()
            drop_scratch(container, user, restore_into)
        raise
    config_dir = backup_dir.parent / "config" / f"pre_upgrade_{label}_{stamp}"
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        if (install_dir / name).exists():
            shutil.copy2(install_dir / name, config_dir / name)
            (config_dir / name).chmod(0o600)
    certs = install_dir / "security" / "certs"
    if certs.is_dir():
        shutil.copytree(certs, config_dir / "certs")
    return BackupRecord(str(dump), sha256, size, str(config_dir), round(time.monotonic() - started, 2),
                        restore_into, scratch_error, compression=compression,
                        snapshot=snapshot.id if snapshot else None)


def drop_scratch(container: str, user: str, database: str | None) -> None:
    if database:
        psql(container, user, f"DROP DATABASE IF EXISTS {identifier(database)} WITH (FORCE)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _pg_restore(container: str, user: str, dump: Path, *args: str) -> subprocess.CompletedProcess:
    with dump.open("rb") as source:
        return subprocess.run(["docker", "exec", "-i", container, "pg_restore", "-U", user, *args],
                              stdin=source, capture_output=True, timeout=3600, **OWN_GROUP)


def psql(container: str, user: str, sql: str) -> None:
    run(["docker", "exec", container, "psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", "postgres", "-c", sql],
        timeout=600)


def verify(record: BackupRecord, container: str, user: str, conninfo: dict, expected: dict[str, dict],
           full_restore: bool, expected_schema: dict | None = None,
           connections: int = SCRATCH_CONNECTIONS) -> dict:
    """Checksum, ``pg_restore --list``, and (``full_restore``) the scratch restore's tables compared
    with ``expected`` (rows and checksum of every table, read in the dump's own snapshot when the
    record names one; the scratch's checksums are computed the way those were), and its schema with
    ``expected_schema`` (a fingerprint's JSON): the emergency rollback can only give back what the
    dump holds. ``connections`` > 1: the scratch's tables are read in page ranges over that many
    connections (:func:`dbstate.table_states_parallel`; nobody writes to the scratch, so they read
    the same data). The scratch database is always dropped."""
    dump = Path(record.dump)
    kind = dbstate.checksum_kind(expected)
    try:
        if sha256_of(dump) != record.sha256:
            raise Problem(f"backup {dump} does not match its recorded sha256; take the backup again")
        listing = _pg_restore(container, user, dump, "--list")
        if listing.returncode != 0 or b"TABLE DATA" not in listing.stdout:
            raise Problem(f"pg_restore --list cannot read {dump}: {listing.stderr.decode(errors='replace')[-200:]}")
        result = {"listed_entries": listing.stdout.count(b"\n"), "restored": False}
        if not full_restore:
            return result
        scratch = record.scratch_db
        if scratch is None:  # not restored while dumping: restore the file now
            scratch = f"{SCRATCH_PREFIXES[0]}{int(time.time())}"
            psql(container, user, f"CREATE DATABASE {identifier(scratch)}")
            restored = _pg_restore(container, user, dump, "-d", scratch, "--no-owner", "--exit-on-error")
            error = None if restored.returncode == 0 else restored.stderr.decode(errors="replace")[-200:]
        else:
            error = record.scratch_error
        try:
            if error:
                raise Problem(f"scratch restore of {dump} failed: {error}")
            with psycopg.connect(**conninfo, dbname=scratch, connect_timeout=5) as conn:
                states = (dbstate.table_states_parallel({**conninfo, "dbname": scratch}, kind, connections)
                          if connections > 1 else dbstate.table_states(conn, kind=kind))
                found = dbstate.as_json(states)
                schema = schema_fingerprint.capture(conn)
        finally:
            drop_scratch(container, user, scratch)
        if expected_schema:
            differing = schema_fingerprint.differences(schema_fingerprint.Fingerprint.from_json(expected_schema), schema)
            if differing:
                raise Problem(f"the scratch restore's schema differs from the live database's: "
                              f"{'; '.join(schema_fingerprint.capped(differing, 3))}; the backup is not usable, "
                              "nothing was changed")
        if found != expected:
            differing = sorted(n for n in set(found) | set(expected) if found.get(n) != expected.get(n))
            raise Problem(f"the scratch restore differs from the live database in {', '.join(differing)}; "
                          "the backup is not usable, nothing was changed")
        result.update(restored=True, tables_compared=len(expected),
                      compared_with="the live tables read in the dump's own snapshot" if record.snapshot
                      else "the live tables recorded before the dump")
        return result
    finally:
        drop_scratch(container, user, record.scratch_db)


def restore(dump: Path, container: str, user: str, database: str,
            before_swap: Callable[[str], None] | None = None) -> None:
    """Replace the database with ``dump`` (app containers must be stopped; the db container stays).

    The dump is restored into a scratch database first, ``before_swap`` (given the scratch
    database's name) completes it, and only when both succeeded is the live database swapped for
    it, so a corrupt or truncated dump never costs the database it was meant to replace."""
    listing = _pg_restore(container, user, dump, "--list")
    if listing.returncode != 0 or b"TABLE DATA" not in listing.stdout:
        raise Problem(f"{dump} is not a readable pg_dump archive (pg_restore --list: "
                      f"{last_line(listing.stderr) or 'no table data'}); the database was not touched")
    incoming, displaced = f"{SCRATCH_PREFIXES[1]}{os.getpid()}", f"{SCRATCH_PREFIXES[2]}{os.getpid()}"
    drop_scratch(container, user, incoming)
    psql(container, user, f"CREATE DATABASE {identifier(incoming)} OWNER {identifier(user)}")
    restored = _pg_restore(container, user, dump, "-d", incoming, "--no-owner", "--no-privileges", "--exit-on-error")
    if restored.returncode != 0:
        drop_scratch(container, user, incoming)
        raise Problem(f"restoring {dump} failed ({last_line(restored.stderr)}); the database was not touched")
    if before_swap is not None:
        try:
            before_swap(incoming)
        except Exception:
            drop_scratch(container, user, incoming)
            raise
    _swap(container, user, database, incoming, displaced)
    drop_scratch(container, user, displaced)


def _swap(container: str, user: str, database: str, incoming: str, displaced: str, attempts: int = 10) -> None:
    """Rename ``incoming`` to ``database`` in one transaction, after ending the live database's
    connections (the app is stopped; a straggler would make the rename fail, so it is retried)."""
    live = identifier(database)
    psql(container, user, f"ALTER DATABASE {live} WITH ALLOW_CONNECTIONS false")
    for attempt in range(attempts):
        psql(container, user, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {literal(database)}")
        try:  # one -c string is one transaction: either both renames happen or neither
            psql(container, user, f"ALTER DATABASE {live} RENAME TO {identifier(displaced)}; "
                                  f"ALTER DATABASE {identifier(incoming)} RENAME TO {live}")
            return
        except CommandError:
            if attempt == attempts - 1:
                psql(container, user, f"ALTER DATABASE {live} WITH ALLOW_CONNECTIONS true")
                raise
            time.sleep(0.5)


def last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def delta_path(dump: Path) -> Path:
    """Where the rows the app wrote after ``dump`` was taken are kept (``runbook/delta_backup.py``)."""
    return dump.with_suffix(DELTA_SUFFIX)


def is_delta(path: Path) -> bool:
    return path.name.endswith((DELTA_SUFFIX, LEGACY_DELTA_SUFFIX))


def prune(backup_dir: Path, retention_days: float) -> list[str]:
    """Delete dumps older than the retention, always keeping the newest, each with its delta."""
    dumps = sorted((p for p in backup_dir.glob("*.dump") if not is_delta(p)), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    cutoff = time.time() - retention_days * 86400
    removed = []
    for dump in (p for p in dumps[1:] if p.stat().st_mtime < cutoff):
        for path in (dump, delta_path(dump), dump.with_suffix(LEGACY_DELTA_SUFFIX)):
            if path.exists():
                path.unlink()
                removed.append(path.name)
    return removed
