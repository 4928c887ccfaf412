"""Index results by scan and scans by host.

Revision ID: 0002_scan_indexes
"""

from alembic import op

revision = "0002_scan_indexes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_scan_results_scan_id", "scan_results", ["scan_id"])
    op.create_index("ix_scans_host_id", "scans", ["host_id"])


def downgrade() -> None:
    op.drop_index("ix_scans_host_id", table_name="scans")
    op.drop_index("ix_scan_results_scan_id", table_name="scan_results")
