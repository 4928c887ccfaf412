"""``--plan``: what the upgrade to ``--target`` would do, and how each step would be undone, changing
nothing (collected only with that option; no lock, journal, backup or container is touched)."""

from __future__ import annotations

import json

import pytest

from plugins.gate import PLAN_KEY
from plugins.keys import DRY_RUN_KEY
from runbook import dbstate, dry_run, gitrepo
from suites.preflight import test_preflight


def test_plan(request: pytest.FixtureRequest, profile, options, db, record_property) -> None:
    checks = [(name, dry_run.first_line(getattr(test_preflight, name).__doc__) or name[5:].replace("_", " "))
              for name in request.config.stash[PLAN_KEY].preflight_checks]
    target = options.resolved_target
    installed_commit = gitrepo.git(profile.install_dir, "rev-parse", "HEAD").strip()
    plan = dry_run.build(str(profile.install_dir), f"{profile.version} ({installed_commit[:12]})",
                         f"{target.name} ({target.kind} {target.commit[:12]})",
                         ", ".join(dbstate.alembic_revisions(db)) or "none", checks)
    request.config.stash[DRY_RUN_KEY] = plan
    record_property("plan", json.dumps(plan.to_json()))
    request.node.add_report_section("call", "plan", "\n".join(plan.lines()))
