"""Read-only facts about the OpenWatch database: revision, tables, row counts and content checksums."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class TableState:
    rows: int
    # Sum of a 60-bit hash of every row's text form: independent of row order (no sort, so it
    # scales to large tables) and sensitive to any changed, lost or duplicated row.
    checksum: str


def user_tables(conn: psycopg.Connection) -> list[str]:
    """Tables of the ``public`` schema except alembic's bookkeeping."""
    rows = conn.execute(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def table_states(conn: psycopg.Connection, tables: list[str] | None = None) -> dict[str, TableState]:
    """Row count and checksum per table; two databases with equal results hold the same data."""
    states: dict[str, TableState] = {}
    for table in tables if tables is not None else user_tables(conn):
        query = sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text"
            " FROM {} AS t"
        ).format(sql.Identifier(table))
        rows, checksum = conn.execute(query).fetchone()
        states[table] = TableState(rows=rows, checksum=checksum)
    return states


def alembic_revisions(conn: psycopg.Connection) -> list[str]:
    """Revisions stamped in ``alembic_version``: one normally, several with branched heads, none unmigrated."""
    exists = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT version_num::text FROM alembic_version ORDER BY 1")]
