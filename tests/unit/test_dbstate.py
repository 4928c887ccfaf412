"""Table checksums on a real PostgreSQL (a throwaway cluster of this machine, no container): each
kind is independent of row order and sees a changed, lost or duplicated row; the parallel reading
of a scratch restore adds up to the one-connection one; a state recorded with the older md5 kind
is compared with md5 checksums, never with another kind's."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from runbook import dbstate
from runbook.errors import Problem
from tests.local_postgres import scratch_database

KINDS = sorted(dbstate.CHECKSUM_SUMS)
TABLES = """
CREATE TABLE hosts (id integer PRIMARY KEY, hostname text NOT NULL, tags jsonb, seen timestamptz);
INSERT INTO hosts SELECT i, 'rhel-' || i, jsonb_build_object('n', i), '2026-01-01'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 3000) AS i;
CREATE TABLE empty_table (id integer);
"""


@pytest.fixture
def database(local_postgres_cluster: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"dbstate_{request.node.name[-40:]}".lower().replace("[", "_").replace("]", "").replace("-", "_")
    with scratch_database(local_postgres_cluster, name) as conninfo:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(TABLES)
        yield conninfo


@pytest.mark.parametrize("kind", KINDS)
def test_checksum_ignores_order_and_sees_changed_lost_and_duplicated_rows(database: str, kind: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        recorded = dbstate.table_states(conn, kind=kind)["hosts"]
        assert dbstate.kind_of(recorded.checksum) == kind
        conn.execute("CREATE TABLE reordered AS SELECT * FROM hosts ORDER BY id DESC")
        conn.execute("ALTER TABLE hosts RENAME TO original; ALTER TABLE reordered RENAME TO hosts")
        assert dbstate.table_states(conn, ["hosts"], kind=kind)["hosts"] == recorded
        conn.execute("UPDATE hosts SET hostname = 'rhel-X' WHERE id = 7")
        changed = dbstate.table_states(conn, ["hosts"], kind=kind)["hosts"]
        assert changed.rows == recorded.rows and changed.checksum != recorded.checksum
        conn.execute("UPDATE hosts SET hostname = 'rhel-7' WHERE id = 7")
        assert dbstate.table_states(conn, ["hosts"], kind=kind)["hosts"] == recorded
        conn.execute("DELETE FROM hosts WHERE id = 9")
        assert dbstate.table_states(conn, ["hosts"], kind=kind)["hosts"].rows == recorded.rows - 1
        conn.execute("INSERT INTO hosts SELECT * FROM original WHERE id = 9")
        conn.execute("INSERT INTO hosts SELECT * FROM original WHERE id = 10")  # a duplicate
        duplicated = dbstate.table_states(conn, ["hosts"], kind=kind)["hosts"]
        assert duplicated.rows == recorded.rows + 1 and duplicated.checksum != recorded.checksum


@pytest.mark.parametrize("kind", KINDS)
def test_parallel_reading_adds_up_to_the_one_connection_reading(database: str, kind: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbstate, "PART_PAGES", 3)  # the 3000 rows span many parts
    with psycopg.connect(database, autocommit=True) as conn:
        serial = dbstate.table_states(conn, kind=kind)
        pages = conn.execute("SELECT pg_relation_size('hosts') / current_setting('block_size')::int").fetchone()[0]
    assert pages > 3 * dbstate.PART_PAGES
    assert dbstate.table_states_parallel(conninfo_to_dict(database), kind, workers=2) == serial
    assert serial["empty_table"].rows == 0


def test_the_checksum_kind_is_read_from_the_recorded_state() -> None:
    assert dbstate.checksum_kind({"hosts": {"rows": 3, "checksum": "123456"}}) == "md5"  # an older suite's journal
    assert dbstate.checksum_kind({"hosts": {"rows": 3, "checksum": "h64:-42"}}) == "h64"
    assert dbstate.checksum_kind({}) == dbstate.CURRENT_CHECKSUM
    with pytest.raises(Problem, match="mix kinds"):
        dbstate.checksum_kind({"a": {"rows": 1, "checksum": "1"}, "b": {"rows": 1, "checksum": "h64:1"}})
    with pytest.raises(Problem, match="unknown to this suite version"):
        dbstate.kind_of("sha9:1")
