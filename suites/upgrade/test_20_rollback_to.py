"""``--rollback-to TAG``: undo the last finished upgrade in a run of its own (collected only then).

Downgrades with the installed (new) image, then the recorded ref and images. Data written since
the upgrade is kept; a failed downgrade stops safely with the manual restore steps, never an
automatic restore of the pre-upgrade backup (that would lose those writes).
"""

from __future__ import annotations

from runbook.errors import Problem
from runbook.rollback import Rollback
from runbook.upgrade import Upgrade


def test_rollback_to_recorded_release(upgrade: Upgrade, record_property) -> None:
    upgrade.lock.acquire(upgrade.settings.ticket)
    result = Rollback(upgrade).run_tier("full", compare_data=False)
    record_property("rollback_seconds", result.seconds)
    if not result.ok:
        raise Problem(f"rollback to {upgrade.before.git_ref} failed: {result.problem}; "
                      f"manual steps: {' && '.join(result.manual_steps)}")
