"""``--component postgres --pg-rollback``: back to the old image on the old volume the last finished
PostgreSQL major upgrade kept (collected only with that option)."""

from __future__ import annotations

from runbook.errors import Problem
from runbook.pg_major import PgMajorUpgrade


def test_pg_rollback_to_old_volume(upgrade: PgMajorUpgrade, record_property) -> None:
    result = upgrade.make_rollback().after_finish()
    record_property("rollback_seconds", result.seconds)
    if not result.ok:
        raise Problem(f"going back to the old volume failed: {result.problem}; "
                      f"manual steps: {' && '.join(result.manual_steps)}")
