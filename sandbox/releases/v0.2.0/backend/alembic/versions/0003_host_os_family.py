"""hosts.os_family: new NOT NULL column, backfilled from the hostname of existing rows.

Revision ID: 0003_host_os_family
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_host_os_family"
down_revision = "0002_scan_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hosts", sa.Column("os_family", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE hosts SET os_family = CASE
            WHEN hostname LIKE 'rhel%' THEN 'rhel'
            WHEN hostname LIKE 'ubuntu%' THEN 'ubuntu'
            WHEN hostname LIKE 'win%' THEN 'windows'
            ELSE 'unknown' END
        """
    )
    op.alter_column("hosts", "os_family", nullable=False, server_default="unknown")


def downgrade() -> None:
    op.drop_column("hosts", "os_family")
