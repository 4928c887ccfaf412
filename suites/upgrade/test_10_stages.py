"""The upgrade's stages in order (the operation's, from runbook.components: the release upgrade's,
or a component's); each depends on the one before (pytest-dependency), so after a failure the rest
are skipped and the rollback plugin restores the installation. Parametrized by conftest.py."""

from __future__ import annotations

import pytest

from plugins.gate import verify_preflight
from runbook.upgrade import Stage, Upgrade


def test_stage(stage: Stage, upgrade: Upgrade, request: pytest.FixtureRequest, record_property) -> None:
    if stage.name == "gate":
        verify_preflight(request.config)
    record_property("stage_seconds", round(upgrade.run_stage(stage), 2))
