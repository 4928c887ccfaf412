"""A throwaway PostgreSQL cluster for unit tests that need a real catalog but no containers.

It uses the machine's own PostgreSQL server binaries (Debian's ``postgresql-15`` puts them in
``/usr/lib/postgresql/<major>/bin``); without them the tests that need it skip, saying so. The
cluster listens on a Unix socket in its temporary folder only (no TCP port), runs with fsync off,
and is stopped and deleted when the test session ends. initdb refuses to run as root, so as root
the cluster runs as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

SEARCHED = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def server_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    return next((folder for folder in SEARCHED if (folder / "initdb").exists() and (folder / "pg_ctl").exists()),
                None)


@contextmanager
def cluster() -> Iterator[str]:
    """A running cluster; yields the conninfo of its ``postgres`` database (superuser ``postgres``)."""
    binaries = server_bin()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    folder = Path(tempfile.mkdtemp(prefix="openwatch-pg-"))
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "nobody")
    data = folder / "data"
    pg_ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses='' -c unix_socket_directories={folder} -c fsync=off"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90)
        try:
            yield psycopg.conninfo.make_conninfo(host=str(folder), user="postgres", dbname="postgres")
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "-t", "60", "stop"], capture_output=True, timeout=90)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_database(conninfo: str, name: str) -> Iterator[str]:
    """A fresh database in the cluster, dropped afterwards; yields its conninfo."""
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(conninfo, dbname=name)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
