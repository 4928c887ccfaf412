"""Which PostgreSQL image and volume the installation runs, changed without editing its compose file.

A compose file of the suite's own (``docker-compose.postgres-upgrade.yml``, git-ignored through
``.git/info/exclude``) gives the ``database`` service the new image and a new named volume at the
data directory's path (Compose merges a service's volumes by their target, so it replaces the old
mount); ``COMPOSE_FILE`` in ``.env`` adds it to the files Compose reads by default, so the operator's
plain ``docker compose up -d`` keeps running the new version. The real OpenWatch's compose file
(volume ``postgres_data``, ``image: postgres:15.14-alpine``) and its override are read unchanged.
Going back removes both again: the old image on the old volume, which nothing has written to.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import docker
import docker.errors

from runbook import profile as profiles
from runbook.compose import Compose
from runbook.envfile import parse_env

OVERRIDE = "docker-compose.postgres-upgrade.yml"
DATA_DIR = "/var/lib/postgresql/data"
ENV_COMMENT = "# COMPOSE_FILE set by openwatch-upgrade-suite: PostgreSQL runs from " + OVERRIDE


def volume_key(new_major: int) -> str:
    return f"postgres_data_pg{new_major}"


def volume_name(project: str, new_major: int) -> str:
    """The name Compose gives the volume (``<project>_<key>``)."""
    return f"{project}_{volume_key(new_major)}"


class Pointer:
    """Points one service at a new image through a compose file of the suite's own; this class the
    PostgreSQL database (a new volume too), ``runbook.redis_image.RedisPointer`` Redis."""

    override_name = OVERRIDE
    env_comment = ENV_COMMENT

    def __init__(self, install_dir: Path, compose_files: tuple[Path, ...], new_image: str) -> None:
        self.install_dir = install_dir
        self.compose_files = tuple(path for path in compose_files if path.name != self.override_name)
        self.new_image = new_image

    @property
    def override(self) -> Path:
        return self.install_dir / self.override_name

    @staticmethod
    def old_volume(client: docker.DockerClient, container: str) -> str:
        mounts = client.containers.get(container).attrs.get("Mounts") or []
        found = [m.get("Name") for m in mounts if m.get("Destination") == DATA_DIR and m.get("Type") == "volume"]
        if not found:
            raise ValueError(f"{container} keeps {DATA_DIR} in no named volume; the suite upgrades only a named volume")
        return found[0]

    def write_override(self, new_major: int) -> None:
        key = volume_key(new_major)
        text = (f"# Written by openwatch-upgrade-suite's PostgreSQL major upgrade; remove it (and COMPOSE_FILE in\n"
                f"# .env) to run the old version on its old volume again.\n"
                f"services:\n  database:\n    image: {self.new_image}\n    volumes:\n      - {key}:{DATA_DIR}\n"
                f"volumes:\n  {key}: {{}}\n")
        self.write_override_text(text)

    def write_override_text(self, text: str) -> None:
        """The override file, git-ignored so the pre-flight's "no local changes" check stays quiet."""
        self.override.write_text(text)
        exclude = self.install_dir / ".git" / "info" / "exclude"
        if exclude.parent.is_dir() and self.override_name not in exclude.read_text(errors="replace").split():
            with exclude.open("a") as handle:
                handle.write(f"{self.override_name}\n")

    def compose_with_override(self) -> Compose:
        return Compose(self.install_dir, (*self.compose_files, self.override))

    def compose_without_override(self) -> Compose:
        return Compose(self.install_dir, self.compose_files)

    def env_path(self) -> Path:
        return self.install_dir / ".env"

    def point(self) -> dict:
        """``COMPOSE_FILE`` in ``.env``: the files Compose read by default, then the override. Returns
        the previous ``COMPOSE_FILE`` line (None when there was none), which holds no secret."""
        text = self.env_path().read_text()
        env = parse_env(text)
        defaults = [path for path in profiles.default_compose_files(self.install_dir, env, environ={})
                    if path.name != self.override_name]
        listed = [os.path.relpath(path, self.install_dir) for path in defaults] + [self.override_name]
        previous = next((line for line in text.splitlines() if re.match(r"\s*(export\s+)?COMPOSE_FILE\s*=", line)), None)
        kept = [line for line in text.splitlines() if line != previous]
        separator = str(env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep)
        self.write_env(kept + [self.env_comment, f"COMPOSE_FILE={separator.join(listed)}"])
        return {"previous_compose_file_line": previous, "compose_file": separator.join(listed)}

    def unpoint(self, previous_line: str | None) -> None:
        """``.env`` and the compose files as they were before :meth:`point` (idempotent)."""
        if self.env_path().exists():
            lines = self.env_path().read_text().splitlines()
            ours = [i for i, line in enumerate(lines) if line == self.env_comment]
            if ours:
                index = ours[0]
                del lines[index:index + 2]  # the comment and the COMPOSE_FILE line after it
                if previous_line is not None:
                    lines.append(previous_line)
                self.write_env(lines)
        self.override.unlink(missing_ok=True)

    def write_env(self, lines: list[str]) -> None:
        """Atomically, keeping the file's mode (it holds secrets)."""
        path = self.env_path()
        mode = path.stat().st_mode & 0o777
        temporary = path.with_name(".env.openwatch-upgrade.tmp")
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


def remove_volume(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name).remove()
    except docker.errors.NotFound:
        return False
    return True
