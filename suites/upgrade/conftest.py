"""The upgrade run: what the suite consists of (for plugins/gate.py), and one :class:`Upgrade` for
the session, known to the rollback plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.components import RULES_TARGET_KEY
from plugins.gate import PLAN_KEY, SuitePlan
from plugins.keys import UPGRADE_KEY
from plugins.runmode import RESUME, ROLLBACK_TO, mode_of
from runbook import components, resume, rollback_to
from runbook.journal import Journal
from runbook.upgrade import Settings, Upgrade
from suites.preflight import test_preflight


def pytest_configure(config: pytest.Config) -> None:
    config.stash[PLAN_KEY] = SuitePlan(
        directory=Path(__file__).parent,
        # test_00_preflight_gate.py re-uses every one of them; test_10_stages.py ids each stage by its name.
        preflight_checks=tuple(name for name, check in vars(test_preflight).items()
                               if name.startswith("test_") and callable(check)),
        stages=tuple(f"test_stage[{stage.name}]" for stage in components.stages_for(config.getoption("component"))),
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """test_10_stages.py's one test, once per stage of the operation asked for (--target or --component)."""
    if "stage" in metafunc.fixturenames:
        stages = components.stages_for(metafunc.config.getoption("component"))
        params, previous = [], None
        for stage in stages:
            marks = [pytest.mark.upgrade_stage(stage.name),
                     pytest.mark.dependency(name=stage.name, depends=[previous] if previous else [])]
            params.append(pytest.param(stage, id=stage.name, marks=marks))
            previous = stage.name
        metafunc.parametrize("stage", params)


@pytest.fixture(scope="session")
def upgrade(pytestconfig: pytest.Config, profile, options, docker_client) -> Upgrade:
    mode = mode_of(pytestconfig)
    unfinished = resume.unfinished_run(profile.install_dir) if mode.name == RESUME else None
    recorded = unfinished.data if unfinished else {}
    settings = Settings(target=options.resolved_target or pytestconfig.stash.get(RULES_TARGET_KEY, None),
                        ticket=options.ticket or recorded.get("ticket"), backup_dir=options.backup_dir,
                        base_url=options.base_url, frontend_url=options.frontend_url,
                        retention_days=options.backup_retention_days)
    # The journal of a --rollback-to or --resume run was validated at collection (plugins/runmode.py).
    if pytestconfig.getoption("component"):
        run = components.operation(pytestconfig.getoption("component"), pytestconfig.getoption("image"),
                                   pytestconfig.getoption("pg_rollback"),
                                   pytestconfig.getoption("pg_rollback_discarding_writes"), profile, docker_client,
                                   settings)
    elif mode.name == ROLLBACK_TO:
        run = rollback_to.from_journal(profile, docker_client, settings, mode.rollback_to)
    elif unfinished:
        run = resume.from_unfinished(profile, docker_client, settings, unfinished)
    else:
        target = options.resolved_target
        run = Upgrade(profile, docker_client, settings,
                      Journal.start(profile.install_dir, target.name, options.ticket, target.commit, target.kind))
    pytestconfig.stash[UPGRADE_KEY] = run
    return run
