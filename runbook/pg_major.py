"""PostgreSQL major upgrade (15 -> 17) by dump and restore onto a NEW volume; the old volume is
never touched, so going back is starting the old image on it again.

The procedure's recipe (``pg_dumpall`` nobody verified, then ``docker volume rm``) corrected: roles
with ``pg_dumpall --globals-only`` and each database with ``pg_dump -Fc`` once the app is stopped,
each dump's sha256 read back and its archive listed; the new version started on a new volume,
restored (``pg_restore --create``, database properties included), analyzed in stages, and compared
with the recorded cluster (roles, owners, extensions, encoding and collation, data checksums) and
database (schema fingerprint, every table's rows and checksum) before the installation is pointed
at it (``runbook.pg_pointer``). Stages are data, as the code upgrade's are."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import psycopg

from runbook import backup, pg_cluster, pg_pointer, state
from runbook.errors import Problem
from runbook.journal import Journal
from runbook.profile import Profile
from runbook.shell import OWN_GROUP, progress, run
from runbook.upgrade import Settings, Stage, Upgrade

READY_DEADLINE_S = 120.0


@dataclass(frozen=True)
class DumpFile:
    database: str  # "" for the globals (roles)
    path: str
    sha256: str
    size: int


class PgMajorUpgrade(Upgrade):
    """One major upgrade of the installation's PostgreSQL to ``new_image``."""

    def __init__(self, profile: Profile, client: docker.DockerClient, settings: Settings, journal: Journal,
                 new_image: str) -> None:
        super().__init__(profile, client, settings, journal)
        self.new_image = new_image
        self.pointer = pg_pointer.Pointer(profile.install_dir, profile.compose_files, new_image)
        self.facts: pg_cluster.ClusterFacts | None = None
        self.dumps: list[DumpFile] = []
        self.app_started_on_new = False
        self.discarding_writes = False  # --pg-rollback-discarding-writes

    # -- handles -------------------------------------------------------------------------------
    def connect_to(self, database: str) -> psycopg.Connection:
        return psycopg.connect(**self.conninfo(), dbname=database, connect_timeout=5, autocommit=True)

    def read_facts(self) -> pg_cluster.ClusterFacts:
        return pg_cluster.read(self.connect_to, "postgres", skip=backup.SCRATCH_PREFIXES)

    def record(self, **fields: object) -> None:
        self.journal.set("pg_major", {**(self.journal.data.get("pg_major") or {}), **fields})

    def make_rollback(self):
        from runbook.pg_major_rollback import PgMajorRollback  # the rollback imports this module
        return PgMajorRollback(self)

    # -- stages --------------------------------------------------------------------------------
    def stage_lock_and_record(self) -> None:
        self.lock.acquire(self.settings.ticket)
        self.journal.take_over()
        self.remove_leftovers()
        self.remember(before=self.capture(self.profile), image_names={"database": self.profile_image()})
        self.facts = self.read_facts()
        self.record(old_image=self.profile_image(), new_image=self.new_image, facts=self.facts.to_json(),
                    old_volume=self.pointer.old_volume(self.client, self.db_container), new_volume=None)

    def profile_image(self) -> str:
        return self.client.containers.get(self.db_container).attrs["Config"]["Image"]

    def stage_check_new_image(self) -> None:
        """The new image is there, runs the expected major (newer than the installed one), ships every
        extension the cluster uses and a locale for every collation; the disks hold a second copy of
        the data next to the dumps."""
        image = self.new_image
        said = run(["docker", "run", "--rm", "--entrypoint", "postgres", image, "--version"], check=False, timeout=120)
        if said.returncode != 0:
            raise Problem(f"{image}: `postgres --version` failed ({(said.stderr or said.stdout).strip()[-200:]}); "
                          "build or pull the image first")
        new_major = pg_cluster.major_of(said.stdout)
        expected = pg_cluster.major_in_tag(image)
        if expected is not None and expected != new_major:
            raise Problem(f"{image} runs PostgreSQL {new_major}, its tag says {expected}")
        problems = pg_cluster.unsupported(self.facts, new_major, self.image_extensions(), self.image_locales())
        problems += self.space_problems()
        if problems:
            raise Problem(f"{image} cannot take this cluster over: {'; '.join(problems)}; nothing was changed")
        self.record(new_major=new_major, new_volume=pg_pointer.volume_name(self.profile.project, new_major))
        progress(f"{image}: PostgreSQL {new_major}; extensions, locales and free space fit")

    def image_extensions(self) -> set[str]:
        found = run(["docker", "run", "--rm", "--entrypoint", "find", self.new_image, "/usr/share", "/usr/local/share",
                     "-name", "*.control", "-path", "*/extension/*"], check=False, timeout=120).stdout
        return {Path(line).stem for line in found.split()}

    def image_locales(self) -> set[str] | None:
        listed = run(["docker", "run", "--rm", "--entrypoint", "locale", self.new_image, "-a"], check=False, timeout=120)
        return set(listed.stdout.split()) if listed.returncode == 0 else None  # no `locale`: not checked

    def space_problems(self) -> list[str]:
        """A second copy of the data on the engine's disk and the dumps (at most the data's size) in the
        backup folder; one requirement when both are the same file system."""
        with self.connect_to("postgres") as conn:
            data = int(conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0])
        docker_root = Path(self.client.info().get("DockerRootDir", "/var/lib/docker"))
        self.settings.backup_dir.mkdir(parents=True, exist_ok=True)
        needs = {self.settings.backup_dir: data}
        if docker_root.exists():
            if os.stat(docker_root).st_dev == os.stat(self.settings.backup_dir).st_dev:
                needs = {self.settings.backup_dir: 2 * data}
            else:
                needs[docker_root] = data
        return [f"{path} has {shutil.disk_usage(path).free / 2**20:.0f} MiB free, needs {need / 2**20:.0f} MiB"
                for path, need in needs.items() if shutil.disk_usage(path).free < need]

    def stage_dump(self) -> None:
        folder = self.settings.backup_dir / f"pg_major_{time.strftime('%Y%m%d_%H%M%S')}"
        folder.mkdir(mode=0o700, parents=True)
        self.record(dump_dir=str(folder))
        self.dumps = [self.dump_globals(folder / "globals.sql")]
        for database in self.facts.databases:
            destination = folder / f"{database}.dump"
            sha256, size, _ = backup.dump_database(self.db_container, self.db_user, database, destination)
            self.dumps.append(DumpFile(database, str(destination), sha256, size))
        for dump in self.dumps:
            self.verify_dump(dump)
        self.record(dumps=[vars(dump) for dump in self.dumps])
        progress(f"dumped roles and {len(self.dumps) - 1} databases to {folder} "
                 f"({sum(d.size for d in self.dumps) / 2**20:.1f} MiB), each read back and listed")

    def dump_globals(self, destination: Path) -> DumpFile:
        """Roles (with their password verifiers: the file is 0600) and tablespaces."""
        try:
            with os.fdopen(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                proc = subprocess.run(["docker", "exec", self.db_container, "pg_dumpall", "-U", self.db_user,
                                       "--globals-only"], stdout=out, stderr=subprocess.PIPE, timeout=600, **OWN_GROUP)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            destination.unlink(missing_ok=True)
            raise Problem(f"writing the roles' dump to {destination.parent} failed ({error.strerror}); nothing was "
                          "changed: free space there or pass another --backup-dir") from None
        if proc.returncode != 0:
            raise Problem(f"pg_dumpall --globals-only failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
        return DumpFile("", str(destination), backup.sha256_of(destination), destination.stat().st_size)

    def verify_dump(self, dump: DumpFile) -> None:
        path = Path(dump.path)
        if backup.sha256_of(path) != dump.sha256:
            raise Problem(f"{path} does not match the sha256 it was written with; nothing was changed")
        if not dump.database:
            if b"CREATE ROLE" not in path.read_bytes():
                raise Problem(f"{path} holds no role; nothing was changed")
            return
        listing = backup._pg_restore(self.db_container, self.db_user, path, "--list")
        if listing.returncode != 0:
            raise Problem(f"pg_restore --list cannot read {path}: {backup.last_line(listing.stderr)}")

    def stage_start_new(self) -> None:
        """The new image on a new volume, under the old container's name; the old volume stays as it is."""
        self.pointer.write_override(self.journal.data["pg_major"]["new_major"])
        self.pointer.compose_with_override().up("database", "--no-deps", timeout=int(READY_DEADLINE_S), wait=False)
        self.wait_database_ready("the new PostgreSQL")
        with self.connect_to("postgres") as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            checksums = conn.execute("SHOW data_checksums").fetchone()[0] == "on"
        if pg_cluster.major_of(version) != self.journal.data["pg_major"]["new_major"]:
            raise Problem(f"the started server is PostgreSQL {version}, not {self.journal.data['pg_major']['new_major']}")
        if checksums != self.facts.data_checksums:
            raise Problem(f"the new cluster has data checksums {'on' if checksums else 'off'}, the old one "
                          f"{'on' if self.facts.data_checksums else 'off'}; initialise it alike")

    def wait_database_ready(self, what: str) -> None:
        """Until the database container accepts connections; failed at once when it exits or restarts."""
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            container = self.client.containers.get(self.db_container)
            status, restarts = container.status, container.attrs.get("RestartCount", 0)
            if status in ("exited", "dead") or restarts:
                said = container.logs(tail=3).decode(errors="replace").strip().splitlines()
                raise Problem(f"{what} ({container.attrs['Config']['Image']}) did not start: container "
                              f"{status}, {restarts} restarts; it said: {said[-1][:200] if said else 'nothing'}")
            try:
                with self.connect_to("postgres") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise Problem(f"{what} did not accept connections within {READY_DEADLINE_S:.0f}s") from None
                time.sleep(0.25)

    def stage_restore(self) -> None:
        """Roles first (the bootstrap role exists already: only its attributes and password are set),
        then each database with ``--create`` (encoding, collation, owner and grants as dumped)."""
        with self.connect_to("postgres") as conn:
            existing = {name for (name,) in conn.execute("SELECT rolname::text FROM pg_roles")}
        globals_sql = pg_cluster.globals_for_new_cluster(Path(self.dumps[0].path).read_text(), existing)
        self.psql("postgres", stdin=globals_sql)
        for dump in self.dumps[1:]:
            self.psql("template1", f"DROP DATABASE IF EXISTS {backup.identifier(dump.database)} WITH (FORCE)")
            restored = backup._pg_restore(self.db_container, self.db_user, Path(dump.path), "-d", "template1",
                                          "--create", "--exit-on-error")
            if restored.returncode != 0:
                raise Problem(f"restoring {dump.database} into the new version failed "
                              f"({backup.last_line(restored.stderr)}); the old volume is untouched")
        run(["docker", "exec", self.db_container, "vacuumdb", "-U", self.db_user, "--all", "--analyze-in-stages",
             "--quiet"], timeout=3600)

    def psql(self, database: str, sql: str | None = None, stdin: str | None = None) -> None:
        run(["docker", "exec", "-i", self.db_container, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", self.db_user,
             "-d", database, *(["-c", sql] if sql else [])], stdin=stdin, timeout=600)

    def stage_compare(self) -> None:
        found_facts = self.read_facts()
        lines = pg_cluster.differences(self.facts, found_facts)
        found = self.capture(self.profile)
        reference = self.at_stop or self.before
        if found.revision != reference.revision:
            lines.append(f"alembic revision {found.revision}, recorded {reference.revision}")
        lines += state.schema_differences(reference, found)
        lines += [f"table {name} differs (rows or checksum)" for name in state.data_differences(reference, found)]
        self.journal.set("migrated", found.to_json())
        self.record(new_facts=found_facts.to_json(), compared_tables=len(found.tables))
        if lines:
            raise Problem(f"the new cluster differs from the old in {len(lines)} places: {'; '.join(lines[:5])}"
                          f"{' ...' if len(lines) > 5 else ''}")
        progress(f"new cluster as recorded: {len(found_facts.roles)} roles, {len(found.tables)} tables "
                 "(rows and checksums), schema, owners, extensions, encoding and collation")

    def stage_switch(self) -> None:
        # First: from this stage on a rollback keeps the new volume (as --resume and --plan take it).
        self.app_started_on_new = True
        self.record(pointer=self.pointer.point())
        self.new_profile = self.load_profile()
        from runbook import startup  # noqa: PLC0415 - as the start stage judges a new release
        from runbook.compose import Compose
        Compose.of(self.new_profile).up(timeout=self.settings.start_deadline_s, wait=False)
        startup.watch(self.client, self.new_profile, self.settings.base_url,
                      startup.Rule(deadline_s=self.settings.start_deadline_s))

    def stage_verify(self) -> None:
        super().stage_verify()
        said = run(["docker", "exec", self.db_container, "pg_dump", "--version"], timeout=60).stdout
        if pg_cluster.major_of(said) != self.journal.data["pg_major"]["new_major"]:
            raise Problem(f"the backups' pg_dump is {said.strip()}, not the new server's major")
        snapshot = backup.Snapshot(self.profile.db_conninfo())
        try:
            tables = state.capture(self.new_profile, self.client, snapshot.conn).tables
            scratch = f"{backup.SCRATCH_PREFIXES[0]}{os.getpid()}"
            record = backup.take(self.profile.install_dir, self.settings.backup_dir, self.db_container, self.db_user,
                                 self.db_name, label=f"{self.before.version}_pg{pg_cluster.major_of(said)}",
                                 restore_into=scratch, snapshot=snapshot)
        finally:
            snapshot.close()
        result = backup.verify(record, self.db_container, self.db_user, self.conninfo(), tables, full_restore=True)
        self.record(backup_after=record.to_json(), backup_after_verification=result, pg_dump=said.strip())

    def stage_finish(self) -> None:
        self.lock.release()
        kept_until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + self.settings.retention_days * 86400))
        old = self.journal.data["pg_major"]["old_volume"]
        self.record(old_volume_kept_until=kept_until)
        progress(f"PostgreSQL {self.facts.major} -> {self.journal.data['pg_major']['new_major']}: the old volume {old} "
                 f"is kept, untouched, until {kept_until}; `--component postgres --pg-rollback` goes back to it")
        self.journal.finish("UPGRADED")


# The stages in order, each calling its method (the inherited one for gate and drain_and_stop); what
# each changes, in --plan's words, is its title.
STAGES: tuple[Stage, ...] = (
    Stage.titled("gate", "pre-flight gate passed", "nothing", PgMajorUpgrade.stage_gate),
    Stage.titled("lock_and_record", "lock taken, database state and cluster facts recorded", "nothing",
                 PgMajorUpgrade.stage_lock_and_record),
    Stage.titled("check_new_image", "new image's major, extensions, locales and free space checked", "nothing",
                 PgMajorUpgrade.stage_check_new_image),
    Stage.titled("drain_and_stop", "queued work drained, app containers stopped", "containers",
                 PgMajorUpgrade.stage_drain_and_stop),
    Stage.titled("dump", "roles and every database dumped from the old server and verified", "containers",
                 PgMajorUpgrade.stage_dump),
    Stage.titled("start_new", "new version started on a new volume, the old one kept", "database",
                 PgMajorUpgrade.stage_start_new),
    Stage.titled("restore", "roles and databases restored into the new version, analyzed", "database",
                 PgMajorUpgrade.stage_restore),
    Stage.titled("compare", "roles, owners, extensions, encoding, schema and every table compared", "database",
                 PgMajorUpgrade.stage_compare),
    Stage.titled("switch", "installation pointed at the new image and volume, app started", "database",
                 PgMajorUpgrade.stage_switch),
    Stage.titled("verify", "post-flight checks; a backup taken and verified with the new pg_dump", "database",
                 PgMajorUpgrade.stage_verify),
    # Once the new version is verified a failure is not rolled back (--resume completes it), as the release's.
    Stage.titled("finish", "lock released, old volume named and kept", "nothing", PgMajorUpgrade.stage_finish,
                 rolled_back=False),
)
