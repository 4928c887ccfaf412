"""One host per IP address (FAULT: existing rows share addresses, so this fails half-way
through the run, after 0003 and 0004 have already run in the same transaction).

Revision ID: 0005_hosts_unique_ip
"""

from alembic import op

revision = "0005_hosts_unique_ip"
down_revision = "0004_scan_failed_count"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_hosts_ip_address", "hosts", ["ip_address"])


def downgrade() -> None:
    op.drop_constraint("uq_hosts_ip_address", "hosts")
