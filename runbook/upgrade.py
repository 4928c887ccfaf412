"""The upgrade, as ordered stages (data) and the operation behind each one.

What UPGRADE_PROCEDURE.md means, without its bugs: build before stopping, migrate with the new
image and its own alembic.ini path, stop with ``docker stop`` (never ``compose down``), cope with
services a release dropped, verify the backup before changing anything, compare the data after.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import psycopg
import requests

from runbook import (backup, dbstate, delta_backup, drain, gitrepo, profile as profiles, schema_checks,
                     service_checks, startup, state)
from runbook.compose import Compose, tag_images
from runbook.errors import Problem
from runbook.journal import Journal
from runbook.lock import RunLock
from runbook.envfile import parse_env
from runbook.profile import Profile
from runbook.run_record import RunRecord
from runbook.shell import progress
from runbook.targets import Target

APP_SERVICES = ("frontend", "backend", "worker", "celery-beat")
USER_FACING = ("frontend", "backend")


def error_line(output: str) -> str:
    """The line of a Python tool's output that names the error (not SQLAlchemy's trailing URL, nor a
    warning of the Compose CLI around it, such as its note on orphan containers)."""
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not re.match(r'^time="[^"]*" level=(warning|info)', line.strip())]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (named or lines or ["no output"])[-1]


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    changes: str  # what a failure here may have changed: nothing, code, containers, database
    run: Callable[[Upgrade], None]
    effect: str  # what it changes on the host, in the words of --plan
    # False only once the new version is verified: a failure then leaves an upgraded installation,
    # which --resume completes; rolling it back would throw a good upgrade away.
    rolled_back: bool = True

    @classmethod
    def titled(cls, name: str, title: str, changes: str, run: Callable, rolled_back: bool = True) -> Stage:
        """A stage whose title already says, in --plan's words, what it changes."""
        return cls(name, title, changes, run, effect=title, rolled_back=rolled_back)


@dataclass
class Settings:
    target: Target | None  # None for --rollback-to and --resume, which never check a target out
    ticket: str | None
    backup_dir: Path
    base_url: str
    frontend_url: str
    retention_days: float = 7.0
    full_restore_max_bytes: int = 2 * 1024**3
    drain_deadline_s: float = 300.0
    start_deadline_s: int = 180


@dataclass
class Upgrade:
    profile: Profile  # the installation as found (old release)
    client: docker.DockerClient
    settings: Settings
    journal: Journal
    lock: RunLock = field(init=False)
    new_profile: Profile | None = None
    before: state.InstallState | None = None
    # The database once every app container is stopped: a live app writes until then, so this, not
    # ``before``, is what a rollback must give back and what the migration's effect is judged against.
    at_stop: state.InstallState | None = None
    delta: delta_backup.DeltaRecord | None = None
    migrated: state.InstallState | None = None
    after: state.InstallState | None = None
    backup: backup.BackupRecord | None = None
    backup_verification: dict | None = None
    snapshot: backup.Snapshot | None = None  # the recorded state's, held open until the dump has read it
    alembic_ini: str | None = None
    full_restore: bool = True  # verification depth, chosen from the database size at backup time
    image_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = RunLock(self.profile.install_dir)

    # -- handles -------------------------------------------------------------------------------
    def connect(self) -> psycopg.Connection:
        return psycopg.connect(**self.profile.db_conninfo(), connect_timeout=5, autocommit=True)

    def conninfo(self) -> dict:
        """Server coordinates without the database name (verification connects to a scratch one)."""
        return {key: value for key, value in self.profile.db_conninfo().items() if key != "dbname"}

    @property
    def db_user(self) -> str:
        return self.profile.setting("POSTGRES_USER", "openwatch")

    @property
    def db_name(self) -> str:
        return self.profile.setting("POSTGRES_DB", "openwatch")

    @property
    def db_container(self) -> str:
        return self.profile.container("database")

    def capture(self, current: Profile) -> state.InstallState:
        """The state now, its checksums of the recorded state's kind (a resumed run's may be older)."""
        kind = dbstate.checksum_kind(self.before.tables) if self.before else dbstate.CURRENT_CHECKSUM
        with self.connect() as conn:
            return state.capture(current, self.client, conn, checksum=kind)

    # -- stages --------------------------------------------------------------------------------
    def run_stage(self, stage: Stage) -> float:
        self.journal.stage_started(stage.name)
        progress(f"stage {stage.name}: {stage.title}")
        started = time.monotonic()
        try:
            stage.run(self)
        except BaseException as error:
            self.journal.stage_ended(stage.name, "failed", time.monotonic() - started,
                                     self.profile.redactor(str(error))[:500])
            raise
        seconds = time.monotonic() - started
        self.journal.stage_ended(stage.name, "passed", seconds)
        return seconds

    def stage_gate(self) -> None:
        """Nothing to do here: the suite lets this stage run only once plugins/gate.py has found that
        every pre-flight check ran in this session and passed."""

    def stage_lock_and_record(self) -> None:
        self.lock.acquire(self.settings.ticket)
        self.journal.take_over()
        self.remove_leftovers()
        # Read in the snapshot the backup stage dumps: the backup is then verified against exactly the
        # state it holds (equal to the live database at the moment of the dump), and a restore of it
        # meets the recorded checksums, whatever the app writes in between.
        self.snapshot = backup.Snapshot(self.profile.db_conninfo())
        try:
            before = state.capture(self.profile, self.client, self.snapshot.conn)
        except BaseException:
            self.release_snapshot()
            raise
        self.remember(before=before, image_names=Compose.of(self.profile).image_names())

    def remove_leftovers(self) -> None:
        """What a killed run can leave behind: scratch databases and partial dumps (only a lock holder
        makes them, so with the lock held none of them is in use)."""
        with self.connect() as conn:
            names = [name for (name,) in conn.execute("SELECT datname::text FROM pg_database")]
        scratch = [name for name in names if name.startswith(backup.SCRATCH_PREFIXES) and name != self.db_name]
        for name in scratch:
            progress(f"dropping scratch database {name} left by an interrupted run")
            backup.drop_scratch(self.db_container, self.db_user, name)
        for partial in self.settings.backup_dir.glob("*.partial"):
            progress(f"removing partial backup {partial} left by an interrupted run")
            partial.unlink()

    def stage_backup(self) -> None:
        with self.connect() as conn:
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        self.full_restore = size <= self.settings.full_restore_max_bytes
        scratch = f"{backup.SCRATCH_PREFIXES[0]}{os.getpid()}" if self.full_restore else None
        try:
            taken = backup.take(self.profile.install_dir, self.settings.backup_dir, self.db_container,
                                      self.db_user, self.db_name, label=self.before.version, restore_into=scratch,
                                      snapshot=self.snapshot)
        finally:
            self.release_snapshot()
        self.remember(backup=taken)

    def stage_verify_backup(self) -> None:
        result = backup.verify(self.backup, self.db_container, self.db_user, self.conninfo(), self.before.tables,
                               full_restore=self.full_restore, expected_schema=self.before.schema)
        self.remember(backup_verification=result)

    def stage_checkout(self) -> None:
        """The commit ``--target`` resolved to at the start of the run (a branch that moved since is
        not followed); the fetch brings the tags, so the recorded state names the new release's."""
        install_dir, target = self.profile.install_dir, self.settings.target
        gitrepo.git(install_dir, "fetch", "--quiet", "--tags", "origin", timeout=600)
        gitrepo.git(install_dir, "checkout", "--quiet", "--detach", target.commit)
        self.new_profile = self.load_profile()
        expected = parse_env((install_dir / ".env.example").read_text(), interpolate=False)
        missing = sorted(name for name in expected if name not in self.profile.env)
        if missing:
            raise Problem(f".env lacks {', '.join(missing)}, which {target.name} expects; add them to .env")

    def stage_build(self) -> None:
        compose = Compose.of(self.new_profile)
        seconds = compose.build()
        self.remember(alembic_ini=compose.alembic_ini(self.client))
        progress(f"built {self.settings.target.label} in {seconds:.0f}s; alembic.ini at {self.alembic_ini}")

    def stage_drain_and_stop(self) -> None:
        """Stop the old version without losing queued work (``runbook.drain``), then record the state
        the rollback must give back."""
        old = self.profile
        user_facing = [old.container(service) for service in USER_FACING]
        worker = old.container("worker")
        drain.stop_old(self.client, old, self.new_profile, self.settings.drain_deadline_s,
                       [name for name in self.app_containers(old) if name not in user_facing and name != worker],
                       user_facing, worker)
        self.record_at_stop()

    def record_at_stop(self) -> None:
        """The state the rollback must give back, and the rows written since the recording, kept."""
        self.remember(at_stop=self.capture(self.profile))
        written = [name for name in state.data_differences(self.before, self.at_stop) if name in self.at_stop.tables]
        if not written or self.backup is None:
            return
        destination = backup.delta_path(Path(self.backup.dump))
        self.remember(delta=delta_backup.take(self.db_container, self.db_user, self.db_name, written, destination))
        progress(f"the app wrote to {len(written)} tables after the state was recorded ({', '.join(written[:5])}"
                 f"{' ...' if len(written) > 5 else ''}); their rows at the stop kept in {destination} "
                 f"({self.delta.size / 1024:.0f} KiB, {self.delta.seconds:.1f}s)")

    def stage_migrate(self) -> None:
        result = Compose.of(self.new_profile).alembic(self.alembic_ini, "upgrade", "head", check=False)
        if result.returncode != 0:
            said = error_line(f"{result.stdout}\n{result.stderr}")
            raise Problem(f"alembic upgrade head failed: {self.profile.redactor(said)[:300]}")
        self.migrated = self.capture(self.new_profile)  # still stopped: the migration's effect alone
        self.journal.set("migrated", self.migrated.to_json())
        lost = state.rows_preserved(self.at_stop or self.before, self.migrated)
        if lost:
            raise Problem(f"row counts changed by the migration: {'; '.join(lost)}")

    def stage_start(self) -> None:
        """Start and judge the new version ourselves: a crash or a sustained run of bad /health answers
        fails it within seconds, where ``compose up --wait`` waits for Docker's unhealthy verdict."""
        self.journal.set("retired", self.retiring())
        Compose.of(self.new_profile).up(timeout=self.settings.start_deadline_s, wait=False)
        startup.watch(self.client, self.new_profile, self.settings.base_url,
                      startup.Rule(deadline_s=self.settings.start_deadline_s))

    def stage_verify(self) -> None:
        new = self.new_profile
        with requests.Session() as http:
            service_checks.backend_health(http, self.settings.base_url, new.health_dependencies,
                                          expected_version=new.version, install_dir=new.install_dir)
            paths = service_checks.api_paths(http, self.settings.base_url)
            service_checks.frontend_proxies_api(
                http, self.settings.frontend_url,
                service_checks.served_path(paths, service_checks.RULES_PATHS, "rule reference"))
            user, password = new.setting("OPENWATCH_AUDIT_USER"), new.setting("OPENWATCH_AUDIT_PASSWORD")
            if user and password:
                token = service_checks.login(http, self.settings.base_url, user, password)
                service_checks.engine_healthy(http, self.settings.base_url, token, paths)
                service_checks.rules_listed(http, self.settings.base_url, token, paths)
        service_checks.containers_healthy(self.client, new)
        with self.connect() as conn:
            schema_checks.at_code_head(new.install_dir, conn)
        self.remember(after=self.capture(new))

    def stage_finish(self) -> None:
        self.lock.release()
        pruned = backup.prune(self.settings.backup_dir, self.settings.retention_days)
        self.journal.set("pruned_backups", pruned)
        retired = self.journal.data.get("retired") or []
        if retired:
            kept_until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + self.settings.retention_days * 86400))
            for entry in retired:
                entry["volumes_kept_until"] = kept_until
            self.journal.set("retired", retired)
            for entry in retired:
                progress(f"retired {entry['service']}: container {entry['container']} removed, volumes "
                         f"{', '.join(entry['volumes']) or 'none'} kept until {kept_until} (backup retention); "
                         f"remove them then with `docker volume rm`")
        self.journal.finish("UPGRADED")

    def retiring(self) -> list[dict]:
        """Services of the old release the target no longer has (Redis, celery-beat in April 2026):
        Compose removes their containers as orphans when the target starts; the named volumes only
        they used stay, and are recorded here so the report can say what to remove and when (one a
        kept service also mounts, such as celery-beat's app_data, is not theirs to remove)."""
        gone = [service for service in self.profile.services if service not in self.new_profile.services]
        kept = [service for service in self.profile.services if service in self.new_profile.services]
        still_used = {name for service in kept for name in self.named_volumes(self.profile.container(service))}
        return [{"service": service, "container": self.profile.container(service),
                 "volumes": sorted(set(self.named_volumes(self.profile.container(service))) - still_used)}
                for service in gone]

    def named_volumes(self, container: str) -> list[str]:
        try:
            mounts = self.client.containers.get(container).attrs.get("Mounts") or []
        except docker.errors.NotFound:
            return []
        return [mount["Name"] for mount in mounts if mount.get("Type") == "volume" and mount.get("Name")]

    def remember(self, **fields: object) -> None:
        """Set what the run records (the upgrade's attributes behind :class:`RunRecord`'s fields) and
        write the whole record to the journal at once: the one way those fields reach it."""
        for name, value in fields.items():
            setattr(self, name, value)
        self.journal.write_record(self.run_record().to_json())

    def run_record(self) -> RunRecord:
        return RunRecord(before=self.before, at_stop=self.at_stop, after=self.after, backup=self.backup,
                         backup_verification=self.backup_verification, delta_backup=self.delta,
                         image_names=self.image_names, alembic_ini=self.alembic_ini)

    def adopt(self, record: RunRecord, new_profile: Profile | None, image_names: dict[str, str] | None = None,
              alembic_ini: str | None = None) -> None:
        """Take over what an earlier run recorded (``--resume``, ``--rollback-to``); ``image_names`` and
        ``alembic_ini`` read from the installation now win over the recorded ones."""
        self.before, self.at_stop, self.after = record.before, record.at_stop, record.after
        self.backup, self.backup_verification = record.backup, record.backup_verification
        self.delta = record.delta_backup
        self.new_profile = new_profile
        self.image_names = image_names or record.image_names or Compose.of(self.profile).image_names()
        self.alembic_ini = alembic_ini or record.alembic_ini

    # -- helpers shared with the rollback ------------------------------------------------------
    def release_snapshot(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None

    def app_containers(self, current: Profile) -> list[str]:
        names = [current.container(service) for service in APP_SERVICES if service in current.services]
        if self.before:  # containers of the old release too (celery-beat when 1.0 dropped it)
            names += [name for service, name in self.before.containers.items()
                      if service in APP_SERVICES and name not in names]
        return names

    def restore_images(self) -> None:
        tag_images(self.client, self.before.image_ids, self.image_names)

    def load_profile(self) -> Profile:
        """The installation as checked out now, with the compose files this run was given."""
        return profiles.load(self.profile.install_dir, self.profile.extra_compose, self.profile.prod_overlay)


STAGES: tuple[Stage, ...] = (
    Stage("gate", "pre-flight gate passed", "nothing", Upgrade.stage_gate,
          "nothing: lets the upgrade go on only if every pre-flight check passed"),
    Stage("lock_and_record", "lock taken, state recorded", "nothing", Upgrade.stage_lock_and_record,
          "takes the run lock, writes the journal, drops scratch databases and partial dumps a killed run left; "
          "reads version, ref, revision, images, every table's rows and checksum and the schema"),
    Stage("backup", "database and configuration backed up", "nothing", Upgrade.stage_backup,
          "writes a pg_dump of the database and copies .env, certificates and compose files to the backup folder "
          "(restored into a scratch database in the same pass)"),
    Stage("verify_backup", "backup verified by restore", "nothing", Upgrade.stage_verify_backup,
          "reads the dump back (sha256, pg_restore --list), compares the scratch restore, drops it"),
    Stage("checkout", "target checked out", "code", Upgrade.stage_checkout,
          "fetches origin and checks out the target commit, detached"),
    Stage("build", "target images built while the old version serves", "code", Upgrade.stage_build,
          "builds the target's images (the old version keeps serving)"),
    Stage("drain_and_stop", "queued work drained, app containers stopped", "containers", Upgrade.stage_drain_and_stop,
          "drains the queues and stops the app containers, the worker before the backend when the target reads "
          "the same queue (the database keeps running); dumps the rows written since the backup"),
    Stage("migrate", "database migrated with the new image", "database", Upgrade.stage_migrate,
          "runs alembic upgrade head with the new image"),
    Stage("start", "new version started and healthy", "database", Upgrade.stage_start,
          "starts the new version with compose up (services it dropped are removed as orphans)"),
    Stage("verify", "post-flight checks and data compared", "database", Upgrade.stage_verify,
          "nothing: reads health, the API, containers, the revision and every table"),
    Stage("finish", "lock released, old backups pruned", "nothing", Upgrade.stage_finish,
          "releases the lock, deletes backups past retention (never the newest)", rolled_back=False),
)
BY_NAME = {stage.name: stage for stage in STAGES}
