"""Backup and restore work on the database ``POSTGRES_DB`` names, every SQL identifier quoted."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from runbook import backup, backup_checks
from runbook.errors import Problem
from runbook.profile import Profile, Service
from runbook.redaction import Redactor

DATABASE = 'ow "prod"'  # a space and a double quote: read as one name only when quoted


class FakePgDump:
    """``subprocess.Popen`` for ``pg_dump``: records its argv and streams a few bytes."""

    argv: list[str] = []

    def __init__(self, argv: list[str], **_: object) -> None:
        FakePgDump.argv = argv
        self.stdout, self.stderr, self.returncode = io.BytesIO(b"PGDMP..."), io.BytesIO(b""), 0

    def __enter__(self) -> FakePgDump:
        return self

    def __exit__(self, *_: object) -> None:
        """Nothing to wait for."""


def test_dump_reads_the_configured_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup.subprocess, "Popen", FakePgDump)
    backup.dump_database("openwatch-db", "ow", DATABASE, tmp_path / "x.dump")
    assert FakePgDump.argv[FakePgDump.argv.index("-d") + 1] == DATABASE


def test_dump_reads_the_given_snapshot_at_the_chosen_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup.subprocess, "Popen", FakePgDump)
    backup.dump_database("openwatch-db", "ow", DATABASE, tmp_path / "x.dump", snapshot="00000003-0000001B-1")
    argv = FakePgDump.argv
    assert argv[argv.index("--snapshot") + 1] == "00000003-0000001B-1" and argv[argv.index("-Z") + 1] == "1"
    backup.dump_database("openwatch-db", "ow", DATABASE, tmp_path / "y.dump", compression=None)
    assert "-Z" not in FakePgDump.argv and "--snapshot" not in FakePgDump.argv  # pg_dump's defaults


def test_restore_swaps_the_configured_database_with_quoted_identifiers(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    monkeypatch.setattr(backup, "psql", lambda container, user, sql: statements.append(sql))
    monkeypatch.setattr(backup, "_pg_restore", lambda *args: subprocess.CompletedProcess(
        args, 0, b"; TABLE DATA public hosts\n", b""))
    backup.restore(tmp_path / "x.dump", "openwatch-db", "o'wner", DATABASE)
    sql = "\n".join(statements)
    live = '"ow ""prod"""'
    assert f"ALTER DATABASE {live} WITH ALLOW_CONNECTIONS false" in sql
    assert "WHERE datname = 'ow \"prod\"'" in sql
    assert f"ALTER DATABASE {live} RENAME TO \"openwatch_replaced_" in sql and f"RENAME TO {live}" in sql
    assert 'OWNER "o\'wner"' in sql
    assert "DATABASE openwatch" not in sql and "'openwatch'" not in sql


def test_identifiers_and_literals_are_quoted_by_doubling() -> None:
    assert backup.identifier('a"b') == '"a""b"' and backup.literal("a'b") == "'a''b'"


def test_missing_backup_hint_names_the_configured_database(tmp_path: Path) -> None:
    profile = Profile(tmp_path, {"POSTGRES_DB": "ow prod", "POSTGRES_USER": "ow"}, "0.1.0", "openwatch", (),
                      {"database": Service("database", "ow-db", True)}, Redactor())
    with pytest.raises(Problem) as refused:
        backup_checks.newest_recent(tmp_path, 24, profile)
    assert "`docker exec ow-db pg_dump -U ow -d 'ow prod' -Fc > <file>.dump`" in str(refused.value)
