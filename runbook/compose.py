"""Docker Compose operations on an installation (changes; the read-only side is in ``profile``)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import docker
import docker.errors

from runbook.profile import Profile, compose_command
from runbook.shell import CommandError, progress, run

ALEMBIC_INI_CANDIDATES = ("/app/backend/alembic.ini", "/openwatch/backend/alembic.ini")


class Compose:
    def __init__(self, install_dir: Path, files: Sequence[Path]) -> None:
        self.install_dir = install_dir
        self.files = tuple(files)

    @classmethod
    def of(cls, profile: Profile) -> Compose:
        return cls(profile.install_dir, profile.compose_files)

    def __call__(self, *args: str, timeout: float = 900, check: bool = True):
        __tracebackhide__ = True
        return run([*compose_command(self.install_dir, self.files), *args], timeout=timeout, check=check)

    def services(self) -> list[str]:
        return self("config", "--services", timeout=60).stdout.split()

    def image_names(self) -> dict[str, str]:
        """Image name per service as compose tags it (``<project>-<service>`` for built services)."""
        config = json.loads(self("config", "--format", "json", timeout=60).stdout)
        project = config.get("name", "openwatch")
        return {name: spec.get("image") or f"{project}-{name}" for name, spec in config["services"].items()}

    def build(self) -> float:
        started = time.monotonic()
        self("build", "--quiet", timeout=3600)
        return time.monotonic() - started

    def up(self, *services: str, timeout: int = 180, wait: bool = True) -> None:
        """Start (recreating changed containers), remove orphans, and with ``wait`` wait for healthy
        within ``timeout`` (without it the caller judges the start: ``runbook.startup``)."""
        waiting = ["--wait", "--wait-timeout", str(timeout)] if wait else []
        self("up", "--detach", "--no-build", "--remove-orphans", *waiting, *services, timeout=timeout + 120)

    def run_backend(self, *argv: str, timeout: float = 900, check: bool = True, workdir: str | None = None):
        """A one-off container of the checked-out release's backend image (never an old one)."""
        where = ["--workdir", workdir] if workdir else []
        return self("run", "--rm", "--no-deps", "-T", *where, "backend", *argv, timeout=timeout, check=check)

    def alembic_ini(self, client: docker.DockerClient) -> str:
        """Where this release's backend image keeps alembic.ini (the procedure names two different paths).
        Read from a created, never started, container of the image: no process runs for the lookup."""
        image = self.image_names()["backend"]
        container = client.containers.create(image, command=["true"])
        try:
            for candidate in ALEMBIC_INI_CANDIDATES:
                try:
                    stream, _ = container.get_archive(candidate)
                except docker.errors.NotFound:
                    continue
                for _ in stream:  # the file's tar, a few kB: read so the connection is free again
                    pass
                return candidate
        finally:
            container.remove(force=True)
        raise CommandError(["alembic.ini lookup"], 1, f"none of {', '.join(ALEMBIC_INI_CANDIDATES)} in {image}")

    def alembic(self, ini: str, *args: str, check: bool = True):
        """From the folder that holds alembic.ini, as Alembic's relative ``script_location`` expects
        (the real image's WORKDIR is /openwatch with the ini in /openwatch/backend: run from there,
        Alembic answers "Path doesn't exist: alembic")."""
        return self.run_backend("alembic", "-c", ini, *args, check=check, workdir=str(PurePosixPath(ini).parent))


def stop_containers(client: docker.DockerClient, names: Sequence[str], timeout: int = 20) -> list[str]:
    """Stop (never remove) the named containers that exist, all at once; a missing one (celery-beat
    in 1.0) is fine."""
    found = []
    for name in names:
        try:
            found.append(client.containers.get(name))
        except docker.errors.NotFound:
            continue
    if found:
        with ThreadPoolExecutor(max_workers=len(found)) as pool:
            list(pool.map(lambda container: container.stop(timeout=timeout), found))
    stopped = [container.name for container in found]
    progress(f"stopped {', '.join(stopped) or 'nothing'}")
    return stopped


def tag_images(client: docker.DockerClient, image_ids: dict[str, str], names: dict[str, str]) -> None:
    """Point each service's compose image name back at a recorded image id."""
    for service, image_id in image_ids.items():
        if service in names:
            repository, _, tag = names[service].partition(":")
            client.images.get(image_id).tag(repository, tag or "latest")
