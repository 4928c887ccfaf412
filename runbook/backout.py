"""The backout plan: which rollback tier would apply if each stage failed, read from the rollback's
own decision (:func:`runbook.rollback.choose_tier`), never restated. A change record's backout plan
and a dry run (``--plan``) both print it."""

from __future__ import annotations

from dataclasses import dataclass

from runbook.rollback import choose_tier
from runbook.upgrade import STAGES


@dataclass(frozen=True)
class StageBackout:
    stage: str
    title: str
    tier: str  # when the database is still at the recorded revision
    tier_if_migrated: str  # when it is not (the migration committed)
    backup_exists: bool  # the emergency tier (restore the verified backup) is there to escalate to

    def line(self) -> str:
        tier = self.tier if self.tier == self.tier_if_migrated else f"{self.tier}, or {self.tier_if_migrated} if the " \
                                                                     "database was migrated"
        escalation = ("escalating to emergency (restore the verified backup) if the result differs from the "
                      "recorded state" if self.backup_exists else "stopping safe if the result differs (no backup yet)")
        return f"{self.stage} ({self.title}) fails -> rollback tier {tier}; {escalation}"

    def to_json(self) -> dict:
        return {"stage": self.stage, "tier": self.tier, "tier_if_migrated": self.tier_if_migrated,
                "escalation": "emergency" if self.backup_exists else "stop safe"}


def plan() -> list[StageBackout]:
    names = [stage.name for stage in STAGES]
    # The backup stage records the dump only once it is whole: a failure in it has none to restore.
    backed_up = names.index("backup") + 1
    steps = []
    for index, stage in enumerate(STAGES):
        steps.append(StageBackout(stage.name, stage.title, choose_tier(stage.name, database_changed=False),
                                  choose_tier(stage.name, database_changed=True), index >= backed_up))
    return steps
