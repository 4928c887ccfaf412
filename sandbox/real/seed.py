"""Deterministic operator data written into the real schema with SQL that respects its constraints.

The tables are the ones an operator cares about, as the real migrations name them (the same in all
three tags): ``users``, ``hosts``, ``host_groups`` and ``host_group_memberships``, ``scans`` with their
``scan_results`` (one summary per scan) and ``scan_findings`` (rule outcomes), and ``audit_logs``.
Every value is a function of the row number (ids are md5-derived uuids), so two seeded databases are
identical and a lost or changed row shows in checksums. Host addresses are in 127.10.0.0/16: the real
workers check, ping and scan every active host, and a loopback address keeps those attempts inside the
worker's own container (the test engine also refuses private ranges, as a second fence). One host in a
hundred is active (sequentially, about 0.1-1 s each, 1,200 active hosts keep the job queue's single
worker busy for minutes, so queued work would wait behind them); the rest are decommissioned hosts
kept with their history. Columns the ORM fills on insert (no database default) are given here. Runs after the backend's first start, which creates ``admin`` and the RBAC
rows, as on a real installation that has been in use.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

ORIGIN = "timestamp '2026-01-05 08:00'"


@dataclass(frozen=True)
class SeedSize:
    users: int = 40
    hosts: int = 1200
    groups: int = 24
    scans: int = 3000
    findings_per_scan: int = 2
    audit_logs: int = 2500

    @property
    def rows(self) -> int:
        """Rows this seed writes, the audit account included (scan_results: one per scan)."""
        return (self.users + 1 + self.hosts + self.groups + self.hosts + self.scans * (2 + self.findings_per_scan)
                + self.audit_logs)


STATEMENTS: tuple[str, ...] = (
    # Users: password hashes are argon2-shaped but match no password (nobody logs in as them).
    """
    INSERT INTO users (username, email, hashed_password, role, is_active, created_at, failed_login_attempts,
                       mfa_enabled)
    SELECT 'user' || lpad(g::text, 3, '0'), 'user' || g || '@openwatch.invalid',
           '$argon2id$v=19$m=65536,t=3,p=1$' || md5('salt' || g) || '$' || md5('user' || g),
           ((ARRAY['security_admin', 'security_analyst', 'compliance_officer', 'auditor', 'guest'])[1 + g % 5])::user_roles,
           g % 9 <> 0, {origin} + g * interval '1 day', 0, false
    FROM generate_series(1, {users}) AS g
    """,
    """
    INSERT INTO hosts (id, hostname, ip_address, display_name, operating_system, status, port, username,
                       auth_method, environment, tags, owner, is_active, created_by, created_at, updated_at,
                       os_family, os_version, architecture, check_priority)
    SELECT md5('host' || g)::uuid,
           (ARRAY['rhel', 'ubuntu', 'debian', 'centos'])[1 + g % 4] || '-' || lpad(g::text, 5, '0') || '.lab.invalid',
           '127.10.' || g / 250 || '.' || 1 + g % 250,
           'Host ' || g, (ARRAY['RHEL 9.4', 'Ubuntu 22.04', 'Debian 12', 'CentOS Stream 9'])[1 + g % 4],
           (ARRAY['online', 'online', 'online', 'offline', 'degraded'])[1 + g % 5], 22, 'openwatch', 'ssh_key',
           (ARRAY['production', 'staging', 'development'])[1 + g % 3], 'seed,batch-' || g % 10,
           'team-' || g % 7, g % 100 = 0,
           (SELECT id FROM users WHERE username = 'user' || lpad((1 + g % {users})::text, 3, '0')),
           {origin} + g * interval '17 minutes', {origin} + g * interval '19 minutes',
           ((ARRAY['rhel', 'ubuntu', 'debian', 'centos'])[1 + g % 4])::os_family_type,
           (ARRAY['9.4', '22.04', '12', '9'])[1 + g % 4], 'x86_64', 1 + g % 10
    FROM generate_series(1, {hosts}) AS g
    """,
    """
    INSERT INTO host_groups (name, description, color, created_by, created_at, updated_at, os_family,
                             compliance_framework, auto_scan_enabled)
    SELECT 'group-' || lpad(g::text, 2, '0'), 'Seeded group ' || g, '#' || lpad(to_hex(g * 654321 % 16777216), 6, '0'),
           (SELECT id FROM users WHERE username = 'user' || lpad((1 + g % {users})::text, 3, '0')),
           {origin} + g * interval '2 hours', {origin} + g * interval '3 hours',
           ((ARRAY['rhel', 'ubuntu', 'debian', 'centos'])[1 + g % 4])::os_family_type,
           (ARRAY['DISA-STIG', 'CIS-Controls', 'NIST-800-53'])[1 + g % 3], g % 2 = 0
    FROM generate_series(1, {groups}) AS g
    """,
    """
    INSERT INTO host_group_memberships (host_id, group_id, assigned_by, assigned_at)
    SELECT md5('host' || g)::uuid,
           (SELECT id FROM host_groups WHERE name = 'group-' || lpad((1 + g % {groups})::text, 2, '0')),
           (SELECT id FROM users WHERE username = 'user001'), {origin} + g * interval '23 minutes'
    FROM generate_series(1, {hosts}) AS g
    """,
    """
    INSERT INTO scans (id, name, host_id, profile_id, status, progress, error_message, started_by, started_at,
                       completed_at, remediation_requested, verification_scan, scan_mode)
    SELECT md5('scan' || g)::uuid, 'Scan ' || g, md5('host' || (1 + g % {hosts}))::uuid,
           (ARRAY['stig-rhel9', 'cis-level1', 'nist-moderate'])[1 + g % 3],
           CASE WHEN g % 29 = 0 THEN 'failed' ELSE 'completed' END, 100,
           CASE WHEN g % 29 = 0 THEN 'ssh: connection timed out' END,
           (SELECT id FROM users WHERE username = 'user' || lpad((1 + g % {users})::text, 3, '0')),
           {origin} + g * interval '11 minutes', {origin} + g * interval '11 minutes' + interval '4 minutes',
           false, false, 'full'
    FROM generate_series(1, {scans}) AS g
    """,
    """
    INSERT INTO scan_results (scan_id, total_rules, passed_rules, failed_rules, error_rules, unknown_rules,
                              not_applicable_rules, score, severity_high, severity_medium, severity_low, created_at,
                              risk_level)
    SELECT md5('scan' || g)::uuid, 300, 300 - g % 60 - g % 5, g % 60, g % 5, 0, 12,
           round((300 - g % 60 - g % 5) / 3.0, 1)::text, g % 7, g % 13, g % 17,
           {origin} + g * interval '11 minutes' + interval '4 minutes',
           (ARRAY['low', 'medium', 'high'])[1 + g % 3]
    FROM generate_series(1, {scans}) AS g
    """,
    """
    INSERT INTO scan_findings (scan_id, rule_id, title, severity, status, detail, framework_section, created_at)
    SELECT md5('scan' || s)::uuid,
           'xccdf_org.ssgproject.content_rule_' || (ARRAY['sshd_disable_root_login', 'audit_rules_immutable',
               'partition_for_tmp', 'kernel_module_usb_disabled'])[1 + (s + k) % 4],
           'Seeded finding ' || s || '/' || k, (ARRAY['low', 'medium', 'high', 'critical'])[1 + (s * k) % 4],
           CASE (s * 7 + k) % 5 WHEN 0 THEN 'fail' WHEN 1 THEN 'error' ELSE 'pass' END,
           'rule outcome ' || md5(s || '/' || k), 'V-' || (230000 + (s + k) % 999),
           {origin} + s * interval '11 minutes' + interval '4 minutes'
    FROM generate_series(1, {scans}) AS s, generate_series(1, {findings_per_scan}) AS k
    ORDER BY s, k
    """,
    """
    INSERT INTO audit_logs (user_id, action, resource_type, resource_id, ip_address, user_agent, details, timestamp)
    SELECT (SELECT id FROM users WHERE username = 'user' || lpad((1 + g % {users})::text, 3, '0')),
           (ARRAY['LOGIN', 'SCAN_STARTED', 'HOST_CREATED', 'HOST_UPDATED', 'REPORT_EXPORTED'])[1 + g % 5],
           (ARRAY['auth', 'scan', 'host', 'host', 'report'])[1 + g % 5], 'seed-' || g,
           '192.0.2.' || (1 + g % 250), 'seed-agent/1.0', 'seeded audit event ' || g,
           {origin} + g * interval '13 minutes'
    FROM generate_series(1, {audit_logs}) AS g
    """,
)

AUDIT_ACCOUNT = """
    INSERT INTO users (username, email, hashed_password, role, is_active, created_at, failed_login_attempts,
                       mfa_enabled)
    VALUES (%(username)s, %(email)s, %(hash)s, 'auditor', true, %(created)s, 0, false)
"""

SEEDED_TABLES = ("users", "hosts", "host_groups", "host_group_memberships", "scans", "scan_results",
                 "scan_findings", "audit_logs")


def seed(conninfo: str, audit_user: str, audit_password_hash: str, size: SeedSize = SeedSize()) -> dict[str, int]:
    """Write the seed in one transaction; the rows per seeded table afterwards."""
    # Only integers of SeedSize and a constant are formatted into the SQL (no parameters, so % is modulo).
    values = {"origin": ORIGIN, "users": size.users, "hosts": size.hosts, "groups": size.groups,
              "scans": size.scans, "findings_per_scan": size.findings_per_scan, "audit_logs": size.audit_logs}
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        conn.execute(AUDIT_ACCOUNT, {"username": audit_user, "email": f"{audit_user}@openwatch.invalid", "hash": audit_password_hash,
                                     "created": "2026-01-05 08:00"})
        for statement in STATEMENTS:
            conn.execute(statement.format(**values))
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in SEEDED_TABLES}
