"""Create, drive and tear down a sandbox OpenWatch installation.

An installation is a clone of the sandbox origin at a release, with a generated ``.env``,
images built, the database migrated and seeded, and every service healthy: what an operator
has in ``/opt/openwatch`` after following the install guide.
"""

from __future__ import annotations

import re
import secrets
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from runbook import envfile
from runbook.redaction import Secret
from sandbox import images, releases
from sandbox.seed import SEED_REVISION, SeedSize, seed
from runbook.shell import CommandError, progress, run

DEFAULT_DIR = Path("/opt/openwatch")
ALEMBIC_INI = "/app/backend/alembic.ini"
AUDIT_USER = "audit"
PLACEHOLDER = "change-me"
APP_SERVICES = ("frontend", "backend", "worker", "celery-beat")
CONTAINERS = ("openwatch-db", "openwatch-redis", "openwatch-backend", "openwatch-worker",
              "openwatch-celery-beat", "openwatch-frontend")


@dataclass(frozen=True)
class Ports:
    postgres: int = 5432
    backend: int = 8000
    frontend: int = 3000


class Installation:
    """Operations on one installation directory (the test bed's view, not the suite's)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def env(self) -> dict[str, str]:
        return parse_env(self.directory / ".env")

    @property
    def version(self) -> str:
        return (self.directory / "VERSION").read_text().strip()

    def git(self, *args: str, check: bool = True):
        return run(["git", *args], cwd=self.directory, check=check)

    def compose(self, *args: str, check: bool = True, timeout: float = 900):
        return run(["docker", "compose", *args], cwd=self.directory, check=check, timeout=timeout)

    def checkout(self, tag: str) -> None:
        """What the procedure means by step 1: fetch the tags and check the release out."""
        self.git("fetch", "--quiet", "--tags", "origin")
        self.git("checkout", "--quiet", "--detach", tag)

    def build(self) -> None:
        started = time.monotonic()
        self.compose("build", "--quiet")
        progress(f"{self.directory}: images for {self.version} built in {time.monotonic() - started:.0f}s")

    def services(self) -> list[str]:
        return self.compose("config", "--services").stdout.split()

    def up(self, *services: str, wait: bool = True, timeout: int = 180) -> None:
        """Start services and, with ``wait``, until compose reports them healthy (or running, without a check).

        Orphans (services an older release had, like celery-beat before 1.0.0) are removed.
        """
        waiting = ["--wait", "--wait-timeout", str(timeout)] if wait else []
        self.compose("up", "--detach", "--remove-orphans", *waiting, *services, timeout=timeout + 60)

    def set_env(self, name: str, value: str) -> None:
        """Add or replace one ``.env`` variable (what an operator does for a new required setting)."""
        env_file = self.directory / ".env"
        lines = [line for line in env_file.read_text().splitlines() if not line.startswith(f"{name}=")]
        env_file.write_text("\n".join([*lines, f"{name}={value}"]) + "\n")

    def alembic(self, *args: str, check: bool = True):
        """Alembic with the image of the checked-out release (never the old one)."""
        return self.compose("run", "--rm", "--no-deps", "-T", "backend", "alembic", "-c", ALEMBIC_INI, *args,
                            check=check)

    def current_revision(self) -> str | None:
        output = self.alembic("current").stdout
        found = re.findall(r"^(\S+)(?: \(head\))?$", output, flags=re.MULTILINE)
        return found[-1] if found else None

    def heads(self) -> list[str]:
        return re.findall(r"^(\S+) \(head\)", self.alembic("heads").stdout, flags=re.MULTILINE)

    @property
    def ports(self) -> Ports:
        """The 127.0.0.1 ports it publishes (the sandbox's compose files read them from ``.env``)."""
        env, default = self.env, Ports()
        return Ports(int(env.get("POSTGRES_PORT", default.postgres)), int(env.get("BACKEND_PORT", default.backend)),
                     int(env.get("FRONTEND_PORT", default.frontend)))

    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self.ports.postgres, user="openwatch",
            dbname="openwatch", password=self.env["POSTGRES_PASSWORD"],
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), connect_timeout=5, autocommit=True)

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.backend}"

    @property
    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.frontend}"

    def health(self) -> requests.Response:
        return requests.get(f"{self.backend_url}/health", timeout=5)

    def token(self) -> str:
        env = self.env
        response = requests.post(
            f"{self.backend_url}/api/auth/login",
            json={"username": env["OPENWATCH_AUDIT_USER"], "password": env["OPENWATCH_AUDIT_PASSWORD"]},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def prepare_env(self, tag: str) -> list[str]:
        """Add the variables ``tag``'s ``.env.example`` has and ``.env`` lacks, secrets generated."""
        example = self.git("show", f"{tag}:.env.example").stdout
        wanted = parse_env_text(render_env(example, Ports()))
        present = self.env
        added = [name for name in wanted if name not in present]
        for name in added:
            self.set_env(name, wanted[name])
        return added

    def save_database(self, dump: Path) -> None:
        """``pg_dump -Fc`` of the running database, streamed to ``dump`` (readable by its owner only)."""
        with os.fdopen(os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            proc = subprocess.run(["docker", "exec", "openwatch-db", "pg_dump", "-U", "openwatch", "-d", "openwatch",
                                   "-Fc"], stdout=out, stderr=subprocess.PIPE, text=False, timeout=600)
        if proc.returncode != 0:
            raise CommandError(proc.args, proc.returncode, proc.stderr.decode(errors="replace"))

    def restore_database(self, dump: Path) -> None:
        """Replace the database with ``dump``; the app services are stopped first and left stopped."""
        self.compose("stop", *[service for service in APP_SERVICES if service in self.services()])
        psql = ["docker", "exec", "openwatch-db", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "openwatch", "-d", "postgres"]
        run([*psql, "-c", "DROP DATABASE IF EXISTS openwatch WITH (FORCE)"])
        run([*psql, "-c", "CREATE DATABASE openwatch OWNER openwatch"])
        with dump.open("rb") as source:
            proc = subprocess.run(["docker", "exec", "-i", "openwatch-db", "pg_restore", "-U", "openwatch",
                                   "-d", "openwatch", "--no-owner", "--exit-on-error"],
                                  stdin=source, capture_output=True, timeout=600)
        if proc.returncode != 0:
            raise CommandError(proc.args, proc.returncode, proc.stderr.decode(errors="replace"))

    def reset(self, tag: str, dump: Path) -> None:
        """Back to ``tag`` with the data of ``dump``, healthy: the fast way between test scenarios."""
        self.restore_database(dump)
        self.checkout(tag)
        self.build()
        self.up()

    def destroy(self) -> None:
        """Remove containers, volumes and networks of this installation, then the directory."""
        if (self.directory / "docker-compose.yml").exists():
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
        # Containers of a release whose compose file no longer lists them (an interrupted run).
        leftovers = [name for name in CONTAINERS if run(["docker", "inspect", name], check=False).returncode == 0]
        if leftovers:
            run(["docker", "rm", "--force", "--volumes", *leftovers])
        shutil.rmtree(self.directory, ignore_errors=True)


def parse_env(path: Path) -> dict[str, str]:
    return parse_env_text(path.read_text())


def parse_env_text(text: str) -> dict[str, str]:
    """The test bed needs the values in clear (it generated them); the suite keeps them wrapped."""
    return {name: value.reveal() if isinstance(value, Secret) else value
            for name, value in envfile.parse_env(text).items()}


def render_env(example: str, ports: Ports, subnet: str | None = None) -> str:
    """``.env`` from a release's ``.env.example``: placeholders become generated secrets.

    ``subnet`` sets ``OPENWATCH_SUBNET`` (the compose network's), for a sandbox beside another one.
    """
    overrides = {"POSTGRES_PORT": str(ports.postgres), "BACKEND_PORT": str(ports.backend),
                 "FRONTEND_PORT": str(ports.frontend)}
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            if value == PLACEHOLDER:
                value = secrets.token_urlsafe(24)
            value = overrides.get(key, value)
            line = f"{key}={value}"
        lines.append(line)
    if subnet is not None:
        lines += ["", "# The compose network's subnet (this sandbox runs beside another installation)",
                  f"OPENWATCH_SUBNET={subnet}"]
    lines += ["", "# Audit account used by the post-flight login check",
              f"OPENWATCH_AUDIT_USER={AUDIT_USER}", f"OPENWATCH_AUDIT_PASSWORD={secrets.token_urlsafe(18)}"]
    return "\n".join(lines) + "\n"


def create(directory: Path, tag: str = releases.OLDEST.tag, *, ports: Ports = Ports(), subnet: str | None = None,
           seed_size: SeedSize = SeedSize(), origin: Path | None = None) -> Installation:
    """A fresh, seeded, healthy installation of ``tag`` in ``directory`` (which must not exist)."""
    if tag not in releases.BY_TAG:
        raise ValueError(f"unknown release {tag!r}; known: {', '.join(releases.BY_TAG)}")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty; destroy the installation there first")
    started = time.monotonic()
    images.ensure_all()
    origin = releases.ensure_origin(origin or releases.DEFAULT_ORIGIN)
    run(["git", "clone", "--quiet", str(origin), str(directory)])
    install = Installation(directory)
    install.git("checkout", "--quiet", "--detach", tag)
    env_file = directory / ".env"
    env_file.write_text(render_env((directory / ".env.example").read_text(), ports, subnet))
    env_file.chmod(0o600)
    (directory / "backups" / "postgres").mkdir(mode=0o700, parents=True)
    progress(f"{directory}: building {tag}")
    install.build()
    install.up("database", "redis")
    install.alembic("upgrade", SEED_REVISION)
    env = install.env
    seed(install.conninfo(), env["OPENWATCH_AUDIT_USER"], env["OPENWATCH_AUDIT_PASSWORD"], seed_size)
    install.alembic("upgrade", "head")
    install.up()
    # A real installation has a nightly backup; the post-flight audit checks that one exists, and
    # that, like the suite's own, it is private to its owner.
    install.save_database(directory / "backups" / "postgres" / f"openwatch_{time.strftime('%Y%m%d_%H%M%S')}.dump")
    progress(f"{directory}: {tag} healthy in {time.monotonic() - started:.0f}s ({seed_size.rows} seeded rows)")
    return install
