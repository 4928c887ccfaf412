"""scans.failed_count: how many rules failed, backfilled from scan_results.

Revision ID: 0004_scan_failed_count
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_scan_failed_count"
down_revision = "0003_host_os_family"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scans", sa.Column("failed_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        """
        UPDATE scans SET failed_count = counts.failed
        FROM (SELECT scan_id, count(*) AS failed FROM scan_results WHERE status = 'fail' GROUP BY scan_id) AS counts
        WHERE scans.id = counts.scan_id
        """
    )


def downgrade() -> None:
    op.drop_column("scans", "failed_count")
