"""The rollback's tier state machine with every action faked: any exception a tier raises escalates
to the emergency tier or stops safe with manual steps, the journal always ends with the outcome, and
the lock is released only when the installation was put back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import psycopg
import pytest

from runbook import state
from runbook.backup import BackupRecord
from runbook.errors import Problem
from runbook.journal import Journal
from runbook.lock import RunLock
from runbook.redaction import Redactor
from plugins.outcome import describe
from runbook.rollback import Rollback, RollbackResult, StateDiffers
from runbook.schema_fingerprint import capture
from runbook.shell import CommandError
from runbook.state import InstallState
from tests.local_postgres import scratch_database

SECRET = "s3cret-db-pass"

# One of each exception family a tier can meet: the engine, the database, a hung command, a bug.
FAILURES: dict[str, Callable[[], Exception]] = {
    "ImageNotFound": lambda: docker.errors.ImageNotFound(f"No such image: sha256:0ld (auth {SECRET})"),
    "OperationalError": lambda: psycopg.OperationalError(f"connection refused\npassword={SECRET}"),
    "TimeoutExpired": lambda: subprocess.TimeoutExpired(["docker", "compose", "up", "-d", SECRET], 180),
    "RuntimeError": lambda: RuntimeError(f"unexpected {SECRET}"),
    "Problem": lambda: Problem("database at None, recorded abc123"),
    "CommandError": lambda: CommandError(["docker", "compose", "up"], 1, "container exited"),
}

QUICK = ["check out the recorded git ref", "re-tag the recorded images", "stop whatever app container runs",
         "compare the database with the state at the stop", "start the old version and wait healthy",
         "verify restored state"]
EMERGENCY = ["stop the app containers (database container kept)",
             "restore the verified backup into a recreated database", *QUICK]


@dataclass
class FakeProfile:
    install_dir: Path
    project: str = "openwatch"
    env: dict[str, str] = field(default_factory=lambda: {"POSTGRES_DB": "ow prod", "POSTGRES_USER": "ow"})
    redactor: Redactor = field(default_factory=lambda: Redactor([SECRET]))

    def setting(self, name: str, default: str = "") -> str:
        return self.env.get(name, default)


@dataclass
class FakeUpgrade:
    """What :class:`Rollback` reads of an upgrade: its profile, lock, journal, backup and recorded state."""

    profile: FakeProfile
    lock: RunLock
    journal: Journal
    backup: BackupRecord | None
    before: InstallState
    db_container: str = "openwatch-db"
    db_user: str = "ow"

    @property
    def db_name(self) -> str:
        return self.profile.setting("POSTGRES_DB", "openwatch")

    def release_snapshot(self) -> None:
        """Holds no database snapshot."""


class ScriptedRollback(Rollback):
    """The real tiers and loop; each action records its step and raises what the script says
    (``failures[action]``: raised once; ``always[action]``: raised every time)."""

    def __init__(self, upgrade: FakeUpgrade, failures: dict[str, Exception] | None = None,
                 always: dict[str, Exception] | None = None) -> None:
        super().__init__(upgrade)
        self.failures = dict(failures or {})
        self.always = dict(always or {})
        self.stopped_app = 0
        upgrade.restore_images = lambda: self._act("restore_images")  # type: ignore[attr-defined]

    def _act(self, action: str) -> None:
        if action in self.always:
            raise self.always[action]
        if action in self.failures:
            raise self.failures.pop(action)

    def restore_ref(self) -> None:
        self._act("restore_ref")

    def start_old(self) -> None:
        self._act("start_old")

    def stop_app(self) -> None:
        self.stopped_app += 1
        self._act("stop_app")

    def downgrade(self) -> None:
        self._act("downgrade")

    def restore_database(self) -> None:
        self._act("restore_database")

    def verify_database(self) -> None:
        self._act("verify_database")

    def verify_restored(self) -> None:
        self._act("verify_restored")


@pytest.fixture
def upgrade(tmp_path: Path) -> Iterator[FakeUpgrade]:
    journal = Journal.start(tmp_path, "v0.2.0", "CHG-1")
    lock = RunLock(tmp_path)
    lock.acquire("CHG-1")
    journal.take_over()
    before = InstallState("0.1.0", "v0.1.0", "c0ffee", "abc123", {}, {})
    yield FakeUpgrade(FakeProfile(tmp_path), lock, journal, BackupRecord("/b/pre.dump", "f00", 1, "/b/config", 1.0),
                      before)
    lock.release()


def another_run_is_refused(upgrade: FakeUpgrade) -> bool:
    """The run's lock still held: a second run's attempt to take it is refused."""
    other = RunLock(upgrade.profile.install_dir)
    try:
        other.acquire(None)
    except Problem:
        return True
    other.release()
    return False


def names(result: RollbackResult) -> list[str]:
    return [action["name"] for action in result.actions]


@pytest.mark.parametrize("failure", FAILURES)
def test_any_exception_in_a_tier_escalates_to_the_emergency_tier(upgrade: FakeUpgrade, failure: str) -> None:
    rollback = ScriptedRollback(upgrade, failures={"start_old": FAILURES[failure]()})
    result = rollback.run_tier("quick")
    assert names(result) == [*QUICK[:5], *EMERGENCY]
    assert result.ok and result.tier == "emergency" and result.requested == "quick"
    assert [a["ok"] for a in result.actions][:5] == [True, True, True, True, False]
    recorded = Journal.load(upgrade.profile.install_dir).data
    assert recorded["outcome"] == "ROLLED BACK (emergency)" and recorded["rollback"]["tier"] == "emergency"
    assert not upgrade.lock.path.exists()


@pytest.mark.parametrize("failure", ["ImageNotFound", "OperationalError", "TimeoutExpired", "RuntimeError"])
def test_an_unexpected_exception_is_named_by_its_class_on_one_redacted_line(upgrade: FakeUpgrade,
                                                                           failure: str) -> None:
    result = ScriptedRollback(upgrade, failures={"verify_restored": FAILURES[failure]()}).run_tier("ref")
    assert result.ok and result.tier == "emergency"
    assert result.problem.startswith(f"{failure}: ") and "\n" not in result.problem
    text = Journal.load(upgrade.profile.install_dir).path.read_text()
    assert SECRET not in text and SECRET not in result.problem


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_emergency_tier_stops_safe_with_manual_steps_and_keeps_the_lock(upgrade: FakeUpgrade,
                                                                                  failure: str) -> None:
    rollback = ScriptedRollback(upgrade, always={"restore_database": FAILURES[failure]()},
                        failures={"downgrade": FAILURES["RuntimeError"]()})
    result = rollback.run_tier("full")
    assert names(result) == ["stop the new app containers", "alembic downgrade abc123 with the NEW image",
                             *EMERGENCY[:2]]
    assert not result.ok and result.tier == "emergency" and result.manual_steps
    assert rollback.stopped_app == 3  # full tier, emergency tier, then stop-safe
    recorded = Journal.load(upgrade.profile.install_dir).data
    assert recorded["outcome"] == "FAILED - MANUAL ACTION" and recorded["rollback"]["manual_steps"]
    assert another_run_is_refused(upgrade)  # nobody starts on top until a person looked


@pytest.mark.parametrize("failure", ["ImageNotFound", "RuntimeError"])
def test_without_a_backup_or_a_data_comparison_the_first_failure_stops_safe(upgrade: FakeUpgrade,
                                                                            failure: str) -> None:
    result = ScriptedRollback(upgrade, failures={"start_old": FAILURES[failure]()}).run_tier("quick", compare_data=False)
    assert not result.ok and result.tier == "quick" and result.manual_steps and names(result) == QUICK[:5]
    upgrade.backup = None
    result = ScriptedRollback(upgrade, failures={"restore_ref": FAILURES[failure]()}).run_tier("ref")
    assert not result.ok and result.tier == "ref" and "<the newest verified dump" in result.manual_steps[4]
    assert Journal.load(upgrade.profile.install_dir).data["outcome"] == "FAILED - MANUAL ACTION"
    assert another_run_is_refused(upgrade)


def test_stop_safe_survives_the_app_not_stopping(upgrade: FakeUpgrade) -> None:
    rollback = ScriptedRollback(upgrade, always={"restore_database": FAILURES["TimeoutExpired"](),
                                         "stop_app": FAILURES["ImageNotFound"]()})
    result = rollback.run_tier("emergency")
    assert not result.ok and result.manual_steps
    assert Journal.load(upgrade.profile.install_dir).data["outcome"] == "FAILED - MANUAL ACTION"


def test_manual_steps_name_the_configured_database_quoted(upgrade: FakeUpgrade) -> None:
    result = ScriptedRollback(upgrade, always={"restore_database": FAILURES["Problem"]()}).run_tier("emergency")
    steps = "\n".join(result.manual_steps)
    assert "-c 'DROP DATABASE \"ow prod\" WITH (FORCE)'" in steps
    assert "-d 'ow prod'" in steps and "openwatch" not in steps.replace("openwatch-db", "")


class Unreachable:
    """A Docker client and database that fail the way a dying host does."""

    class containers:  # noqa: N801 - the attribute docker-py's client has
        @staticmethod
        def list(**_: object) -> list:
            raise docker.errors.APIError("500 Server Error: engine is shutting down")

    @staticmethod
    def connect() -> None:
        raise RuntimeError("connect() exploded")


def test_a_broken_engine_or_database_before_the_tiers_still_rolls_back(upgrade: FakeUpgrade) -> None:
    upgrade.client = Unreachable()  # type: ignore[attr-defined]
    upgrade.connect = Unreachable.connect  # type: ignore[attr-defined]
    result = ScriptedRollback(upgrade).run("migrate")
    assert result.requested == "full" and result.ok  # the database unknown: assume it changed
    assert Journal.load(upgrade.profile.install_dir).data["outcome"] == "ROLLED BACK (full)"


def test_a_schema_left_behind_escalates_and_each_difference_is_named(upgrade: FakeUpgrade) -> None:
    lines = [f"index ix_{i:02} is still there" for i in range(12)]
    differs = StateDiffers(f"schema differs from the recorded state in 12 places: {'; '.join(lines[:3])}", lines)
    result = ScriptedRollback(upgrade, failures={"verify_restored": differs}).run_tier("full")
    assert result.ok and result.tier == "emergency"
    assert result.differences == [*lines[:10], "... and 2 more"]
    recorded = Journal.load(upgrade.profile.install_dir).data["rollback"]
    assert recorded["differences"] == result.differences and recorded["problem"].startswith("schema differs")
    text = describe(result)
    assert "  not as recorded:\n    index ix_00 is still there\n" in text and "    ... and 2 more" in text


REVISION_TABLE = ("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                  "INSERT INTO alembic_version VALUES ('0002_scan_indexes');"
                  "CREATE TABLE scans (id serial PRIMARY KEY, started_at timestamptz NOT NULL)")


@pytest.mark.parametrize(("after_failure", "stage", "tier", "schema_found"), [
    ("", "migrate", "quick", []),  # PostgreSQL rolled the whole run back
    # Alembic committed 0003 before a later revision failed (one transaction per migration).
    ("ALTER TABLE scans ADD COLUMN failed_count integer NOT NULL DEFAULT 0;"
     "UPDATE alembic_version SET version_num = '0003_host_os_family'", "migrate", "full",
     ["column scans.failed_count is still there (integer not null default 0)"]),
    # DDL committed outside the migration's transaction, the revision never stamped.
    ("CREATE INDEX CONCURRENTLY ix_scans_started_at ON scans (started_at)", "migrate", "emergency",
     ["index ix_scans_started_at is still there (CREATE INDEX ix_scans_started_at ON public.scans USING btree "
      "(started_at))"]),
    ("CREATE INDEX CONCURRENTLY ix_scans_started_at ON scans (started_at)", "build", "emergency",
     ["index ix_scans_started_at is still there (CREATE INDEX ix_scans_started_at ON public.scans USING btree "
      "(started_at))"]),
])
def test_the_tier_is_chosen_from_what_the_database_really_is(upgrade: FakeUpgrade, local_postgres_cluster: str,
                                                            after_failure: str, stage: str, tier: str,
                                                            schema_found: list[str]) -> None:
    """A real database, left by the failure as the case says: the rollback reads its revision and
    schema, and picks the tier from them, not from the failed stage."""
    with scratch_database(local_postgres_cluster, "rollback_observed") as conninfo:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(REVISION_TABLE)
            upgrade.before.schema = capture(conn).to_json()
            for statement in filter(None, after_failure.split(";")):
                conn.execute(statement)
        upgrade.connect = lambda: psycopg.connect(conninfo, autocommit=True)  # type: ignore[attr-defined]
        upgrade.client = NoContainers()  # type: ignore[attr-defined]
        upgrade.before.revision = "0002_scan_indexes"
        result = ScriptedRollback(upgrade).run(stage)
    assert result.requested == tier and result.ok
    revision = "0003_host_os_family" if tier == "full" else "0002_scan_indexes"
    assert result.found == {"revisions": [revision], "schema_differences": schema_found}
    assert Journal.load(upgrade.profile.install_dir).data["rollback"]["found"] == result.found
    assert f"database found after the failure at revision {revision}, schema " in describe(result)


class NoContainers:
    """A Docker client with no one-off containers left running."""

    class containers:  # noqa: N801 - the attribute docker-py's client has
        @staticmethod
        def list(**_: object) -> list:
            return []


def test_tables_written_between_the_recording_and_the_stop_are_named() -> None:
    recorded = InstallState("0.1.0", "v0.1.0", "c0ffee", "abc123", {}, {}, {
        "hosts": {"rows": 2, "checksum": "1"}, "users": {"rows": 5, "checksum": "9"}, "scans": {"rows": 0, "checksum": "0"}})
    at_stop = InstallState("0.1.0", "v0.1.0", "c0ffee", "abc123", {}, {}, {
        "hosts": {"rows": 2, "checksum": "7"}, "users": {"rows": 8, "checksum": "3"}, "scans": {"rows": 0, "checksum": "0"},
        "job_queue": {"rows": 1, "checksum": "4"}})
    assert state.data_differences(recorded, at_stop) == ["hosts", "job_queue", "users"]
    assert state.data_differences(recorded, recorded) == []
