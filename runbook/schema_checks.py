"""The database answers, and its Alembic revision is the single head of the checked-out code."""

from __future__ import annotations

from pathlib import Path

import psycopg

from runbook import alembic_scripts, dbstate
from runbook.errors import Problem

ALEMBIC = "docker compose run --rm backend alembic -c /app/backend/alembic.ini"


def select_one(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT 1").fetchone() != (1,):
        raise Problem("SELECT 1 did not return 1; the database is not answering queries")


def at_code_head(install_dir: Path, conn: psycopg.Connection) -> str:
    known = alembic_scripts.scripts(install_dir)
    code_heads = alembic_scripts.heads(known)
    if len(code_heads) != 1:
        raise Problem(f"the code has {len(code_heads)} Alembic heads ({', '.join(code_heads) or 'none'}); "
                      f"merge them first: `{ALEMBIC} merge heads -m merge`")
    head = code_heads[0]
    revisions = dbstate.alembic_revisions(conn)
    if len(revisions) != 1:
        raise Problem(f"the database is stamped with {len(revisions)} revisions ({', '.join(revisions) or 'none'}); "
                      f"inspect with `{ALEMBIC} current` before upgrading")
    current = revisions[0]
    if current not in known:
        raise Problem(f"the database is at revision {current}, which this code ({head}) does not know: it was "
                      "migrated by another release; check that release out or restore the pre-upgrade backup")
    if current != head:
        raise Problem(f"the database is at {current} but the code's head is {head}: migrations are pending; "
                      f"run `{ALEMBIC} upgrade head` with the current image")
    return head
