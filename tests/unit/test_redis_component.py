"""The Redis image upgrade's plain logic: versions, what differs between two readings of a Redis,
the data directory's manifest, the compose pointer, the options and the stage model."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from plugins.components import component_problem
from runbook import components, redis_image, redis_image_rollback, redis_state


@pytest.mark.parametrize(("said", "version"), [
    ("Redis server v=8.0.2 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1c2fd1d35d0f2c3e", "8.0.2"),
    ("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n", "7.0.15"),
    ("Could not connect", None),
])
def test_version_in_server_banner_and_info(said: str, version: str | None) -> None:
    assert redis_state.version_in(said) == version


@pytest.mark.parametrize(("image", "version"), [
    ("openwatch-sandbox/redis:8", "8"), ("redis:7.2.5-alpine", "7.2.5"), ("registry:5000/redis:7.4", "7.4"),
    ("openwatch-sandbox/redis:8-fault-crashloop", "8"), ("redis:latest", None), ("redis", None),
])
def test_version_in_tag(image: str, version: str | None) -> None:
    assert redis_state.version_in_tag(image) == version


@pytest.mark.parametrize(("old", "new", "tag", "problem"), [
    ("7.0.15", "8.0.2", "8", None),
    ("7.0.15", "7.2.5", "7.2.5", None),
    ("7.0.15", "7.2.5", None, None),
    ("7.0.15", "7.0.15", "7", "it runs Redis 7.0.15, not newer than the installed 7.0.15"),
    ("7.0.15", "6.2.14", None, "it runs Redis 6.2.14, not newer than the installed 7.0.15"),
    ("7.0.15", "8.0.2", "7.4", "it runs Redis 8.0.2, its tag says 7.4"),
    ("7.0.15", "7.10.1", "7.1", "it runs Redis 7.10.1, its tag says 7.1"),  # numbers, not text
])
def test_image_problem(old: str, new: str, tag: str | None, problem: str | None) -> None:
    assert redis_state.image_problem(old, new, tag) == problem


def test_keyspace_databases() -> None:
    info = "# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=300\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n"
    assert redis_state.keyspace_databases(info) == ["0", "2"]
    assert redis_state.keyspace_databases("# Keyspace\r\n") == []


def state(databases: dict, queues: dict, version: str = "7.0.15") -> redis_state.RedisState:
    return redis_state.RedisState(version, databases, queues)


def test_differences_name_keys_contents_databases_and_queues_but_not_the_version() -> None:
    recorded = state({"0": {"keys": 3, "expiring": 0, "digest": "a"}, "1": {"keys": 1, "expiring": 0, "digest": "b"}},
                     {"default": 5, "scans": 0})
    same = redis_state.RedisState.from_json({**recorded.to_json(), "version": "8.0.2"})
    assert redis_state.differences(recorded, same) == []
    found = state({"0": {"keys": 3, "expiring": 0, "digest": "c"}, "2": {"keys": 1, "expiring": 0, "digest": "b"}},
                  {"default": 4, "scans": 0})
    assert redis_state.differences(recorded, found) == [
        "db0: 3 keys as recorded, but their contents differ", "db1 is gone", "db2 appeared",
        "queue default holds 4 messages, recorded 5"]
    fewer = state({**recorded.databases, "0": {"keys": 2, "expiring": 0, "digest": "a"}}, recorded.queues)
    assert redis_state.differences(recorded, fewer) == ["db0 has 2 keys, recorded 3"]
    assert recorded.keys == 4


def tar_of(tmp_path: Path, files: dict[str, bytes]) -> Path:
    archive = tmp_path / f"data-{len(list(tmp_path.iterdir()))}.tar"
    with tarfile.open(archive, "w") as tar:
        directory = tarfile.TarInfo("data")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return archive


def test_manifest_and_changed_files(tmp_path: Path) -> None:
    before = redis_state.manifest(tar_of(tmp_path, {"data/dump.rdb": b"REDIS0010", "data/appendonlydir/a.aof": b"x"}))
    assert set(before) == {"data/dump.rdb", "data/appendonlydir/a.aof"}
    assert redis_state.changed_files(before, dict(before)) == []
    after = redis_state.manifest(tar_of(tmp_path, {"data/dump.rdb": b"REDIS0012", "data/appendonlydir/a.aof": b"x",
                                                   "data/appendonlydir/b.aof": b"y"}))
    assert redis_state.changed_files(before, after) == ["data/appendonlydir/b.aof", "data/dump.rdb"]


def test_redis_pointer_names_its_own_override_and_restores_env(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / ".env").write_text("REDIS_PASSWORD=secret\n")
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("")
    pointer = redis_image.RedisPointer(tmp_path, (tmp_path / "docker-compose.yml",), "openwatch-sandbox/redis:8")
    pointer.write_redis_override()
    assert "image: openwatch-sandbox/redis:8" in pointer.override.read_text()
    assert "volumes" not in pointer.override.read_text()  # the same volume: only the image changes
    assert pointer.override_name in (tmp_path / ".git" / "info" / "exclude").read_text()
    recorded = pointer.point()
    assert recorded["compose_file"] == f"docker-compose.yml:{pointer.override_name}"
    pointer.unpoint(recorded["previous_compose_file_line"])
    assert (tmp_path / ".env").read_text() == "REDIS_PASSWORD=secret\n" and not pointer.override.exists()


class Options:
    def __init__(self, **given: object) -> None:
        self.given = given

    def getoption(self, name: str) -> object:
        return self.given.get(name)


@pytest.mark.parametrize(("given", "problem"), [
    ({"component": "redis", "image": "openwatch-sandbox/redis:8"}, None),
    ({"component": "redis"}, "--component redis needs --image (the new Redis image, e.g. openwatch-sandbox/redis:8)"),
    ({"component": "redis", "image": "r:8", "target": "v0.2.0"},
     "--component redis changes only the Redis image; do not combine it with --pg-rollback or --target"),
    ({"image": "openwatch-sandbox/redis:8"},
     "--image and --pg-rollback need --component postgres (--image also --component redis)"),
])
def test_redis_options(given: dict, problem: str | None) -> None:
    assert component_problem(Options(**given)) == problem


def test_redis_stages_pause_before_they_stop_and_roll_back_from_the_first_change() -> None:
    names = [stage.name for stage in components.stages_for("redis")]
    assert names[:3] == ["gate", "lock_and_record", "check_new_image"] and names[-1] == "finish"
    assert names.index("pause_workers") < names.index("record_and_stop") < names.index("start_new")
    assert names.index("backup") < names.index("verify_backup") < names.index("start_new") < names.index("compare")
    assert redis_image_rollback.CHANGED_FROM == names.index("pause_workers")
    assert all(stage.changes == "nothing" for stage in components.stages_for("redis")[:redis_image_rollback.CHANGED_FROM])
