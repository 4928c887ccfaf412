"""What the project's tests compare before and after an upgrade run: the installation's state."""

from __future__ import annotations

import json

from runbook import dbstate, gitrepo
from sandbox.installation import Installation


def journal(install: Installation) -> dict:
    return json.loads((install.directory / ".openwatch-upgrade" / "journal.json").read_text())


def snapshot(install: Installation) -> dict:
    """Version, git ref, alembic revision, and every table's row count and checksum."""
    with install.connect() as conn:
        return {"tables": dbstate.table_states(conn), "revisions": dbstate.alembic_revisions(conn),
                "ref": gitrepo.head_ref(install.directory), "version": install.version}
