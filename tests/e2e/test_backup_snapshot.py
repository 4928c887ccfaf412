"""The backup is verified against the live database at the moment of the dump: the recorded state and
the dump share one exported snapshot, so a write the app commits in between is in neither."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runbook import backup, dbstate
from runbook.errors import Problem
from sandbox.installation import Installation

DB, USER, NAME = "openwatch-db", "openwatch", "openwatch"


def recorded(conn, kind: str = dbstate.CURRENT_CHECKSUM) -> dict[str, dict]:
    return dbstate.as_json(dbstate.table_states(conn, kind=kind))


def test_a_write_between_recording_and_dumping_is_in_neither(baseline: Installation, tmp_path: Path) -> None:
    conninfo = {"host": "127.0.0.1", "port": int(baseline.env["POSTGRES_PORT"]), "user": USER,
                "password": baseline.env["POSTGRES_PASSWORD"]}
    snapshot = backup.Snapshot({**conninfo, "dbname": NAME})
    try:
        before = recorded(snapshot.conn)
        before_md5 = recorded(snapshot.conn, dbstate.LEGACY_CHECKSUM)  # as a suite before the h64 kind recorded it
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
    # The state an older suite recorded (md5 checksums) is compared with md5 checksums of a scratch restore
    # (this one restored from the file, the streamed scratch being gone).
    from_file = dataclasses.replace(in_snapshot, scratch_db=None)
    assert backup.verify(from_file, DB, USER, conninfo, before_md5, full_restore=True)["restored"] is True
    # Read over two connections, the scratch's checksums are the same.
    assert backup.verify(from_file, DB, USER, conninfo, before, full_restore=True, connections=2)["restored"] is True

    # The same comparison fails a dump that did not read the recorded snapshot: it holds the write.
    outside = backup.take(baseline.directory, tmp_path / "postgres", DB, USER, NAME, "outside",
                          restore_into="openwatch_verify_outside")
    with pytest.raises(Problem) as differs:
        backup.verify(outside, DB, USER, conninfo, before, full_restore=True)
    assert "differs from the live database in hosts, scan_results;" in str(differs.value)
    for kind, state in ((dbstate.LEGACY_CHECKSUM, before_md5), (dbstate.CURRENT_CHECKSUM, before)):
        with pytest.raises(Problem, match="differs from the live database in hosts, scan_results;"):
            backup.verify(dataclasses.replace(outside, scratch_db=None), DB, USER, conninfo, state, full_restore=True,
                          connections=2 if kind == dbstate.CURRENT_CHECKSUM else 1)
    with baseline.connect() as conn:  # every scratch database dropped, pass or fail
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'openwatch_%'").fetchall()
