"""What the project's tests compare before and after an upgrade run: the installation's state.

Besides the suite's own readings (its table checksums), the state holds the test's own, taken
another way, so a rollback is not judged only by the code under test: the schema as ``pg_dump``
prints it, and every table's rows as one sorted digest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from runbook import dbstate, gitrepo, schemas
from sandbox.installation import Installation


def forget_runs(directory: Path) -> None:
    """No journal or lock of an earlier run: what a scenario's reset does first, and all an
    installation already at its baseline needs."""
    shutil.rmtree(directory / ".openwatch-upgrade", ignore_errors=True)
    (directory / ".openwatch-upgrade.lock").unlink(missing_ok=True)


def journal(install: Installation) -> dict:
    """The journal the run left, checked against its published schema."""
    data = json.loads((install.directory / ".openwatch-upgrade" / "journal.json").read_text())
    assert not schemas.problems(schemas.JOURNAL, data), schemas.problems(schemas.JOURNAL, data)
    return data


def schema_dump(install: Installation) -> list[str]:
    """``pg_dump --schema-only`` of the database, without its comments and its per-dump random
    ``\\restrict`` key: equal text means every type, table, column, default, index, constraint,
    sequence definition, view, function and trigger is the same."""
    dump = subprocess.run(["docker", "exec", "openwatch-db", "pg_dump", "-U", "openwatch", "-d", "openwatch",
                           "--schema-only", "--no-owner", "--no-privileges"],
                          capture_output=True, text=True, check=True, timeout=120).stdout
    return [line for line in dump.splitlines()
            if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))]


def contents(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Every table's row count and the md5 of its rows' text, sorted."""
    tables = [name for (name,) in conn.execute(
        "SELECT schemaname || '.' || tablename FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
    found = {}
    for name in tables:
        schema, table = name.split(".", 1)
        query = sql.SQL("SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
                        "FROM {}.{} AS t").format(sql.Identifier(schema), sql.Identifier(table))
        found[name] = tuple(conn.execute(query).fetchone())
    return found


def snapshot(install: Installation) -> dict:
    """Version, git ref, alembic revision, every table's rows and checksum (the suite's and the
    test's own), and the schema as pg_dump prints it."""
    with install.connect() as conn:
        return {"tables": dbstate.table_states(conn), "contents": contents(conn),
                "revisions": dbstate.alembic_revisions(conn), "schema": schema_dump(install),
                "ref": gitrepo.head_ref(install.directory), "version": install.version}


def engine_and_files(install: Installation) -> dict:
    """What a run that changes nothing (``--plan``) must leave as it found it, besides the data: every
    container of the engine (id, image, start time: a restart or a recreation changes them, a
    throwaway container would add one), the engine's volumes, and the installation's files (path,
    mode and size; ``.git`` aside, whose objects resolving a target may fetch), the journal folder and
    the lock among them."""
    ids = subprocess.run(["docker", "ps", "--all", "--quiet", "--no-trunc"], capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    containers = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.Name}} {{.Config.Image}} {{.State.StartedAt}}",
                                 *ids], capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    volumes = subprocess.run(["docker", "volume", "ls", "--quiet"], capture_output=True, text=True, check=True,
                             timeout=60).stdout.split()
    files = {str(path.relative_to(install.directory)): (path.stat().st_mode, path.stat().st_size if path.is_file() else 0)
             for path in install.directory.rglob("*")
             if ".git" not in path.relative_to(install.directory).parts[:1] and not path.is_symlink()}
    return {"containers": sorted(containers), "volumes": sorted(volumes), "files": files}
