"""The backout plan: which rollback would apply if each stage failed, read from the rollback's own
decision, never restated: the release's tier from :func:`runbook.rollback.choose_tier`, a component's
from its rollback module's ``planned``. A change record's backout plan and a dry run (``--plan``)
both print it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runbook.rollback import TIERS, VERIFY_RESTORED, DatabaseFinding, choose_tier
from runbook.upgrade import STAGES, Stage

# What the rollback can find the database to be after a failure, as choose_tier is asked about it.
AS_RECORDED = DatabaseFinding(revisions=[], revision_moved=False, schema_differences=[])
MIGRATED = DatabaseFinding(revisions=[], revision_moved=True, schema_differences=[])
CHANGED_OUTSIDE_ALEMBIC = DatabaseFinding(revisions=[], revision_moved=False, schema_differences=["a schema change"])
NOT_ROLLED_BACK = "not rolled back: the new version is verified; `--resume` completes the run"


@dataclass(frozen=True)
class StageBackout:
    stage: str
    title: str
    tier: str  # the database as recorded
    tier_if_migrated: str  # its Alembic revision moved
    tier_if_schema_changed: str  # its schema differs while the revision did not move
    backup_exists: bool  # the emergency tier (restore the verified backup) is there to escalate to
    rolled_back: bool = True  # False once the new version is verified (runbook.upgrade.Stage)

    def line(self) -> str:
        if not self.rolled_back:
            return f"{self.stage} ({self.title}) fails -> {NOT_ROLLED_BACK}"
        tier = self.tier
        if self.tier_if_migrated != self.tier:
            tier += f", or {self.tier_if_migrated} if the database was migrated"
        if self.tier_if_schema_changed not in (self.tier, self.tier_if_migrated):
            tier += f", or {self.tier_if_schema_changed} if its schema changed outside Alembic"
        escalation = ("escalating to emergency (restore the verified backup) if the result differs from the "
                      "recorded state" if self.backup_exists else "stopping safe if the result differs (no backup yet)")
        return f"{self.stage} ({self.title}) fails -> rollback tier {tier}; {escalation}"

    def to_json(self) -> dict:
        return {"stage": self.stage, "rolled_back": self.rolled_back, "tier": self.tier, "tier_if_migrated": self.tier_if_migrated,
                "tier_if_schema_changed": self.tier_if_schema_changed,
                "escalation": "emergency" if self.backup_exists else "stop safe"}


def plan(stages: Sequence[Stage] = STAGES) -> list[StageBackout]:
    """The release rollback's decision for each of ``stages``: the release upgrade's, or a backend or
    frontend upgrade's (the same names, rolled back by the same tiers)."""
    names = [stage.name for stage in stages]
    # The backup stage records the dump only once it is whole: a failure in it has none to restore.
    backed_up = names.index("backup") + 1
    return [StageBackout(stage.name, stage.title, choose_tier(stage.name, AS_RECORDED), choose_tier(stage.name, MIGRATED),
                         choose_tier(stage.name, CHANGED_OUTSIDE_ALEMBIC), index >= backed_up)
            if stage.rolled_back else StageBackout(stage.name, stage.title, "none", "none", "none", True, False)
            for index, stage in enumerate(stages)]


def tier_actions(tier: str, revision: str) -> list[str]:
    """What ``tier`` does, step by step, as its run prints it (``runbook.rollback.TIERS``)."""
    return [action.title.format(revision=revision) for action in TIERS[tier]] + [VERIFY_RESTORED]


@dataclass(frozen=True)
class Backout:
    """A component's rollback after a failure in one stage: its tier and the steps it runs, in order,
    titled as its run prints them (the journal's and the report's rollback actions)."""
    tier: str
    what: str  # what the tier does, in a few words
    steps: list[str]

    def line(self, stage: Stage) -> str:
        if self.tier == "none":
            return (f"{stage.name} ({stage.title}) fails -> rollback tier none: nothing was changed yet; "
                    "the verification proves it")
        return (f"{stage.name} ({stage.title}) fails -> rollback tier {self.tier}: {self.what}; the first step that "
                "fails leaves it stopped safe, with the steps to finish by hand")


def nothing_changed(revision: str) -> Backout:
    """The tier a component's rollback runs when the failure came before its first change."""
    return Backout("none", "nothing was changed yet", tier_actions("none", revision))
