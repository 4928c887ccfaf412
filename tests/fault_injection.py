"""A pytest plugin the project's tests load into an upgrade run (``-p tests.fault_injection``) to
break something for real at a chosen stage: ``--inject-full-backup-disk`` mounts a 64 KiB tmpfs
over the backup folder just before the backup stage, so pg_dump runs out of space mid-stream;
``--inject-corrupt-backup`` overwrites bytes in the middle of the verified dump just before the
checkout stage, as a failing disk or a careless operator would; ``--inject-lost-old-images`` removes
the old release's stopped app containers and their images just before the migrate stage, as a
`docker system prune` by someone else would; ``--inject-pause-before STAGE`` holds the run just
before STAGE starts, for a test to kill it at a known point."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from plugins.keys import UPGRADE_KEY
from plugins.options import OPTIONS_KEY
from runbook.upgrade import APP_SERVICES, Upgrade

MOUNTED_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--inject-full-backup-disk", action="store_true")
    parser.addoption("--inject-corrupt-backup", action="store_true")
    parser.addoption("--inject-pause-before", metavar="STAGE")
    parser.addoption("--inject-lost-old-images", action="store_true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("upgrade_stage")
    config = item.config
    if marker and marker.args[0] == config.getoption("inject_pause_before"):
        time.sleep(600)
    if marker and marker.args[0] == "checkout" and config.getoption("inject_corrupt_backup"):
        dump = Path(config.stash[UPGRADE_KEY].backup.dump)
        with dump.open("r+b") as handle:
            handle.seek(dump.stat().st_size // 2)
            handle.write(b"\0" * 4096)
    if marker and marker.args[0] == "migrate" and config.getoption("inject_lost_old_images"):
        remove_old_app_images(config.stash[UPGRADE_KEY])
    if not (marker and marker.args[0] == "backup" and config.getoption("inject_full_backup_disk")):
        return
    folder = str(config.stash[OPTIONS_KEY].backup_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], check=True)
    config.stash[MOUNTED_KEY] = folder


def remove_old_app_images(upgrade: Upgrade) -> None:
    """The recorded images of the old app services gone (the database keeps running on its own)."""
    before = upgrade.before
    containers = [name for service, name in before.containers.items() if service in APP_SERVICES]
    subprocess.run(["docker", "rm", "--force", *containers], check=True, capture_output=True)
    images = sorted({image for service, image in before.image_ids.items() if service in APP_SERVICES})
    subprocess.run(["docker", "rmi", "--force", *images], check=True, capture_output=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(MOUNTED_KEY, None)
    if folder:
        subprocess.run(["umount", folder], check=True)
