"""``--plan`` with ``--component``: each operation's plan is built from the stage table its run executes
and from the steps its own rollback runs (the same titles, read from the same tables), so the plan
cannot list a stage or a rollback step the run does not have."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runbook import (aegis_rules, backout, components, dry_run, pg_major_rollback, redis_image_rollback, report_html,
                     rollback)
from runbook.pg_major_rollback import PgMajorRollback
from runbook.redis_image_rollback import RedisRollback

REVISION = "0002_scan_indexes"


def plan_of(component: str | None) -> dry_run.Plan:
    return dry_run.build("/opt/openwatch", "from", "to", REVISION, [("test_backend_reports_healthy", "healthy")],
                         component)


def by_name(plan: dry_run.Plan) -> dict[str, dry_run.PlannedStage]:
    return {stage.name: stage for stage in plan.stages}


@pytest.mark.parametrize("component", [None, *components.COMPONENTS])
def test_every_operation_plans_the_stages_its_run_executes(component: str | None) -> None:
    stages = components.stages_for(component)
    plan = plan_of(component)
    assert [(s.name, s.title, s.effect) for s in plan.stages] == [(s.name, s.title, s.effect) for s in stages]
    assert all(s.effect for s in plan.stages)
    for planned, stage in zip(plan.stages, stages):
        assert planned.backout.startswith(f"{stage.name} ({stage.title}) fails -> ")
        if stage.rolled_back:
            assert planned.undo and planned.undo[-1] in (rollback.VERIFY_RESTORED, "database, backend and frontend not "
                                                                                   "restarted"), planned
        else:
            assert planned.undo == [] and backout.NOT_ROLLED_BACK in planned.backout


def captured_steps(rollback_class: type, upgrade: SimpleNamespace, go_back=lambda r: r.go_back()) -> list[str]:
    """The step titles a component rollback's own ``go_back`` hands to ``go_back_by`` (nothing runs)."""
    found: list[str] = []
    instance = rollback_class.__new__(rollback_class)
    instance.upgrade = upgrade
    instance.go_back_by = lambda tier, what, steps: found.extend(title for title, _ in steps)
    go_back(instance)
    return found


def test_postgres_plan_is_the_old_volume_rollback_from_the_stop_on() -> None:
    plan = by_name(plan_of("postgres"))
    none = backout.tier_actions("none", REVISION)
    assert [name for name, stage in plan.items() if stage.undo == none] == ["gate", "lock_and_record", "check_new_image"]
    assert "rollback tier none: nothing was changed yet" in plan["check_new_image"].backout
    assert "rollback tier old-volume" in plan["drain_and_stop"].backout
    # The run's own go_back, asked for its steps: the plan lists exactly those, in order.
    never_ran_on_new = captured_steps(PgMajorRollback, SimpleNamespace(app_started_on_new=False),
                                      lambda r: r.go_back(compare_data=True))
    ran_on_new = captured_steps(PgMajorRollback, SimpleNamespace(app_started_on_new=True),
                                lambda r: r.go_back(compare_data=True))
    assert plan["restore"].undo == plan["compare"].undo == never_ran_on_new
    assert plan["switch"].undo == plan["verify"].undo == ran_on_new
    assert pg_major_rollback.REMOVE_NEW_VOLUME in never_ran_on_new and pg_major_rollback.REMOVE_NEW_VOLUME not in ran_on_new
    assert never_ran_on_new[:3] == ["stop the app containers", "point the installation back at the old image and volume",
                                    "start the old PostgreSQL on the old volume"]


def redis_upgrade(backed_up: bool, recorded: bool) -> SimpleNamespace:
    return SimpleNamespace(journal=SimpleNamespace(data={"redis": {"backup": {"path": "x"} if backed_up else None}}),
                           redis_at_stop=object() if recorded else None)


def test_redis_plan_puts_data_back_only_once_copied_and_compares_only_what_was_recorded() -> None:
    plan = by_name(plan_of("redis"))
    assert [name for name, stage in plan.items() if "tier none" in stage.backout] == \
        ["gate", "lock_and_record", "check_new_image"]
    assert plan["pause_workers"].undo == captured_steps(RedisRollback, redis_upgrade(False, False))
    assert plan["backup"].undo == captured_steps(RedisRollback, redis_upgrade(False, True))
    assert plan["start_new"].undo == plan["verify"].undo == captured_steps(RedisRollback, redis_upgrade(True, True))
    assert redis_image_rollback.RESTORE_DATA in plan["verify_backup"].undo
    assert redis_image_rollback.RESTORE_DATA not in plan["backup"].undo  # a failed copy is recorded nowhere
    # In record_and_stop the state is recorded once writes are paused: the plan says the comparison depends on it.
    assert redis_image_rollback.COMPARE_REDIS + redis_image_rollback.IF_RECORDED in plan["record_and_stop"].undo
    assert "rollback tier old-image: the old image on the same volume" in plan["compare"].backout


def test_aegis_plan_is_its_rollback_actions() -> None:
    plan = by_name(plan_of("aegis"))
    for stage in aegis_rules.STAGES[:-1]:
        assert plan[stage.name].undo == (aegis_rules.rollback_actions(stage.name)
                                         or backout.tier_actions("none", REVISION))
    assert "rollback tier rules" in plan["build"].backout and "not rolled back" in plan["finish"].backout


@pytest.mark.parametrize("component", ["backend", "frontend"])
def test_backend_and_frontend_plans_are_the_release_tiers_with_their_own_effects(component: str) -> None:
    plan, release = by_name(plan_of(component)), by_name(plan_of(None))
    assert {name: stage.undo for name, stage in plan.items()} == {name: stage.undo for name, stage in release.items()}
    assert plan["start"].effect.startswith("starts the component's services with compose up --no-deps")
    assert plan["build"].effect != release["build"].effect


def test_component_plan_text_and_report_name_the_operation() -> None:
    plan = dry_run.build("/opt/openwatch", "PostgreSQL 15.14 (openwatch-sandbox/postgres:15)",
                         "openwatch-sandbox/postgres:17", REVISION, [("test_backend_reports_healthy", "healthy")],
                         "postgres")
    text = "\n".join(plan.lines())
    assert text.startswith("PLAN (nothing was changed): upgrade the postgres component of /opt/openwatch from "
                           "PostgreSQL 15.14 (openwatch-sandbox/postgres:15) to openwatch-sandbox/postgres:17\n")
    assert "   6. start_new: new version started on a new volume, the old one kept\n" in text
    assert ("      if it fails: rollback tier old-volume: the old image on the old volume, which the upgrade never "
            "wrote to;") in text
    assert plan.to_json()["component"] == "postgres" and len(plan.to_json()["stages"]) == len(plan.stages)
    html = report_html.plan_table(plan.to_json())
    assert html.count("<tr><td>") == len(plan.stages) and pg_major_rollback.REMOVE_NEW_VOLUME in html


@pytest.mark.parametrize("component", [None, *components.COMPONENTS])
def test_only_the_finish_after_a_verified_version_is_not_rolled_back(component: str | None) -> None:
    """As --resume completes a run that verified the new version, a failure in its finish is not undone."""
    assert [stage.name for stage in components.stages_for(component) if not stage.rolled_back] == ["finish"]

