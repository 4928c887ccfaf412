"""``--plan``: what the upgrade to ``--target``, or the ``--component`` upgrade, would do, and how each
step would be undone, changing nothing (collected only with that option; no lock, journal, backup or
container is touched)."""

from __future__ import annotations

import json

import pytest

from plugins.components import RULES_TARGET_KEY
from plugins.gate import PLAN_KEY
from plugins.keys import DRY_RUN_KEY
from runbook import dbstate, dry_run
from suites.preflight import test_preflight


def test_plan(request: pytest.FixtureRequest, profile, options, db, docker_client, record_property) -> None:
    config = request.config
    checks = [(name, dry_run.first_line(getattr(test_preflight, name).__doc__) or name[5:].replace("_", " "))
              for name in config.stash[PLAN_KEY].preflight_checks]
    component = config.getoption("component")
    installed, target = dry_run.endpoints(component, profile, docker_client, db,
                                          options.resolved_target or config.stash.get(RULES_TARGET_KEY, None),
                                          config.getoption("image"))
    plan = dry_run.build(str(profile.install_dir), installed, target, ", ".join(dbstate.alembic_revisions(db)) or "none",
                         checks, component)
    config.stash[DRY_RUN_KEY] = plan
    record_property("plan", json.dumps(plan.to_json()))
    request.node.add_report_section("call", "plan", "\n".join(plan.lines()))
