"""Deterministic seed data, written at the schema of the oldest release (revision ``SEED_REVISION``).

Installations at later releases are seeded first and migrated afterwards, so their data went
through the same backfills a real installation's data would. Every value is a function of the
row number, so two seeded databases are identical and a lost or changed row shows in checksums.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg

SEED_REVISION = "0002_scan_indexes"
PBKDF2_ITERATIONS = 100_000


@dataclass(frozen=True)
class SeedSize:
    users: int = 25
    hosts: int = 600
    scans: int = 2400
    results_per_scan: int = 5

    @property
    def rows(self) -> int:
        return self.users + self.hosts + self.scans + self.scans * self.results_per_scan


def password_hash(password: str, salt: str | None = None) -> str:
    """The backend's ``pbkdf2_sha256$<iterations>$<salt>$<hex>`` format."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS).hex()
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${digest}"


def seed(conninfo: str, audit_user: str, audit_password: str, size: SeedSize = SeedSize()) -> None:
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        conn.execute(
            "INSERT INTO users (username, email, password_hash, role, created_at) VALUES (%s, %s, %s, 'auditor', %s)",
            (audit_user, f"{audit_user}@openwatch.invalid", password_hash(audit_password), "2026-01-01T00:00:00Z"),
        )
        conn.execute(
            """
            INSERT INTO users (username, email, password_hash, role, is_active, created_at)
            SELECT 'user' || g, 'user' || g || '@openwatch.invalid',
                   'pbkdf2_sha256$1000$seed$' || md5('user' || g),
                   (ARRAY['admin', 'analyst', 'viewer'])[1 + g %% 3], g %% 11 <> 0,
                   timestamptz '2026-01-01' + g * interval '1 day'
            FROM generate_series(1, %s) AS g
            """,
            (size.users - 1,),
        )
        conn.execute(
            """
            INSERT INTO hosts (hostname, ip_address, created_at)
            SELECT (ARRAY['rhel', 'ubuntu', 'win', 'debian'])[1 + g %% 4] || '-' || lpad(g::text, 4, '0'),
                   '198.51.100.' || (g %% 200), timestamptz '2026-01-01' + g * interval '1 hour'
            FROM generate_series(1, %s) AS g
            """,
            (size.hosts,),
        )
        conn.execute(
            """
            INSERT INTO scans (host_id, started_at, status, score)
            SELECT 1 + g %% %s, timestamptz '2026-02-01' + g * interval '7 minutes',
                   CASE WHEN g %% 17 = 0 THEN 'failed' ELSE 'completed' END, (g * 37 %% 10000) / 100.0
            FROM generate_series(1, %s) AS g
            """,
            (size.hosts, size.scans),
        )
        conn.execute(
            """
            INSERT INTO scan_results (scan_id, rule_id, status, severity)
            SELECT s, 'ow-' || (ARRAY['ssh', 'audit', 'fs', 'kernel'])[1 + k %% 4] || '-' || lpad((1 + s %% 5)::text, 3, '0'),
                   CASE (s * 7 + k) %% 5 WHEN 0 THEN 'fail' WHEN 1 THEN 'error' ELSE 'pass' END,
                   (ARRAY['low', 'medium', 'high', 'critical'])[1 + (s + k) %% 4]
            FROM generate_series(1, %s) AS s, generate_series(1, %s) AS k
            ORDER BY s, k
            """,
            (size.scans, size.results_per_scan),
        )
