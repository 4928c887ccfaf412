"""The upgrade run: one :class:`Upgrade` for the session, known to the rollback plugin."""

from __future__ import annotations

import pytest

from plugins.keys import UPGRADE_KEY
from runbook.journal import Journal
from runbook.upgrade import Settings, Upgrade


@pytest.fixture(scope="session")
def upgrade(pytestconfig: pytest.Config, profile, options, docker_client) -> Upgrade:
    if not options.target:
        pytest.fail("pass --target vX.Y.Z: the release to upgrade to", pytrace=False)
    settings = Settings(target=options.target, ticket=options.ticket, backup_dir=options.backup_dir,
                        base_url=options.base_url, frontend_url=options.frontend_url,
                        retention_days=options.backup_retention_days)
    run = Upgrade(profile, docker_client, settings, Journal.start(profile.install_dir, options.target, options.ticket))
    pytestconfig.stash[UPGRADE_KEY] = run
    return run
