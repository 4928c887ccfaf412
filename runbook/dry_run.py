"""``--plan``: what an upgrade to the target would do, read from the same data the upgrade and the
rollback run on (``runbook.upgrade.STAGES``, ``runbook.backout``, ``runbook.rollback.TIERS``), so
the plan cannot say one thing while the run does another. Building it changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from runbook import backout
from runbook.upgrade import STAGES


@dataclass(frozen=True)
class PlannedStage:
    name: str
    title: str
    effect: str  # what it changes
    backout: str  # the rollback that applies if it failed here, in one line
    undo: list[str]  # that tier's actions, in order

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "changes": self.effect, "if_it_fails": self.backout,
                "rollback_actions": self.undo}


@dataclass(frozen=True)
class Plan:
    install_dir: str
    installed: str  # version and commit
    target: str  # name, kind and commit
    revision: str  # the Alembic revision a rollback would return to
    checks: list[tuple[str, str]]  # pre-flight check name, what it checks
    stages: list[PlannedStage]

    def lines(self) -> list[str]:
        out = [f"PLAN (nothing was changed): upgrade {self.install_dir} from {self.installed} to {self.target}",
               f"pre-flight checks ({len(self.checks)}), each must pass before anything changes:"]
        out += [f"  - {name}: {what}" if what else f"  - {name}" for name, what in self.checks]
        out.append(f"stages ({len(self.stages)}), in order; after a failure the rest are skipped:")
        for index, stage in enumerate(self.stages, 1):
            out.append(f"  {index:2}. {stage.name}: {stage.title}")
            out.append(f"      changes: {stage.effect}")
            out.append(f"      if it fails: {stage.backout.split(' fails -> ', 1)[-1]}")
            if stage.undo:
                out.append(f"      rollback actions: {'; '.join(stage.undo)}")
        return out

    def to_json(self) -> dict:
        return {"install_dir": self.install_dir, "installed": self.installed, "target": self.target,
                "revision": self.revision, "checks": [{"name": name, "checks": what} for name, what in self.checks],
                "stages": [stage.to_json() for stage in self.stages]}


def build(install_dir: str, installed: str, target: str, revision: str, checks: list[tuple[str, str]]) -> Plan:
    """The plan; ``revision`` is the database's now, which the rollback's downgrade would return to."""
    by_stage = {step.stage: step for step in backout.plan()}
    stages = []
    for stage in STAGES:
        step = by_stage[stage.name]
        undo = backout.tier_actions(step.tier, revision) if step.rolled_back else []
        stages.append(PlannedStage(stage.name, stage.title, stage.effect, step.line(), undo))
    return Plan(install_dir, installed, target, revision, checks, stages)


def first_line(doc: str | None) -> str:
    """A check's docstring, first sentence line, for the plan's list."""
    return next((line.strip() for line in (doc or "").splitlines() if line.strip()), "")
