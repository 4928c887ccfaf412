"""The upgrade run: one :class:`Upgrade` for the session, known to the rollback plugin."""

from __future__ import annotations

import pytest

from plugins.keys import UPGRADE_KEY
from runbook import rollback
from runbook.journal import Journal
from runbook.upgrade import Settings, Upgrade


@pytest.fixture(scope="session")
def upgrade(pytestconfig: pytest.Config, profile, options, docker_client) -> Upgrade:
    rollback_to = pytestconfig.getoption("rollback_to")
    settings = Settings(target=options.target or rollback_to, ticket=options.ticket, backup_dir=options.backup_dir,
                        base_url=options.base_url, frontend_url=options.frontend_url,
                        retention_days=options.backup_retention_days)
    if rollback_to:  # the journal was validated at collection (plugins/rollback.py)
        run = rollback.from_journal(profile, docker_client, settings, rollback_to)
    else:
        run = Upgrade(profile, docker_client, settings,
                      Journal.start(profile.install_dir, options.target, options.ticket))
    pytestconfig.stash[UPGRADE_KEY] = run
    return run
