"""Installation metadata for every report (pytest-html's Environment table via pytest-metadata)."""

from __future__ import annotations

import socket

import psycopg
import pytest
from pytest_metadata.plugin import metadata_key

from plugins.options import OPTIONS_KEY, PROFILE_KEY
from runbook import dbstate, gitrepo
from runbook.profile import Profile
from runbook.shell import CommandError


def _revision(profile: Profile) -> str:
    try:
        with psycopg.connect(**profile.db_conninfo(), connect_timeout=3) as conn:
            return ", ".join(dbstate.alembic_revisions(conn)) or "none"
    except psycopg.Error:
        return "unavailable (database not reachable)"


def _git_ref(profile: Profile) -> str:
    try:
        return gitrepo.head_ref(profile.install_dir)
    except CommandError:
        return "unavailable (not a git checkout)"


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    profile = config.stash.get(PROFILE_KEY, None)
    if profile is None:
        return
    options = config.stash[OPTIONS_KEY]
    metadata = config.stash.setdefault(metadata_key, {})
    metadata.update({
        "OpenWatch version": profile.version,
        "Alembic revision": _revision(profile),
        "Git ref": _git_ref(profile),
        "Install dir": str(profile.install_dir),
        "Compose project": profile.project,
        "Target": (f"{options.resolved_target.label}, a {options.resolved_target.kind}" if options.resolved_target
                   else options.target or "-"),
        "Ticket": options.ticket or "-",
        "Host": socket.gethostname(),
    })
