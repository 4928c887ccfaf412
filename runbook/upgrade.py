"""The upgrade, as ordered stages (data) and the operation behind each one.

What UPGRADE_PROCEDURE.md means, without its bugs: build before stopping, migrate with the new
image and its own alembic.ini path, stop with ``docker stop`` (never ``compose down``), cope with
services a release dropped, verify the backup before changing anything, compare the data after.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import psycopg
import requests

from runbook import (backup, celery_checks, gitrepo, profile as profiles, schema_checks, service_checks, startup,
                     state)
from runbook.compose import Compose, stop_containers, tag_images
from runbook.errors import Problem
from runbook.journal import Journal
from runbook.lock import RunLock
from runbook.envfile import parse_env
from runbook.profile import Profile
from runbook.shell import progress

APP_SERVICES = ("frontend", "backend", "worker", "celery-beat")
USER_FACING = ("frontend", "backend")


def error_line(output: str) -> str:
    """The line of a Python tool's output that names the error (not SQLAlchemy's trailing URL)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (named or lines or ["no output"])[-1]


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    changes: str  # what a failure here may have changed: nothing, code, containers, database


STAGES: tuple[Stage, ...] = (
    Stage("gate", "pre-flight gate passed", "nothing"),
    Stage("lock_and_record", "lock taken, state recorded", "nothing"),
    Stage("backup", "database and configuration backed up", "nothing"),
    Stage("verify_backup", "backup verified by restore", "nothing"),
    Stage("checkout", "target checked out", "code"),
    Stage("build", "target images built while the old version serves", "code"),
    Stage("drain_and_stop", "Celery drained, app containers stopped", "containers"),
    Stage("migrate", "database migrated with the new image", "database"),
    Stage("start", "new version started and healthy", "database"),
    Stage("verify", "post-flight checks and data compared", "database"),
    Stage("finish", "lock released, old backups pruned", "nothing"),
)


@dataclass
class Settings:
    target: str
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
    after: state.InstallState | None = None
    backup: backup.BackupRecord | None = None
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
        with self.connect() as conn:
            return state.capture(current, self.client, conn)

    # -- stages --------------------------------------------------------------------------------
    def run_stage(self, stage: Stage) -> float:
        self.journal.stage_started(stage.name)
        progress(f"stage {stage.name}: {stage.title}")
        started = time.monotonic()
        try:
            getattr(self, f"stage_{stage.name}")()
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
            self.before = state.capture(self.profile, self.client, self.snapshot.conn)
        except BaseException:
            self.release_snapshot()
            raise
        self.image_names = Compose.of(self.profile).image_names()
        self.journal.set("image_names", self.image_names)
        self.journal.set("before", self.before.to_json())

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
            self.backup = backup.take(self.profile.install_dir, self.settings.backup_dir, self.db_container,
                                      self.db_user, self.db_name, label=self.before.version, restore_into=scratch,
                                      snapshot=self.snapshot)
        finally:
            self.release_snapshot()
        self.journal.set("backup", self.backup.to_json())

    def stage_verify_backup(self) -> None:
        result = backup.verify(self.backup, self.db_container, self.db_user, self.conninfo(), self.before.tables,
                               full_restore=self.full_restore)
        self.journal.set("backup", {**self.backup.to_json(), "verification": result})

    def stage_checkout(self) -> None:
        install_dir = self.profile.install_dir
        gitrepo.git(install_dir, "fetch", "--quiet", "--tags", "origin", timeout=600)
        gitrepo.git(install_dir, "checkout", "--quiet", "--detach", self.settings.target)
        self.new_profile = self.load_profile()
        expected = parse_env((install_dir / ".env.example").read_text(), interpolate=False)
        missing = sorted(name for name in expected if name not in self.profile.env)
        if missing:
            raise Problem(f".env lacks {', '.join(missing)}, which {self.settings.target} expects; add them to .env")

    def stage_build(self) -> None:
        compose = Compose.of(self.new_profile)
        seconds = compose.build()
        self.alembic_ini = compose.alembic_ini()
        self.journal.set("alembic_ini", self.alembic_ini)
        progress(f"built {self.settings.target} in {seconds:.0f}s; alembic.ini at {self.alembic_ini}")

    def stage_drain_and_stop(self) -> None:
        deadline = time.monotonic() + self.settings.drain_deadline_s
        while True:
            snapshot = celery_checks.inspect_worker(self.client, self.profile)
            if not (snapshot.active or snapshot.reserved):
                break
            if time.monotonic() > deadline:
                raise Problem(f"Celery still has {snapshot.active} active and {snapshot.reserved} reserved tasks "
                              f"after {self.settings.drain_deadline_s:.0f}s; nothing was stopped, try later")
            time.sleep(2)
        # Users notice the backend and frontend going away, not the worker: stop those last.
        containers = self.app_containers(self.profile)
        user_facing = [self.profile.container(service) for service in USER_FACING]
        stop_containers(self.client, [name for name in containers if name not in user_facing])
        stop_containers(self.client, [name for name in containers if name in user_facing])

    def stage_migrate(self) -> None:
        result = Compose.of(self.new_profile).alembic(self.alembic_ini, "upgrade", "head", check=False)
        if result.returncode != 0:
            raise Problem(f"alembic upgrade head failed: {self.profile.redactor(error_line(result.stderr))[:300]}")

    def stage_start(self) -> None:
        """Start and judge the new version ourselves: a crash or a sustained run of bad /health answers
        fails it within seconds, where ``compose up --wait`` waits for Docker's unhealthy verdict."""
        Compose.of(self.new_profile).up(timeout=self.settings.start_deadline_s, wait=False)
        startup.watch(self.client, self.new_profile, self.settings.base_url,
                      startup.Rule(deadline_s=self.settings.start_deadline_s))

    def stage_verify(self) -> None:
        new = self.new_profile
        with requests.Session() as http:
            service_checks.backend_health(http, self.settings.base_url, expected_version=new.version)
            service_checks.frontend_proxies_api(http, self.settings.frontend_url)
            user, password = new.setting("OPENWATCH_AUDIT_USER"), new.setting("OPENWATCH_AUDIT_PASSWORD")
            if user and password:
                token = service_checks.login(http, self.settings.base_url, user, password)
                service_checks.aegis_healthy(http, self.settings.base_url, token)
                service_checks.rules_listed(http, self.settings.base_url, token)
        service_checks.containers_healthy(self.client, new)
        with self.connect() as conn:
            schema_checks.at_code_head(new.install_dir, conn)
        self.after = self.capture(new)
        self.journal.set("after", self.after.to_json())
        lost = state.rows_preserved(self.before, self.after)
        if lost:
            raise Problem(f"row counts changed by the upgrade: {'; '.join(lost)}")

    def stage_finish(self) -> None:
        self.lock.release()
        pruned = backup.prune(self.settings.backup_dir, self.settings.retention_days)
        self.journal.set("pruned_backups", pruned)
        self.journal.finish("UPGRADED")

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
        install_dir = self.profile.install_dir
        standard = {install_dir / name for name in (profiles.COMPOSE_FILE, profiles.PROD_OVERLAY)}
        extra = tuple(path for path in self.profile.compose_files if path not in standard)
        return profiles.load(install_dir, extra, install_dir / profiles.PROD_OVERLAY in self.profile.compose_files)
