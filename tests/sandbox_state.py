"""What the project's tests compare before and after an upgrade run: the installation's state."""

from __future__ import annotations

import json

from runbook import dbstate, gitrepo, schemas
from sandbox.installation import Installation


def journal(install: Installation) -> dict:
    """The journal the run left, checked against its published schema."""
    data = json.loads((install.directory / ".openwatch-upgrade" / "journal.json").read_text())
    assert not schemas.problems(schemas.JOURNAL, data), schemas.problems(schemas.JOURNAL, data)
    return data


def snapshot(install: Installation) -> dict:
    """Version, git ref, alembic revision, and every table's row count and checksum."""
    with install.connect() as conn:
        return {"tables": dbstate.table_states(conn), "revisions": dbstate.alembic_revisions(conn),
                "ref": gitrepo.head_ref(install.directory), "version": install.version}
