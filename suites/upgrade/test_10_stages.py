"""The upgrade's stages in order; each depends on the one before (pytest-dependency), so after a
failure the rest are skipped and the rollback plugin restores the installation."""

from __future__ import annotations

import pytest

from plugins.gate import verify_preflight
from runbook.upgrade import STAGES, Stage, Upgrade


def _params() -> list:
    params, previous = [], None
    for stage in STAGES:
        marks = [pytest.mark.upgrade_stage(stage.name),
                 pytest.mark.dependency(name=stage.name, depends=[previous] if previous else [])]
        params.append(pytest.param(stage, id=stage.name, marks=marks))
        previous = stage.name
    return params


@pytest.mark.parametrize("stage", _params())
def test_stage(stage: Stage, upgrade: Upgrade, request: pytest.FixtureRequest, record_property) -> None:
    if stage.name == "gate":
        verify_preflight(request.config)
    record_property("stage_seconds", round(upgrade.run_stage(stage), 2))
