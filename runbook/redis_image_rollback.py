"""Going back from a Redis image upgrade: the old image on the same volume, holding the data as
recorded at the stop. A newer Redis may have rewritten its files (an RDB or an AOF base in a format
the old one cannot read), so the volume is compared file by file with the verified copy and, where
anything differs, emptied and filled from it; then every key and queued message is compared with the
recorded state before the worker may consume one."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from shlex import quote

from runbook import backout, backup, redis_state, service_checks, startup
from runbook.compose import Compose, stop_containers
from runbook.errors import Problem
from runbook.redis_image import DATA_DIR, PAUSED_SERVICES, STAGES, RedisImageUpgrade
from runbook.rollback import VERIFY_RESTORED, Rollback, RollbackResult
from runbook.shell import progress
from runbook.upgrade import Stage

TIER = "old-image"
NAMES = [stage.name for stage in STAGES]
CHANGED_FROM = NAMES.index("pause_workers")
RESTORE_DATA = "put the recorded data back if the new version changed it"
COMPARE_REDIS = "compare keys and queued messages with the state at the stop"
IF_RECORDED = " (if it was recorded before the failure)"


def goes_back(failed_stage: str) -> bool:
    """Whether a failure in ``failed_stage`` has anything to undo: from the first stopped worker on."""
    return failed_stage in NAMES and NAMES.index(failed_stage) >= CHANGED_FROM


class RedisRollback(Rollback):
    upgrade: RedisImageUpgrade

    def run(self, failed_stage: str) -> RollbackResult:
        upgrade = self.upgrade
        if upgrade.before is None:
            return self.not_started()
        return self.go_back() if goes_back(failed_stage) else self.run_tier("none")

    def go_back(self) -> RollbackResult:
        upgrade = self.upgrade
        titles = steps(backed_up=bool(upgrade.journal.data["redis"].get("backup")),
                       recorded_at_stop=upgrade.redis_at_stop is not None)
        return self.go_back_by(TIER, "going back to the old Redis image",
                               [(title, partial(STEPS[title], self)) for title in titles])

    def stop_app(self) -> None:
        stop_containers(self.upgrade.client, self.upgrade.paused_containers())

    def stop_redis(self) -> None:
        stop_containers(self.upgrade.client, [self.upgrade.redis_container], timeout=60)

    def unpoint(self) -> None:
        recorded = (self.upgrade.journal.data["redis"].get("pointer") or {})
        self.upgrade.pointer.unpoint(recorded.get("previous_compose_file_line"))

    def restore_data(self) -> None:
        """The volume as the verified copy has it, when a file differs (compared from a fresh copy)."""
        upgrade = self.upgrade
        recorded = upgrade.journal.data["redis"]["backup"]
        archive = Path(recorded["path"])
        changed = self.changed_files(recorded["files"])
        upgrade.record(rollback_changed_files=changed)
        if not changed:
            progress("the Redis volume holds the recorded files; nothing to restore")
            return
        progress(f"the new version changed {', '.join(changed[:5])}; restoring {archive}")
        if backup.sha256_of(archive) != recorded["sha256"]:
            raise Problem(f"the backup {archive} no longer matches its sha256; restore it by hand from another copy")
        upgrade.client.containers.run(upgrade.journal.data["redis"]["old_image"], remove=True, user="0",
                                      entrypoint=["find", DATA_DIR, "-mindepth", "1", "-delete"], network_mode="none",
                                      volumes={upgrade.journal.data["redis"]["volume"]: {"bind": DATA_DIR}})
        upgrade.client.containers.get(upgrade.redis_container).put_archive("/", archive.read_bytes())
        left = self.changed_files(recorded["files"])
        if left:
            raise Problem(f"after the restore the Redis volume still differs from the backup in {', '.join(left[:5])}")

    def changed_files(self, recorded: dict[str, str]) -> list[str]:
        stream, _ = self.upgrade.client.containers.get(self.upgrade.redis_container).get_archive(DATA_DIR)
        with tempfile.NamedTemporaryFile(prefix="openwatch-redis-", suffix=".tar") as copy:
            for chunk in stream:
                copy.write(chunk)
            copy.flush()
            return redis_state.changed_files(recorded, redis_state.manifest(Path(copy.name)))

    def start_old_redis(self) -> None:
        """``compose up`` with the compose files as they were: the old image, the same volume."""
        upgrade = self.upgrade
        upgrade.pointer.compose_without_override().up("redis", "--no-deps", timeout=180, wait=False)
        upgrade.wait_ready(upgrade.redis_container, "the old Redis")

    def compare_redis(self) -> None:
        upgrade = self.upgrade
        found = upgrade.read_redis()
        upgrade.record(restored=found.to_json())
        if found.version != upgrade.journal.data["redis"]["before"]["version"]:
            raise Problem(f"Redis {found.version} runs, recorded {upgrade.journal.data['redis']['before']['version']}")
        lines = redis_state.differences(upgrade.redis_at_stop, found)
        if lines:
            raise Problem(f"Redis differs from the state at the stop: {'; '.join(lines[:5])}")
        service_checks.redis_requires_password(upgrade.redis_container, upgrade.password, upgrade.profile.redactor)

    def start_old(self) -> None:
        upgrade = self.upgrade
        current = self.current_profile()
        services = [service for service in PAUSED_SERVICES if service in current.services]
        deadline = upgrade.settings.start_deadline_s
        Compose.of(current).up("--no-deps", *services, timeout=deadline, wait=False)
        startup.watch(upgrade.client, current, upgrade.settings.base_url, startup.Rule(deadline_s=deadline))

    def leave_stopped_safe(self, result: RollbackResult) -> None:
        self.stop_app_if_it_can()
        data = self.upgrade.journal.data.get("redis") or {}
        archive = (data.get("backup") or {}).get("path", "<the Redis backup's data.tar>")
        image, volume = data.get("old_image"), data.get("volume")
        result.manual_steps = [
            f"cd {quote(str(self.install_dir))}",
            f"rm -f {self.upgrade.pointer.override_name}   # and the COMPOSE_FILE line after "
            f"'{self.upgrade.pointer.env_comment}' in .env",
            f"docker stop {self.upgrade.redis_container}",
            f"docker run --rm -u 0 -v {volume}:{DATA_DIR} --entrypoint find {image} {DATA_DIR} -mindepth 1 -delete",
            f"docker cp - {self.upgrade.redis_container}:/ < {quote(str(archive))}",
            "docker compose up -d redis && docker compose up -d   # then: pytest suites/postflight",
        ]


# Going back, step by step (each title as the journal, the report and --plan print it), and what it runs.
STEPS: dict[str, Callable[[RedisRollback], None]] = {
    "stop the worker and celery-beat": RedisRollback.stop_app,
    "stop Redis": RedisRollback.stop_redis,
    "point the installation back at the old image": RedisRollback.unpoint,
    RESTORE_DATA: RedisRollback.restore_data,
    "start the old Redis on its volume": RedisRollback.start_old_redis,
    COMPARE_REDIS: RedisRollback.compare_redis,
    "start the worker and celery-beat and wait healthy": RedisRollback.start_old,
    VERIFY_RESTORED: RedisRollback.verify_restored,
    "database, backend and frontend not restarted": lambda rollback: rollback.upgrade.verify_untouched(),
}


def steps(backed_up: bool, recorded_at_stop: bool | None) -> list[str]:
    """The steps back: the data put back only once a copy of it was taken, the keys compared only with
    a recorded state at the stop (``None``: not known ahead, listed with its condition)."""
    titles = [title for title in STEPS if title != RESTORE_DATA or backed_up]
    if recorded_at_stop is None:
        return [title + IF_RECORDED if title == COMPARE_REDIS else title for title in titles]
    return [title for title in titles if title != COMPARE_REDIS or recorded_at_stop]


def planned(stage: Stage, revision: str) -> backout.Backout:
    """For ``--plan``: what :meth:`RedisRollback.run` does after a failure in ``stage``. The backup
    stage records its copy last, once whole; record_and_stop records the state at the stop once writes
    are paused, so a failure in it may come before or after that."""
    if not goes_back(stage.name):
        return backout.nothing_changed(revision)
    position, recording = NAMES.index(stage.name), NAMES.index("record_and_stop")
    recorded = None if position == recording else position > recording
    return backout.Backout(TIER, "the old image on the same volume, with the data as recorded at the stop",
                           steps(backed_up=position > NAMES.index("backup"), recorded_at_stop=recorded))
