"""Scans by start time, indexed without blocking writes, and the scan states as an enum; then one
host per IP address (FAULT: existing rows share addresses, so the last step fails).

CREATE INDEX CONCURRENTLY cannot run inside a transaction, so it runs in an autocommit block, as
real migrations do for big tables. Entering the block COMMITS what the run has done so far: 0003
and 0004 are committed and stamped, the index and the enum are committed on their own, and when
the unique constraint fails only that last step is rolled back. The database is left at 0004 with
an index and a type that no downgrade knows about (this revision was never stamped).

Revision ID: 0005_scan_started_index
"""

from alembic import op

revision = "0005_scan_started_index"
down_revision = "0004_scan_failed_count"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY ix_scans_started_at ON scans (started_at)")
        op.execute("CREATE TYPE scan_state AS ENUM ('queued', 'running', 'done')")
    op.create_unique_constraint("uq_hosts_ip_address", "hosts", ["ip_address"])


def downgrade() -> None:
    op.drop_constraint("uq_hosts_ip_address", "hosts")
    op.execute("DROP TYPE scan_state")
    op.drop_index("ix_scans_started_at", table_name="scans")
