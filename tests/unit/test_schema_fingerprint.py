"""The schema fingerprint, read from a real PostgreSQL catalog (a throwaway cluster of this machine,
no container) and compared: each kind of object a rollback can leave behind or lose is named in
one line, and what a rollback legitimately cannot rewind (a sequence that moved on) is not."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from runbook import dbstate
from runbook.schema_fingerprint import Fingerprint, capped, capture, differences
from tests import local_postgres
from tests.local_postgres import scratch_database

# The sandbox's v0.1.0 schema (0001 + 0002), plus one of each object kind the real OpenWatch has or
# a migration could add: an enum, a schema of its own, an identity column, a view, a trigger and
# its function, a domain, an extension's objects (which are named by the extension only).
SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL UNIQUE, email text NOT NULL,
                    password_hash text NOT NULL, role text NOT NULL DEFAULT 'viewer', is_active boolean NOT NULL DEFAULT true,
                    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE hosts (id serial PRIMARY KEY, hostname text NOT NULL, ip_address text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE scans (id serial PRIMARY KEY, host_id integer NOT NULL REFERENCES hosts(id), started_at timestamptz NOT NULL,
                    status text NOT NULL, score numeric(5,2));
CREATE TABLE scan_results (id serial PRIMARY KEY, scan_id integer NOT NULL REFERENCES scans(id), rule_id text NOT NULL,
                           status text NOT NULL CHECK (status IN ('pass', 'fail', 'error')),
                           severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')));
CREATE INDEX ix_scan_results_scan_id ON scan_results (scan_id);
CREATE INDEX ix_scans_host_id ON scans (host_id);
CREATE TYPE severity AS ENUM ('low', 'medium', 'high', 'critical');
CREATE DOMAIN percent AS numeric(5,2) CHECK (VALUE BETWEEN 0 AND 100);
CREATE SCHEMA audit;
CREATE TABLE audit.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, level severity NOT NULL DEFAULT 'low');
CREATE VIEW failing_hosts AS SELECT DISTINCT h.id, h.hostname FROM hosts h JOIN scans s ON s.host_id = h.id
                             WHERE s.status = 'failed';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER hosts_touch BEFORE UPDATE ON hosts FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO hosts (hostname, ip_address) SELECT 'rhel-' || i, '10.0.0.' || i FROM generate_series(1, 50) AS i;
"""


@pytest.fixture
def database(local_postgres_cluster: str, request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    with scratch_database(local_postgres_cluster, f"fp_{request.node.name[-40:]}".lower().replace("[", "_")
                          .replace("]", "").replace("-", "_")) as conninfo:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(SCHEMA)
            yield conn


def after(conn: psycopg.Connection, recorded: Fingerprint, statement: str) -> list[str]:
    conn.execute(statement)
    return differences(recorded, capture(conn))


def test_the_same_schema_gives_the_same_fingerprint_whoever_reads_it(database: psycopg.Connection,
                                                                    local_postgres_cluster: str) -> None:
    first = capture(database)
    database.execute("SET search_path TO audit, pg_catalog")  # a role or session with its own search_path
    assert capture(database).to_json() == first.to_json()
    assert database.execute("SHOW search_path").fetchone()[0] == "audit, pg_catalog"  # left as it was
    with scratch_database(local_postgres_cluster, "fp_rebuilt") as conninfo:  # as pg_restore rebuilds it
        with psycopg.connect(conninfo, autocommit=True) as rebuilt:
            rebuilt.execute(SCHEMA)
            assert capture(rebuilt).digest == first.digest
            assert differences(first, capture(rebuilt)) == []
    assert Fingerprint.from_json(first.to_json()) == first and len(first.digest) == 16
    objects = first.objects
    assert objects["enum severity"] == ["low", "medium", "high", "critical"]
    assert objects["column users.role"] == "text not null default 'viewer'::text"
    assert objects["column audit.events.id"] == "bigint not null generated always as identity"
    assert objects["constraint scans.scans_host_id_fkey"] == "FOREIGN KEY (host_id) REFERENCES hosts(id)"
    assert objects["index ix_scans_host_id"] == "CREATE INDEX ix_scans_host_id ON public.scans USING btree (host_id)"
    assert objects["sequence hosts_id_seq"].endswith("owned by hosts.id")
    assert objects["sequence audit.events_id_seq"].endswith("owned by audit.events.id")
    assert first.sequences["sequence hosts_id_seq"] == [51, 1]
    assert {"view failing_hosts", "function touch()", "trigger hosts.hosts_touch", "domain percent",
            "constraint percent.percent_check", "schema audit", "extension plpgsql"} <= set(objects)
    assert "index users_username_key" not in objects  # named by its constraint, users.users_username_key


@pytest.mark.parametrize(("statement", "named"), [
    ("ALTER TABLE hosts ADD COLUMN os_family varchar(32) NOT NULL DEFAULT 'unknown'",
     ["column hosts.os_family is still there (character varying(32) not null default "
      "'unknown'::character varying)"]),
    ("DROP INDEX ix_scans_host_id", ["index ix_scans_host_id is missing"]),
    ("CREATE INDEX ix_scans_started_at ON scans (started_at)",
     ["index ix_scans_started_at is still there (CREATE INDEX ix_scans_started_at ON public.scans USING btree "
      "(started_at))"]),
    ("ALTER TABLE hosts ADD CONSTRAINT uq_hosts_ip_address UNIQUE (ip_address)",
     ["constraint hosts.uq_hosts_ip_address is still there (UNIQUE (ip_address))"]),
    ("ALTER TABLE scan_results DROP CONSTRAINT scan_results_severity_check",
     ["constraint scan_results.scan_results_severity_check is missing"]),
    ("ALTER TYPE severity RENAME VALUE 'critical' TO 'urgent'",
     ["enum severity lost value 'critical' and gained value 'urgent'"]),
    ("ALTER TYPE severity ADD VALUE 'info' BEFORE 'low'", ["enum severity gained value 'info'"]),
    ("CREATE TYPE scan_state AS ENUM ('queued', 'done')", ["enum scan_state is still there ('queued', 'done')"]),
    ("ALTER TABLE users ALTER COLUMN role SET DEFAULT 'auditor'",
     ["column users.role changed: text not null default 'viewer'::text -> text not null default 'auditor'::text"]),
    ("ALTER TABLE scans ALTER COLUMN status DROP NOT NULL",
     ["column scans.status changed: text not null -> text"]),
    ("ALTER TABLE scans ALTER COLUMN score TYPE numeric(6,2)",
     ["column scans.score changed: numeric(5,2) -> numeric(6,2)"]),
    ("ALTER SEQUENCE hosts_id_seq INCREMENT BY 10", ["sequence hosts_id_seq changed: integer start 1 increment 1 "
     "min 1 max 2147483647 cache 1 no cycle owned by hosts.id -> integer start 1 increment 10 min 1 max 2147483647 "
     "cache 1 no cycle owned by hosts.id"]),
    ("CREATE OR REPLACE VIEW failing_hosts AS SELECT DISTINCT h.id, h.hostname FROM hosts h JOIN scans s "
     "ON s.host_id = h.id WHERE s.status = 'error'", ["view failing_hosts has another definition"]),
    ("CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN OLD; END$$",
     ["function touch() has another definition"]),
    ("DROP TRIGGER hosts_touch ON hosts", ["trigger hosts.hosts_touch is missing"]),
    ("CREATE TABLE audit.logins (id serial PRIMARY KEY, at timestamptz)",
     ["sequence audit.logins_id_seq is still there (integer start 1 increment 1 min 1 max 2147483647 cache 1 "
      "no cycle owned by audit.logins.id)", "table audit.logins is still there (3 columns, constraints and triggers)"]),
    ("DROP SCHEMA audit CASCADE",
     ["schema audit is missing", "sequence audit.events_id_seq is missing", "table audit.events is missing"]),
    ("CREATE EXTENSION IF NOT EXISTS plpgsql; ALTER EXTENSION plpgsql UPDATE", []),  # same version: nothing
])
def test_each_kind_of_schema_change_is_named_in_one_line(database: psycopg.Connection, statement: str,
                                                         named: list[str]) -> None:
    recorded = capture(database)
    assert after(database, recorded, statement) == named


def test_what_a_rollback_cannot_rewind_is_not_a_difference_and_data_is_not_schema(
        database: psycopg.Connection) -> None:
    recorded = capture(database)
    # nextval is never rolled back: a failed migration that inserted leaves the sequence ahead.
    with pytest.raises(psycopg.errors.UniqueViolation):
        with database.transaction():
            database.execute("INSERT INTO hosts (hostname, ip_address) VALUES ('win-1', '10.0.1.1')")
            database.execute("INSERT INTO hosts (id, hostname, ip_address) VALUES (1, 'dup', 'x')")
    assert capture(database).sequences["sequence hosts_id_seq"] == [52, 1]
    assert differences(recorded, capture(database)) == []
    # A column dropped again (a downgrade) leaves only a dropped attribute behind: not a column.
    database.execute("ALTER TABLE hosts ADD COLUMN os_family text; ALTER TABLE hosts DROP COLUMN os_family")
    database.execute("UPDATE hosts SET hostname = upper(hostname)")  # data is the checksums' business
    assert differences(recorded, capture(database)) == []


def test_a_sequence_behind_its_recorded_position_is_a_difference(database: psycopg.Connection) -> None:
    recorded = capture(database)
    assert after(database, recorded, "SELECT setval('hosts_id_seq', 10)") == [
        "sequence hosts_id_seq is behind its recorded position (next value 11, recorded 51): "
        "new rows would reuse existing ids"]


def test_a_migration_that_dies_half_way_is_seen_as_it_is(database: psycopg.Connection) -> None:
    """One transaction: nothing of it stays. DDL committed outside it (CREATE INDEX CONCURRENTLY
    cannot run inside one) stays, and so does the invalid index a failed concurrent build leaves."""
    database.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                     "INSERT INTO alembic_version VALUES ('0002_scan_indexes')")
    recorded = capture(database)
    with pytest.raises(psycopg.errors.UniqueViolation):
        with database.transaction():
            database.execute("ALTER TABLE hosts ADD COLUMN os_family text")
            database.execute("UPDATE alembic_version SET version_num = '0003_host_os_family'")
            database.execute("INSERT INTO hosts (hostname, ip_address) VALUES ('a', '10.0.0.1'); "
                             "CREATE UNIQUE INDEX uq_ip ON hosts (ip_address)")
    assert dbstate.alembic_revisions(database) == ["0002_scan_indexes"]
    assert differences(recorded, capture(database)) == []
    database.execute("CREATE INDEX CONCURRENTLY ix_scans_started_at ON scans (started_at)")
    database.execute("INSERT INTO hosts (hostname, ip_address) VALUES ('rhel-1-clone', '10.0.0.1')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.execute("CREATE UNIQUE INDEX CONCURRENTLY uq_hosts_ip ON hosts (ip_address)")
    assert dbstate.alembic_revisions(database) == ["0002_scan_indexes"]
    assert differences(recorded, capture(database)) == [
        "index ix_scans_started_at is still there (CREATE INDEX ix_scans_started_at ON public.scans USING btree "
        "(started_at))",
        "index uq_hosts_ip is still there (CREATE UNIQUE INDEX uq_hosts_ip ON public.hosts USING btree (ip_address) "
        "INVALID)"]


def test_differences_are_capped_with_a_count_of_the_rest() -> None:
    recorded = Fingerprint({f"index ix_{i:02}": "CREATE INDEX" for i in range(14)})
    lines = differences(recorded, Fingerprint({}))
    assert len(lines) == 14 and lines[0] == "index ix_00 is missing"
    assert capped(lines) == [*lines[:10], "... and 4 more"] and capped(lines[:10]) == lines[:10]


def test_the_digest_ignores_order_and_sees_any_change() -> None:
    one = Fingerprint({"enum severity": ["low", "high"], "column hosts.id": "integer not null"})
    same = Fingerprint({"column hosts.id": "integer not null", "enum severity": ["low", "high"]})
    reordered = Fingerprint({"column hosts.id": "integer not null", "enum severity": ["high", "low"]})
    assert one.digest == same.digest != reordered.digest
    assert differences(one, reordered) == ["enum severity has its values in another order ('high', 'low')"]


def test_a_dump_and_restore_changes_nothing_the_fingerprint_compares(database: psycopg.Connection,
                                                                    local_postgres_cluster: str) -> None:
    """PostgreSQL prints a restored expression with other casts and parentheses than the migrated
    one (the real OpenWatch's varchar CHECK ... IN constraints): the emergency tier's restore and
    the backup's scratch restore must still compare equal."""
    database.execute("CREATE TABLE drift (kind varchar(16) CONSTRAINT valid_kind CHECK (kind IN ('major', 'minor')),"
                     " label varchar(8) DEFAULT 'x', at timestamptz DEFAULT now())")
    database.execute("CREATE VIEW major_drift AS SELECT kind::text AS kind FROM drift WHERE kind IN ('major')")
    recorded = capture(database)
    binaries = local_postgres.server_bin()
    source = psycopg.conninfo.conninfo_to_dict(database.info.dsn)
    as_nobody = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    with scratch_database(local_postgres_cluster, "fp_restored") as restored_conninfo:
        dump = subprocess.run([*as_nobody, str(binaries / "pg_dump"), "-h", source["host"], "-U", source["user"],
                               "-d", source["dbname"], "-Fc"], capture_output=True, check=True, timeout=60).stdout
        subprocess.run([*as_nobody, str(binaries / "pg_restore"), "-h", source["host"], "-U", source["user"],
                        "-d", "fp_restored"], input=dump, capture_output=True, check=True, timeout=60)
        with psycopg.connect(restored_conninfo, autocommit=True) as restored:
            found = capture(restored)
            printed = restored.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                       "WHERE conname = 'valid_kind'").fetchone()[0]
    assert printed != recorded.objects["constraint drift.valid_kind"]  # the quirk is real
    assert differences(recorded, found) == []
