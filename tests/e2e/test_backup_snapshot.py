"""The backup is verified against the live database at the moment of the dump: the recorded state and
the dump share one exported snapshot, so a write the app commits in between is in neither."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook import backup, dbstate
from runbook.errors import Problem
from sandbox.installation import Installation

DB, USER, NAME = "openwatch-db", "openwatch", "openwatch"


def recorded(conn) -> dict[str, dict]:
    return {name: {"rows": s.rows, "checksum": s.checksum} for name, s in dbstate.table_states(conn).items()}


def test_a_write_between_recording_and_dumping_is_in_neither(baseline: Installation, tmp_path: Path) -> None:
    conninfo = {"host": "127.0.0.1", "port": int(baseline.env["POSTGRES_PORT"]), "user": USER,
                "password": baseline.env["POSTGRES_PASSWORD"]}
    snapshot = backup.Snapshot({**conninfo, "dbname": NAME})
    try:
        before = recorded(snapshot.conn)
        with baseline.connect() as app:  # the app writes after the state was recorded, before the dump
            app.execute("UPDATE hosts SET hostname = hostname || '-renamed' WHERE id = (SELECT min(id) FROM hosts)")
            app.execute("DELETE FROM scan_results WHERE id = (SELECT max(id) FROM scan_results)")
            live = recorded(app)
        in_snapshot = backup.take(baseline.directory, tmp_path / "postgres", DB, USER, NAME, "snapshot",
                                  restore_into="openwatch_verify_snapshot", snapshot=snapshot)
    finally:
        snapshot.close()
    assert {n for n in live if live[n] != before[n]} == {"hosts", "scan_results"}
    assert in_snapshot.snapshot == snapshot.id and in_snapshot.compression == backup.COMPRESSION
    result = backup.verify(in_snapshot, DB, USER, conninfo, before, full_restore=True)
    assert result["restored"] is True and result["tables_compared"] == len(before) >= 4
    assert "snapshot" in result["compared_with"]

    # The same comparison fails a dump that did not read the recorded snapshot: it holds the write.
    outside = backup.take(baseline.directory, tmp_path / "postgres", DB, USER, NAME, "outside",
                          restore_into="openwatch_verify_outside")
    with pytest.raises(Problem) as differs:
        backup.verify(outside, DB, USER, conninfo, before, full_restore=True)
    assert "differs from the live database in hosts, scan_results;" in str(differs.value)
    with baseline.connect() as conn:  # every scratch database dropped, pass or fail
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'openwatch_%'").fetchall()
