"""Read-only facts about the OpenWatch database: revision, tables, row counts and content checksums."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import sql

from runbook.errors import Problem

# A table's checksum is the exact (numeric) sum of a hash of every row's text form: independent of row
# order (no sort, so it scales to large tables) and sensitive to any changed, lost or duplicated row.
# The kind of hash is named in the checksum's text, "<kind>:<sum>", so a state recorded by an older
# suite (a resumed run's journal) is compared with checksums computed the same way, never with
# another hash's sums (which would differ in every table and send a rollback to the backup).
CHECKSUM_SUMS = {
    # PostgreSQL's 64-bit text hash (>= 11; the one hash partitioning relies on, so it is the same
    # on every version and run): half the CPU of md5 (1 GB table, 9.5 vs 17.9 s, bench/backup_throughput.py).
    "h64": "sum(hashtextextended(t::text, 0))",
    # 60 bits of md5: what suites before the h64 kind recorded, as a bare number.
    "md5": "sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint)",
}
CURRENT_CHECKSUM = "h64"
LEGACY_CHECKSUM = "md5"


@dataclass(frozen=True)
class TableState:
    rows: int
    checksum: str  # "<kind>:<sum>" (a bare sum: the md5 kind)


def as_json(states: Mapping[str, TableState]) -> dict[str, dict]:
    """``states`` as a journal records them and the comparisons read them: table -> {"rows", "checksum"}."""
    return {name: {"rows": state.rows, "checksum": state.checksum} for name, state in states.items()}


def checksum_kind(tables: Mapping[str, Mapping]) -> str:
    """The one kind of checksum of recorded ``tables`` (table -> {"rows", "checksum"}); the current
    kind when none is recorded."""
    kinds = {kind_of(info["checksum"]) for info in tables.values()}
    if len(kinds) > 1:
        raise Problem(f"the recorded table checksums mix kinds ({', '.join(sorted(kinds))}); "
                      "the recorded state is damaged, compare the tables by hand")
    return kinds.pop() if kinds else CURRENT_CHECKSUM


def kind_of(checksum: str) -> str:
    kind = checksum.split(":", 1)[0] if ":" in checksum else LEGACY_CHECKSUM
    if kind not in CHECKSUM_SUMS:
        raise Problem(f"checksum kind {kind!r} is unknown to this suite version; settle the run with the "
                      "suite version that recorded it")
    return kind


def user_tables(conn: psycopg.Connection) -> list[str]:
    """Tables of the ``public`` schema except alembic's bookkeeping."""
    rows = conn.execute(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def checksum_query(table: str, kind: str = CURRENT_CHECKSUM) -> sql.Composed:
    """Row count and checksum text of ``table``."""
    return sql.SQL("SELECT count(*), {} || coalesce({}, 0)::text FROM {} AS t").format(
        sql.Literal(_prefix(kind)), sql.SQL(CHECKSUM_SUMS[kind]), sql.Identifier(table))


def _prefix(kind: str) -> str:
    return "" if kind == LEGACY_CHECKSUM else f"{kind}:"


def table_states(conn: psycopg.Connection, tables: list[str] | None = None,
                 kind: str = CURRENT_CHECKSUM) -> dict[str, TableState]:
    """Row count and checksum per table; two databases with equal results hold the same data."""
    states: dict[str, TableState] = {}
    for table in tables if tables is not None else user_tables(conn):
        rows, checksum = conn.execute(checksum_query(table, kind)).fetchone()
        states[table] = TableState(rows=rows, checksum=checksum)
    return states


# Tables are cut into parts of about this many pages for :func:`table_states_parallel`: small enough
# that the connections finish together, large enough that a part's query costs nothing next to its scan.
PART_PAGES = 16384  # 128 MiB
TID_RANGE_SCANS = 140000  # the server version from which a ctid range reads only its pages


@dataclass(frozen=True)
class _Part:
    table: str
    first_page: int
    end_page: int | None  # None: to the end of the table (a part of a small table is all of it)


def _parts(conn: psycopg.Connection, tables: list[str]) -> list[_Part]:
    """``tables`` cut into page ranges, largest tables first so no connection is left with one at the end."""
    pages = dict(conn.execute(
        "SELECT c.relname::text, (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)", [tables]).fetchall())
    parts = []
    for table in sorted(tables, key=lambda name: -pages.get(name, 0)):
        starts = range(0, max(pages.get(table, 0), 1), PART_PAGES)
        parts += [_Part(table, start, start + PART_PAGES if start + PART_PAGES < pages.get(table, 0) else None)
                  for start in starts]
    return parts


def _part_query(part: _Part, kind: str) -> tuple[sql.Composed, list[str]]:
    """Rows and hash sum of the part's pages: a TID range scan (PostgreSQL >= 14) reads only those pages."""
    bounds = [sql.SQL("t.ctid >= %s::tid")] + ([sql.SQL("t.ctid < %s::tid")] if part.end_page is not None else [])
    values = [f"({part.first_page},0)"] + ([f"({part.end_page},0)"] if part.end_page is not None else [])
    query = sql.SQL("SELECT count(*), coalesce({}, 0) FROM {} AS t WHERE {}").format(
        sql.SQL(CHECKSUM_SUMS[kind]), sql.Identifier(part.table), sql.SQL(" AND ").join(bounds))
    return query, values


def table_states_parallel(conninfo: dict, kind: str = CURRENT_CHECKSUM, workers: int = 2) -> dict[str, TableState]:
    """:func:`table_states` of a database nobody writes to (a scratch restore), read over ``workers``
    connections: each table cut into page ranges whose counts and sums add up to the table's, so even
    one large table is shared out. Not for a live database: the connections read at different moments."""
    with psycopg.connect(**conninfo, connect_timeout=5, autocommit=True) as conn:
        if conn.info.server_version < TID_RANGE_SCANS:  # each part would read the whole table
            return table_states(conn, kind=kind)
        tables = user_tables(conn)
        parts = _parts(conn, tables)
    pending = iter(parts)  # next() on a shared iterator is atomic under the GIL: each part read once

    def drain() -> list[tuple[_Part, int, int]]:
        done = []
        with psycopg.connect(**conninfo, connect_timeout=5, autocommit=True) as conn:
            for part in pending:
                rows, total = conn.execute(*_part_query(part, kind)).fetchone()
                done.append((part, rows, int(total)))
        return done

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [item for done in pool.map(lambda _: drain(), range(workers)) for item in done]
    rows, totals = dict.fromkeys(tables, 0), dict.fromkeys(tables, 0)
    for part, count, total in results:
        rows[part.table] += count
        totals[part.table] += total
    return {table: TableState(rows=rows[table], checksum=f"{_prefix(kind)}{totals[table]}") for table in tables}


def alembic_revisions(conn: psycopg.Connection) -> list[str]:
    """Revisions stamped in ``alembic_version``: one normally, several with branched heads, none unmigrated."""
    exists = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT version_num::text FROM alembic_version ORDER BY 1")]
