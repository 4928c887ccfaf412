"""Users, hosts, scans and their results.

Revision ID: 0001_initial
"""

from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id serial PRIMARY KEY,
            username text NOT NULL UNIQUE,
            email text NOT NULL,
            password_hash text NOT NULL,
            role text NOT NULL DEFAULT 'viewer',
            is_active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE hosts (
            id serial PRIMARY KEY,
            hostname text NOT NULL,
            ip_address text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE scans (
            id serial PRIMARY KEY,
            host_id integer NOT NULL REFERENCES hosts(id),
            started_at timestamptz NOT NULL,
            status text NOT NULL,
            score numeric(5,2)
        );
        CREATE TABLE scan_results (
            id serial PRIMARY KEY,
            scan_id integer NOT NULL REFERENCES scans(id),
            rule_id text NOT NULL,
            status text NOT NULL CHECK (status IN ('pass', 'fail', 'error')),
            severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical'))
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE scan_results; DROP TABLE scans; DROP TABLE hosts; DROP TABLE users;")
