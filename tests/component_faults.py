"""Faults for the component upgrades, loaded into a suite run with ``-p tests.component_faults``:
``--inject-truncated-dump`` cuts the application database's dump in half just before the
PostgreSQL restore stage, so ``pg_restore`` into the new version creates the schema and part of
the data, then fails (a disk that lost the file's tail); ``--inject-full-dump-disk`` mounts a
64 KiB tmpfs over the backup folder just before the dump stage, so the dump runs out of space;
``--inject-redis-rewrite-and-open`` makes the new Redis rewrite its AOF (its base then in an RDB format
the old Redis cannot read) and drop its password just before the Redis upgrade's verify stage (a new
image whose configuration loses ``requirepass``), so going back must restore the saved files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from plugins.keys import UPGRADE_KEY
from plugins.options import OPTIONS_KEY

MOUNTED_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--inject-truncated-dump", action="store_true")
    parser.addoption("--inject-full-dump-disk", action="store_true")
    parser.addoption("--inject-redis-rewrite-and-open", action="store_true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("upgrade_stage")
    config = item.config
    if marker and marker.args[0] == "restore" and config.getoption("inject_truncated_dump"):
        run = config.stash[UPGRADE_KEY]
        dump = next(Path(d.path) for d in run.dumps if d.database == run.db_name)
        os.truncate(dump, dump.stat().st_size // 2)
    if marker and marker.args[0] == "dump" and config.getoption("inject_full_dump_disk"):
        folder = str(config.stash[OPTIONS_KEY].backup_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], check=True)
        config.stash[MOUNTED_KEY] = folder
    if marker and marker.args[0] == "verify" and config.getoption("inject_redis_rewrite_and_open"):
        rewrite_and_open(config.stash[UPGRADE_KEY].redis_container)


def rewrite_and_open(container: str) -> None:
    """The container's own REDISCLI_AUTH (set by the compose file) authenticates."""
    def cli(*argv: str) -> str:
        return subprocess.run(["docker", "exec", container, "redis-cli", *argv], capture_output=True, text=True,
                              check=True, timeout=60).stdout
    cli("BGREWRITEAOF")
    deadline = time.monotonic() + 60
    while not {"aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0"} <= set(cli("INFO", "persistence").split()) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    cli("CONFIG", "SET", "requirepass", "")


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(MOUNTED_KEY, None)
    if folder:
        subprocess.run(["umount", folder], check=True)
