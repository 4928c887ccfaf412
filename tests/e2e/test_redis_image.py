"""Redis 7 -> 8 by the suite (``--component redis --image openwatch-sandbox/redis:8``), for real on the
sandbox: seeded keys in two databases and Celery tasks queued with an ETA (held by the worker, handed
back to their queue when it stops) survive, read here another way than the suite reads them; the
password is still required; the database, backend and frontend are not restarted. A new image that
crash-loops on the installation's data, and a new Redis that rewrote its files (in a format Redis 7
cannot read) and then failed verification, end on the old image with the same keys and tasks."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook import redis_image, redis_image_rollback
from runbook.redis_image import RedisPointer
from sandbox import images
from sandbox.installation import Installation
from tests.sandbox_state import engine_and_files, journal, snapshot
from tests.suite_runner import run_suite

pytestmark = [pytest.mark.component, pytest.mark.slow]
NEW_IMAGE = "openwatch-sandbox/redis:8"
OLD_IMAGE = "openwatch-sandbox/redis:7"
UNTOUCHED = ("openwatch-db", "openwatch-backend", "openwatch-frontend")
SEEDED = {  # database -> key -> (write command, read command)
    "0": {"suite:string": (["SET", "suite:string", "value \u00e9"], ["GET"]),
          "suite:list": (["RPUSH", "suite:list", "a", "b", "c"], ["LRANGE", "0", "-1"]),
          "suite:hash": (["HSET", "suite:hash", "f1", "1", "f2", "2"], ["HGETALL"]),
          "suite:zset": (["ZADD", "suite:zset", "1.5", "m1", "2", "m2"], ["ZRANGE", "0", "-1", "WITHSCORES"]),
          "suite:volatile": (["SET", "suite:volatile", "kept", "EX", "86400"], ["GET"])},
    "1": {"suite:set": (["SADD", "suite:set", "x", "y", "z"], ["SMEMBERS"])},
}
QUEUED_TASKS = 5
SEND_WITH_ETA = """
import json, sys
from celery.app.utils import find_app
app = find_app("app.worker")
print(json.dumps([app.send_task("celery.accumulate", args=[i], queue="default", countdown=3600).id
                  for i in range(int(sys.argv[1]))]))
"""
SCHEDULED = """
import json
from celery.app.utils import find_app
replies = find_app("app.worker").control.inspect(timeout=2).scheduled() or {}
print(json.dumps(sorted(task["request"]["id"] for tasks in replies.values() for task in tasks)))
"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def redis_cli(database: str, *argv: str) -> list[str]:
    """The container's own REDISCLI_AUTH (set by the compose file) authenticates."""
    return docker("exec", "openwatch-redis", "redis-cli", "-n", database, *argv).splitlines()


def seeded_values() -> dict:
    return {f"{database}/{key}": sorted(redis_cli(database, read[0], key, *read[1:])) if read[0] in ("SMEMBERS", "HGETALL")
            else redis_cli(database, read[0], key, *read[1:])
            for database, keys in SEEDED.items() for key, (_, read) in keys.items()}


def started_at() -> dict[str, str]:
    return {name: docker("inspect", name, "--format", "{{.State.StartedAt}}") for name in UNTOUCHED}


def scheduled_task_ids(expected: int) -> list[str]:
    """The ETA tasks the worker holds, once it holds ``expected`` of them (bounded: 60 s)."""
    deadline, found = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        said = subprocess.run(["docker", "exec", "openwatch-worker", "python3", "-c", SCHEDULED], capture_output=True,
                              text=True, timeout=60)
        found = json.loads(said.stdout.strip().splitlines()[-1]) if said.returncode == 0 and said.stdout.strip() else []
        if len(found) >= expected:
            return found
        time.sleep(1)
    return found


@pytest.fixture
def seeded(baseline: Installation) -> Iterator[tuple[Installation, dict, list[str]]]:
    """The sandbox on Redis 7 with seeded keys and tasks held for an ETA; after the test, back on
    Redis 7 with an empty volume (one Redis 8 wrote cannot be read by 7)."""
    images.ensure_component_images()
    assert docker("inspect", "openwatch-redis", "--format", "{{.Config.Image}}") == OLD_IMAGE
    for database, keys in SEEDED.items():
        for write, _ in keys.values():
            redis_cli(database, *write)
    said = docker("exec", "openwatch-worker", "python3", "-c", SEND_WITH_ETA, str(QUEUED_TASKS))
    task_ids = sorted(json.loads(said.splitlines()[-1]))
    assert scheduled_task_ids(QUEUED_TASKS) == task_ids
    try:
        yield baseline, seeded_values(), task_ids
    finally:
        RedisPointer(baseline.directory, (), NEW_IMAGE).unpoint(None)
        subprocess.run(["docker", "rm", "--force", "openwatch-redis"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "openwatch_redis_data"], capture_output=True)
        baseline.compose("up", "--detach", "--no-deps", "redis")


def measured(data: dict) -> str:
    """Stage, downtime and rollback seconds of the run, for the JUnit report (numbers, not assertions)."""
    return json.dumps({"stages": {stage["name"]: stage["seconds"] for stage in data["stages"]},
                       "downtime": {name: value for name, value in (data.get("downtime") or {}).items()
                                    if name.startswith("downtime_")},
                       "rollback_s": sum(a["seconds"] for a in (data.get("rollback") or {}).get("actions", []))})


def upgrade(pytester: pytest.Pytester, install: Installation, image: str, *extra: str):
    return run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--component", "redis",
                     "--image", image, "--ignore-maintenance", *extra)


def redis_version() -> str:
    return next(line.split(":", 1)[1] for line in redis_cli("0", "INFO", "server") if line.startswith("redis_version:"))


def assert_password_required() -> None:
    anonymous = subprocess.run(["docker", "exec", "-e", "REDISCLI_AUTH=", "openwatch-redis", "redis-cli", "PING"],
                               capture_output=True, text=True, timeout=30)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr


def test_redis_8_keeps_keys_and_queued_tasks(pytester: pytest.Pytester, seeded: tuple[Installation, dict, list[str]],
                                            record_property) -> None:
    install, values, task_ids = seeded
    database, untouched = snapshot(install), started_at()
    upgraded = upgrade(pytester, install, NEW_IMAGE)
    assert upgraded.ret == 0, upgraded.output[-3000:]
    data = journal(install)
    record_property("measured", measured(data))
    assert data["outcome"] == "UPGRADED"
    assert docker("inspect", "openwatch-redis", "--format", "{{.Config.Image}}") == NEW_IMAGE
    assert redis_version().startswith("8.")
    assert seeded_values() == values
    redis = data["redis"]
    assert redis["at_stop"]["queues"]["default"] == QUEUED_TASKS  # handed back by the stopped worker
    assert redis["after"]["databases"] == redis["at_stop"]["databases"]
    assert redis["after"]["queues"] == redis["at_stop"]["queues"]
    assert scheduled_task_ids(QUEUED_TASKS) == task_ids  # the worker holds the same tasks again
    assert_password_required()
    assert started_at() == untouched
    assert snapshot(install) == database
    assert install.health().json()["status"] == "healthy"
    assert Path(redis["backup"]["path"]).stat().st_mode & 0o777 == 0o600
    # The operator's own `docker compose up -d` keeps the new image (COMPOSE_FILE in .env).
    install.compose("up", "--detach", "--no-build", "--no-deps", "redis")
    assert docker("inspect", "openwatch-redis", "--format", "{{.Config.Image}}") == NEW_IMAGE


def test_plan_describes_the_redis_upgrade_and_changes_nothing(pytester: pytest.Pytester,
                                                              seeded: tuple[Installation, dict, list[str]]) -> None:
    install, values, task_ids = seeded
    database, around = snapshot(install), engine_and_files(install)
    run = upgrade(pytester, install, NEW_IMAGE, "--plan")
    assert run.ret == 0, run.output[-3000:]
    assert run.outcomes == {"test_plan": "passed"}, run.outcomes
    [header] = [line for line in run.output.splitlines() if "PLAN (nothing was changed)" in line]
    assert (f"PLAN (nothing was changed): upgrade the redis component of {install.directory} from {OLD_IMAGE} to "
            f"{NEW_IMAGE}") in header, header
    assert re.findall(r"^\s+\d+\. (\w+): ", run.output, re.MULTILINE) == [stage.name for stage in redis_image.STAGES]
    assert "      changes: celery-beat and the worker stopped (prefetched tasks back in their queues)" in run.output
    assert "      if it fails: rollback tier old-image: the old image on the same volume" in run.output
    after_the_copy = "; ".join(redis_image_rollback.steps(backed_up=True, recorded_at_stop=True))
    assert f"      rollback actions: {after_the_copy}\n" in run.output
    plan = json.loads(run.properties["test_plan"]["plan"])
    assert plan["component"] == "redis" and plan["installed"] == OLD_IMAGE
    html = Path(run.bundle["artifacts"]["html"]).read_text()
    assert 'id="plan"' in html and "record_and_stop" in html and redis_image_rollback.RESTORE_DATA in html
    # Nothing changed: no container created (no probe), recreated or restarted (the worker still holds its ETA
    # tasks), no volume, no file (journal, lock, backup, compose override); every key and the database as they were.
    assert engine_and_files(install) == around
    assert scheduled_task_ids(QUEUED_TASKS) == task_ids
    assert seeded_values() == values
    assert snapshot(install) == database
    assert docker("inspect", "openwatch-redis", "--format", "{{.Config.Image}}") == OLD_IMAGE
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


@pytest.mark.parametrize(("fault", "args", "failed_stage", "files_restored"), [
    ("the new image crash-loops on the data", ["--image", "openwatch-sandbox/redis:8-fault-crashloop"], "start_new",
     False),
    ("the new Redis rewrote its AOF and dropped its password", ["-p", "tests.component_faults",
                                                                 "--inject-redis-rewrite-and-open"], "verify", True),
])
def test_fault_ends_on_the_old_image_as_recorded(pytester: pytest.Pytester, seeded: tuple[Installation, dict, list[str]],
                                                 record_property, fault: str, args: list[str], failed_stage: str,
                                                 files_restored: bool) -> None:
    install, values, task_ids = seeded
    database, untouched = snapshot(install), started_at()
    image = args[1] if args[0] == "--image" else NEW_IMAGE
    failed = upgrade(pytester, install, image, *([] if args[0] == "--image" else args))
    assert failed.outcomes[f"test_stage[{failed_stage}]"] == "failed", (fault, failed.outcomes)
    data = journal(install)
    record_property("measured", measured(data))
    assert data["outcome"] == "ROLLED BACK (old-image)", data["rollback"]
    assert bool(data["redis"]["rollback_changed_files"]) is files_restored  # the saved files put back, or none
    assert docker("inspect", "openwatch-redis", "--format", "{{.Config.Image}}") == OLD_IMAGE
    assert redis_version().startswith("7.0.")
    assert seeded_values() == values
    assert data["redis"]["restored"]["databases"] == data["redis"]["at_stop"]["databases"]
    assert scheduled_task_ids(QUEUED_TASKS) == task_ids
    assert_password_required()
    assert started_at() == untouched
    assert snapshot(install) == database
    assert install.health().json()["status"] == "healthy"
    assert not (install.directory / RedisPointer.override_name).exists() and "COMPOSE_FILE" not in install.env
    assert not (install.directory / ".openwatch-upgrade.lock").exists()
