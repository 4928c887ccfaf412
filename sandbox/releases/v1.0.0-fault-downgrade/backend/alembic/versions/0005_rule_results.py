"""FAULT: no working downgrade. scan_results becomes rule_results; severity text becomes severity_level smallint (1..4).

Revision ID: 0005_rule_results
"""

from alembic import op

revision = "0005_rule_results"
down_revision = "0004_scan_failed_count"
branch_labels = None
depends_on = None

LEVELS = {"low": 1, "medium": 2, "high": 3, "critical": 4}
TO_LEVEL = "CASE severity " + " ".join(f"WHEN '{name}' THEN {level}" for name, level in LEVELS.items()) + " END"
TO_NAME = "CASE severity " + " ".join(f"WHEN {level} THEN '{name}'" for name, level in LEVELS.items()) + " END"


def upgrade() -> None:
    op.rename_table("scan_results", "rule_results")
    op.execute("ALTER INDEX ix_scan_results_scan_id RENAME TO ix_rule_results_scan_id")
    op.execute("ALTER TABLE rule_results DROP CONSTRAINT scan_results_severity_check")
    op.execute(f"ALTER TABLE rule_results ALTER COLUMN severity TYPE smallint USING {TO_LEVEL}")
    op.alter_column("rule_results", "severity", new_column_name="severity_level")
    op.execute("ALTER TABLE rule_results ADD CONSTRAINT rule_results_severity_level_check CHECK (severity_level BETWEEN 1 AND 4)")


def downgrade() -> None:
    raise NotImplementedError("0005_rule_results cannot be downgraded: severity mapping was not kept")
