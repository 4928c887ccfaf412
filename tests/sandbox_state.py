"""What the project's tests compare before and after an upgrade run: the installation's state.

Besides the suite's own readings (its table checksums), the state holds the test's own, taken
another way, so a rollback is not judged only by the code under test: the schema as ``pg_dump``
prints it, and every table's rows as one sorted digest. The same readings decide whether a
scenario left the installation at its baseline (:func:`at_rest`), so its reset can be skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from runbook import dbstate, gitrepo, schemas
from runbook.shell import run
from sandbox.installation import APP_SERVICES, CONTAINERS, Installation

SETTLE_DEADLINE_S = 60.0
SETTLE_POLL_S = 1.0
INFRASTRUCTURE = tuple(name for name in CONTAINERS if name not in {f"openwatch-{service}" for service in APP_SERVICES})


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


def containers(install: Installation) -> dict[str, dict]:
    """Each compose service's container: its image id, running, health (None without a check). Not its
    id or start time: a roll-back recreates the containers, on the recorded images."""
    ids = install.compose("ps", "--all", "--quiet").stdout.split()
    inspected = json.loads(run(["docker", "inspect", *ids]).stdout) if ids else []
    return {container["Config"]["Labels"].get("com.docker.compose.service", container["Name"]): {
        "image": container["Image"], "running": container["State"]["Running"],
        "health": (container["State"].get("Health") or {}).get("Status")} for container in inspected}


def settled_containers(install: Installation) -> dict[str, dict]:
    """:func:`containers` once no health check is still ``starting`` (a container just recreated), or at
    the deadline."""
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    found = containers(install)
    while any(state["health"] == "starting" for state in found.values()) and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        found = containers(install)
    return found


def all_up(probe: dict) -> bool:
    """Every container of the probe running, and healthy where it has a health check."""
    return bool(probe["containers"]) and all(state["running"] and state["health"] in (None, "healthy")
                                             for state in probe["containers"].values())


def probe(install: Installation, settled: bool = False) -> dict:
    """Version, health, revisions, every table's rows (the test's own checksums); the checked-out commit
    and the containers' state (``settled``: once their health checks ran)."""
    found_containers = settled_containers(install) if settled else containers(install)
    try:
        health = install.health()
        status = {"code": health.status_code, "status": health.json().get("status")}
    except (OSError, ValueError) as error:
        status = {"code": None, "status": f"unreachable: {type(error).__name__}"}
    with install.connect() as conn:
        found_contents = contents(conn)
        revisions = dbstate.alembic_revisions(conn)
    return {"version": install.version, "health": status, "revisions": sorted(revisions),
            "contents": {name: list(value) for name, value in found_contents.items()},
            "head": install.git("rev-parse", "HEAD").stdout.strip(), "containers": found_containers}


def at_rest(install: Installation) -> dict:
    """What a scenario's reset may be skipped on: :func:`probe` once the health checks ran, the schema
    as pg_dump prints it, every sequence's position (which the rows' checksums do not show), the image
    ids the compose file's image names point at, in the names' order (what the next ``up`` would start),
    and the database and Redis containers' ids. Roll-backs recreate only the app's containers; a
    replaced database or Redis container means the app's clients must reconnect, which the reset's
    restart of the app services gives them."""
    with install.connect() as conn:
        sequences = dict(conn.execute("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences"))
    names = sorted(set(install.compose("config", "--images").stdout.split()))
    tagged = run(["docker", "image", "inspect", "--format", "{{.Id}}", *names], check=False).stdout.split()
    infrastructure = run(["docker", "inspect", "--format", "{{.Name}} {{.Id}}", *INFRASTRUCTURE],
                         check=False).stdout.splitlines()
    return {**probe(install, settled=True), "schema": schema_dump(install), "sequences": sequences,
            "tagged": tagged, "infrastructure": infrastructure}
