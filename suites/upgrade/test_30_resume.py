"""``--resume``: settle a run that died without finishing (collected only with that option).

A run that had verified the new version is completed; any other is rolled back with the tier its
last stage needs, compared table by table with the recorded state, escalating to the verified
backup when that comparison fails.
"""

from __future__ import annotations

from runbook import resume
from runbook.errors import Problem
from runbook.upgrade import Upgrade


def test_resume_unfinished_run(upgrade: Upgrade, record_property) -> None:
    stage = upgrade.journal.last_stage()
    record_property("resumed_stage", stage)
    result = resume.settle(upgrade)
    if result is None:
        record_property("resume_outcome", "completed")
        return
    record_property("rollback_tier", result.tier)
    record_property("rollback_seconds", result.seconds)
    if not result.ok:
        raise Problem(f"rolling back the run that died in stage {stage} failed: {result.problem}; "
                      f"manual steps: {' && '.join(result.manual_steps)}")
