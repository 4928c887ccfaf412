"""The installation's recorded state: what the rollback must restore and the checks compare."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import docker
import docker.errors
import psycopg

from runbook import dbstate, gitrepo, schema_fingerprint
from runbook.profile import Profile


@dataclass
class InstallState:
    version: str
    git_ref: str
    git_commit: str
    revision: str | None
    image_ids: dict[str, str]  # service -> image id of its container
    containers: dict[str, str]  # service -> container name
    tables: dict[str, dict] = field(default_factory=dict)  # table -> {"rows", "checksum"}
    # schema_fingerprint.Fingerprint.to_json(); empty in a journal written before it was recorded
    schema: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> InstallState:
        return cls(**data)


def capture(profile: Profile, client: docker.DockerClient, conn: psycopg.Connection,
            checksum: str = dbstate.CURRENT_CHECKSUM) -> InstallState:
    """The state as it is; ``checksum``: the kind of table checksum (a recorded state's, to compare with it)."""
    images = {}
    for service, spec in profile.services.items():
        try:
            images[service] = client.containers.get(spec.container).image.id
        except docker.errors.NotFound:
            continue
    revisions = dbstate.alembic_revisions(conn)
    return InstallState(
        version=profile.version,
        git_ref=gitrepo.head_ref(profile.install_dir),
        git_commit=gitrepo.git(profile.install_dir, "rev-parse", "HEAD").strip(),
        revision=revisions[0] if len(revisions) == 1 else None,
        image_ids=images,
        containers={service: spec.container for service, spec in profile.services.items()},
        tables=dbstate.as_json(dbstate.table_states(conn, kind=checksum)),
        schema=schema_fingerprint.capture(conn).to_json(),
    )


def data_differences(before: InstallState, after: InstallState) -> list[str]:
    """Tables whose rows or checksums differ: empty when the data is exactly as recorded."""
    names = sorted(set(before.tables) | set(after.tables))
    return [name for name in names if before.tables.get(name) != after.tables.get(name)]


def schema_differences(before: InstallState, after: InstallState) -> list[str]:
    """What about the schema differs from the recorded one, one line each: empty when it is exactly
    as recorded (or when nothing was recorded to compare with)."""
    if not before.schema:
        return []
    return schema_fingerprint.differences(schema_fingerprint.Fingerprint.from_json(before.schema),
                                          schema_fingerprint.Fingerprint.from_json(after.schema))


def rows_preserved(before: InstallState, after: InstallState) -> list[str]:
    """After a migration: every table kept its row count; a table that vanished was renamed
    (another new table has exactly its rows). Returns what does not add up."""
    problems = []
    new_tables = {name: info["rows"] for name, info in after.tables.items() if name not in before.tables}
    for name, info in before.tables.items():
        if name in after.tables:
            if after.tables[name]["rows"] != info["rows"]:
                problems.append(f"{name}: {info['rows']} rows before, {after.tables[name]['rows']} after")
        else:
            match = next((new for new, rows in new_tables.items() if rows == info["rows"]), None)
            if match is None:
                problems.append(f"{name} ({info['rows']} rows) is gone and no new table holds its rows")
            else:
                new_tables.pop(match)
    return problems
