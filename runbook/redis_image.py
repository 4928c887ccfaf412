"""Redis image upgrade (``--component redis --image IMAGE``): the new image on the SAME volume, the
procedure's "update the image, ``docker compose up -d redis``" made safe.

What must pause, and why: celery-beat and the worker stop first. beat would publish periodic tasks
into a broker that is going away; the worker holds prefetched and ETA tasks unacknowledged, and its
warm shutdown (``docker stop``'s SIGTERM) hands them back to their queue, so every message is in a
Redis list on disk before Redis stops, none in a process. The backend and frontend keep running (they
must not restart: their start times are verified); a request that enqueues during the swap gets an
error, not a silently lost message, as Redis first refuses writes (``CLIENT PAUSE WRITE``) while its
state is recorded and saved, then stops. The data stays in its volume; the backup is a copy of the
stopped container's data directory (RDB and AOF), verified by loading it into a throwaway container
of the OLD image and comparing its digest with the recorded one. The new image is pointed at through
a compose override named in ``.env`` (``runbook.pg_pointer``), so the operator's ``docker compose up
-d`` keeps it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
import docker.errors
import requests

from runbook import backup, celery_checks, containers, redis_state, service_checks, startup
from runbook.compose import Compose, stop_containers
from runbook.errors import Problem
from runbook.journal import Journal
from runbook.pg_pointer import Pointer
from runbook.profile import Profile
from runbook.shell import progress
from runbook.upgrade import Settings, Stage, Upgrade

DATA_DIR = "/data"
PAUSED_MS = 120_000  # the writes held while the state is recorded and saved; the stop ends it sooner
READY_DEADLINE_S = 60.0
PAUSED_SERVICES = ("celery-beat", "worker")  # beat first: nothing new is published while the worker drains
UNTOUCHED_SERVICES = ("database", "backend", "frontend")


class RedisPointer(Pointer):
    override_name = "docker-compose.redis-upgrade.yml"
    env_comment = "# COMPOSE_FILE set by openwatch-upgrade-suite: Redis runs from docker-compose.redis-upgrade.yml"

    def write_redis_override(self) -> None:
        self.write_override_text(
            "# Written by openwatch-upgrade-suite's Redis image upgrade; remove it (and COMPOSE_FILE in .env)\n"
            f"# to run the old image on the same volume again.\nservices:\n  redis:\n    image: {self.new_image}\n")


class RedisImageUpgrade(Upgrade):
    def __init__(self, profile: Profile, client: docker.DockerClient, settings: Settings, journal: Journal,
                 new_image: str) -> None:
        super().__init__(profile, client, settings, journal)
        self.new_image = new_image
        self.pointer = RedisPointer(profile.install_dir, profile.compose_files, new_image)
        self.redis_at_stop: redis_state.RedisState | None = None
        self.archive: Path | None = None

    # -- handles -------------------------------------------------------------------------------
    @property
    def redis_container(self) -> str:
        return self.profile.container("redis")

    @property
    def password(self) -> str:
        return self.profile.setting("REDIS_PASSWORD")

    def record(self, **fields: object) -> None:
        self.journal.set("redis", {**(self.journal.data.get("redis") or {}), **fields})

    def make_rollback(self):
        from runbook.redis_image_rollback import RedisRollback  # the rollback imports this module
        return RedisRollback(self)

    def read_redis(self) -> redis_state.RedisState:
        _, queues = celery_checks.worker_command(self.client, self.profile)
        lengths = celery_checks.queue_lengths(self.profile, queues)
        return redis_state.read(self.redis_container, self.password, self.profile.redactor, lengths)

    def started_at(self) -> dict[str, str]:
        """When the containers that must not restart started (a restart changes it)."""
        return {self.profile.container(service): self.client.containers.get(self.profile.container(service))
                .attrs["State"]["StartedAt"] for service in UNTOUCHED_SERVICES if service in self.profile.services}

    def paused_containers(self) -> list[str]:
        return [self.profile.container(service) for service in PAUSED_SERVICES if service in self.profile.services]

    def old_container_config(self) -> dict:
        """The recorded Redis container's command and environment (the password among them), for
        throwaway containers that must run as it does; passed through the API, never a command line."""
        config = self.client.containers.get(self.redis_container).attrs["Config"]
        return {"command": config.get("Cmd"), "environment": config.get("Env") or [], "network_mode": "none"}

    def volume(self) -> str:
        mounts = self.client.containers.get(self.redis_container).attrs.get("Mounts") or []
        found = [m["Name"] for m in mounts if m.get("Destination") == DATA_DIR and m.get("Type") == "volume"]
        if not found:
            raise Problem(f"{self.redis_container} keeps {DATA_DIR} in no named volume; the suite upgrades only that")
        return found[0]

    def throwaway(self, image: str, archive: Path | None, purpose: str):
        """A started container of ``image`` running as the installed Redis does, on no network and no
        volume, with ``archive`` (a data directory) unpacked into it first."""
        name = f"{self.profile.project}-redis-{purpose}"
        self.remove_container(name)
        container = self.client.containers.create(image, name=name, **self.old_container_config())
        if archive is not None:
            container.put_archive("/", archive.read_bytes())
        container.start()
        return container

    def remove_container(self, name: str) -> None:
        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    def wait_ready(self, container: str, what: str) -> None:
        """Until ``container``'s Redis answers PING with the password (loaded); failed at once when it
        exits or restarts (a crash loop)."""
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            found = self.client.containers.get(container)
            status, restarts = found.status, found.attrs.get("RestartCount", 0)
            if status in ("exited", "dead", "restarting") or restarts:
                said = found.logs(tail=3).decode(errors="replace").strip().splitlines()
                last = self.profile.redactor(said[-1])[:200] if said else "nothing"
                raise Problem(f"{what} ({found.attrs['Config']['Image']}) did not start: container {status}, "
                              f"{restarts} restarts; it said: {last}")
            answer = containers.exec_in(container, ["redis-cli", "ping"],
                                                       secret_env={"REDISCLI_AUTH": self.password})
            if answer.stdout.strip() == "PONG":
                return
            if time.monotonic() > deadline:
                raise Problem(f"{what} did not answer PING within {READY_DEADLINE_S:.0f}s")
            time.sleep(0.25)

    # -- stages --------------------------------------------------------------------------------
    def stage_lock_and_record(self) -> None:
        if "redis" not in self.profile.services:
            raise Problem("this installation runs no Redis (the job queue replaced it in April 2026); "
                          "there is no Redis image to upgrade")
        self.lock.acquire(self.settings.ticket)
        self.journal.take_over()
        for purpose in ("probe", "backup-check"):  # what a killed run left
            self.remove_container(f"{self.profile.project}-redis-{purpose}")
        self.remember(before=self.capture(self.profile))
        live = self.read_redis()
        self.record(old_image=self.client.containers.get(self.redis_container).attrs["Config"]["Image"],
                    new_image=self.new_image, volume=self.volume(), before=live.to_json(),
                    others_started_at=self.started_at())
        progress(f"Redis {live.version}: {live.keys} keys, queues {live.queues}")

    def stage_check_new_image(self) -> None:
        """The new image starts as the installed Redis does (its command, so its password), on an
        empty data directory, runs a newer version than the installed one (the one its tag names),
        and refuses a PING without the password."""
        probe = self.throwaway(self.new_image, None, "probe")
        try:
            self.wait_ready(probe.name, f"the new image {self.new_image}")
            version = redis_state.version_in(containers.exec_in(
                probe.name, ["redis-cli", "INFO", "server"], secret_env={"REDISCLI_AUTH": self.password}).stdout)
            service_checks.redis_requires_password(probe.name, self.password, self.profile.redactor)
        finally:
            self.remove_container(probe.name)
        old_version = self.journal.data["redis"]["before"]["version"]
        problem = redis_state.image_problem(old_version, version or "0", redis_state.version_in_tag(self.new_image))
        if problem:
            raise Problem(f"{self.new_image}: {problem}; nothing was changed")
        self.record(new_version=version)
        progress(f"{self.new_image}: Redis {version} starts with the installation's command and requires its password")

    def stage_pause_workers(self) -> None:
        stop_containers(self.client, self.paused_containers())

    def stage_record_and_stop(self) -> None:
        """Writes refused, the state recorded and saved, Redis stopped (its shutdown syncs the AOF)."""
        cli = ["redis-cli", "CLIENT", "PAUSE", str(PAUSED_MS), "WRITE"]
        paused = containers.exec_in(self.redis_container, cli, secret_env={"REDISCLI_AUTH": self.password})
        if paused.stdout.strip() != "OK":
            raise Problem(f"CLIENT PAUSE WRITE in {self.redis_container} answered {paused.stdout.strip()[:100]!r}")
        self.redis_at_stop = self.read_redis()
        self.record(at_stop=self.redis_at_stop.to_json())
        saved = containers.exec_in(self.redis_container, ["redis-cli", "SAVE"],
                                                  secret_env={"REDISCLI_AUTH": self.password}, timeout=600)
        if saved.stdout.strip() != "OK":
            raise Problem(f"SAVE in {self.redis_container} answered {saved.stdout.strip()[:100]!r}")
        stop_containers(self.client, [self.redis_container], timeout=60)
        progress(f"Redis stopped at {self.redis_at_stop.keys} keys, queues {self.redis_at_stop.queues}")

    def stage_backup(self) -> None:
        """The stopped container's data directory (RDB, AOF) as a tar, 0600, its sha256 read back."""
        folder = self.settings.backup_dir / f"redis_{time.strftime('%Y%m%d_%H%M%S')}"
        folder.mkdir(mode=0o700, parents=True)
        self.archive = folder / "data.tar"
        stream, _ = self.client.containers.get(self.redis_container).get_archive(DATA_DIR)
        with os.fdopen(os.open(self.archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            for chunk in stream:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha256 = backup.sha256_of(self.archive)
        files = redis_state.manifest(self.archive)
        if not files:
            raise Problem(f"{self.archive} holds no file of {DATA_DIR}; nothing was changed")
        self.record(backup={"path": str(self.archive), "sha256": sha256, "size": self.archive.stat().st_size,
                            "files": files})
        progress(f"Redis data copied to {self.archive} ({self.archive.stat().st_size / 2**20:.1f} MiB, "
                 f"{len(files)} files)")

    def stage_verify_backup(self) -> None:
        """The copy, loaded by the OLD image in a throwaway container, holds the recorded data."""
        recorded = self.journal.data["redis"]["backup"]
        if backup.sha256_of(self.archive) != recorded["sha256"]:
            raise Problem(f"{self.archive} does not match the sha256 it was written with")
        check = self.throwaway(self.journal.data["redis"]["old_image"], self.archive, "backup-check")
        try:
            self.wait_ready(check.name, "the backup loaded by the old image")
            loaded = redis_state.read(check.name, self.password, self.profile.redactor, self.redis_at_stop.queues)
        finally:
            self.remove_container(check.name)
        lines = redis_state.differences(self.redis_at_stop, loaded)
        if lines:
            raise Problem(f"the backup loaded by the old image differs from the recorded state: {'; '.join(lines[:5])}")

    def stage_start_new(self) -> None:
        """The new image on the same volume, under the same container name."""
        self.pointer.write_redis_override()
        self.pointer.compose_with_override().up("redis", "--no-deps", timeout=int(READY_DEADLINE_S), wait=False)
        self.wait_ready(self.redis_container, "the new Redis")

    def stage_compare(self) -> None:
        """Before any consumer runs: the new version, every key and queued message as recorded, and
        the password still required."""
        found = self.read_redis()
        self.record(after=found.to_json())
        if found.version != self.journal.data["redis"]["new_version"]:
            raise Problem(f"the started Redis is {found.version}, not {self.journal.data['redis']['new_version']}")
        lines = redis_state.differences(self.redis_at_stop, found)
        if lines:
            raise Problem(f"the new Redis differs from the recorded state: {'; '.join(lines[:5])}")
        service_checks.redis_requires_password(self.redis_container, self.password, self.profile.redactor)
        progress(f"Redis {found.version}: {found.keys} keys and queues {found.queues} as recorded; password required")

    def stage_switch(self) -> None:
        """``.env`` names the override, the worker and beat start again, and the whole app is judged."""
        self.record(pointer=self.pointer.point())
        self.new_profile = self.load_profile()
        services = [service for service in PAUSED_SERVICES if service in self.new_profile.services]
        Compose.of(self.new_profile).up("--no-deps", *services, timeout=self.settings.start_deadline_s, wait=False)
        startup.watch(self.client, self.new_profile, self.settings.base_url,
                      startup.Rule(deadline_s=self.settings.start_deadline_s))

    def stage_verify(self) -> None:
        new = self.new_profile
        self.verify_untouched()
        with requests.Session() as http:
            service_checks.backend_health(http, self.settings.base_url, new.health_dependencies,
                                          expected_version=self.before.version, install_dir=new.install_dir)
        service_checks.containers_healthy(self.client, new)
        service_checks.redis_answers(new)
        self.remember(after=self.capture(new))

    def verify_untouched(self) -> None:
        recorded = self.journal.data["redis"]["others_started_at"]
        restarted = sorted(name for name, at in self.started_at().items() if recorded.get(name) != at)
        if restarted:
            raise Problem(f"{', '.join(restarted)} restarted during a Redis image upgrade; only Redis, the worker "
                          "and celery-beat may")

    def stage_finish(self) -> None:
        self.lock.release()
        data = self.journal.data["redis"]
        progress(f"Redis {data['before']['version']} -> {data['new_version']} on {data['volume']}; the data before "
                 f"the upgrade is kept in {data['backup']['path']}")
        self.journal.finish("UPGRADED")


# The stages in order; what each changes, in --plan's words, is its title.
STAGES: tuple[Stage, ...] = (
    Stage.titled("gate", "pre-flight gate passed", "nothing", RedisImageUpgrade.stage_gate),
    Stage.titled("lock_and_record", "lock taken, database and Redis state recorded", "nothing",
                 RedisImageUpgrade.stage_lock_and_record),
    Stage.titled("check_new_image", "new image starts, runs a newer Redis and requires the password", "nothing",
                 RedisImageUpgrade.stage_check_new_image),
    Stage.titled("pause_workers", "celery-beat and the worker stopped (prefetched tasks back in their queues)",
                 "containers", RedisImageUpgrade.stage_pause_workers),
    Stage.titled("record_and_stop", "Redis writes paused, state recorded, saved, Redis stopped", "containers",
                 RedisImageUpgrade.stage_record_and_stop),
    Stage.titled("backup", "Redis data directory copied and its sha256 read back", "containers",
                 RedisImageUpgrade.stage_backup),
    Stage.titled("verify_backup", "the copy loaded by the old image holds the recorded data", "containers",
                 RedisImageUpgrade.stage_verify_backup),
    Stage.titled("start_new", "new image started on the same volume", "containers", RedisImageUpgrade.stage_start_new),
    Stage.titled("compare", "keys, queued messages and password compared with the recorded", "containers",
                 RedisImageUpgrade.stage_compare),
    Stage.titled("switch", "installation pointed at the new image, worker and beat started", "containers",
                 RedisImageUpgrade.stage_switch),
    Stage.titled("verify", "health, containers, password; database, backend and frontend not restarted", "containers",
                 RedisImageUpgrade.stage_verify),
    # Once the new version is verified a failure is not rolled back (--resume completes it), as the release's.
    Stage.titled("finish", "lock released, backup named", "nothing", RedisImageUpgrade.stage_finish,
                 rolled_back=False),
)
