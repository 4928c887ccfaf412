"""The installation profile: what an OpenWatch installation directory says about itself.

Read-only: ``.env`` (secrets wrapped in :class:`Secret`), ``VERSION``, the compose project and the
services with their container names, as ``docker compose config`` resolves them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runbook.envfile import check_syntax, parse_env, unset_secrets
from runbook.errors import OperatorError
from runbook.redaction import Redactor, Secret
from runbook.shell import CommandError, run

COMPOSE_FILE = "docker-compose.yml"
OVERRIDE_FILE = "docker-compose.override.yml"
PROD_OVERLAY = "docker-compose.prod.yml"
MARKERS = (COMPOSE_FILE, "VERSION", "backend/alembic.ini")
# Every compose-era OpenWatch has these; the rest follow the release: Redis, a Celery worker and
# celery-beat until April 2026, then a worker running the PostgreSQL job queue and no Redis.
REQUIRED_SERVICES = ("database", "backend", "frontend")
OPENWATCH_SERVICES = (*REQUIRED_SERVICES, "redis", "worker", "celery-beat")
JOB_QUEUE_MODULE = "app.services.job_queue"


@dataclass(frozen=True)
class Mount:
    target: str  # the path inside the container
    kind: str  # "bind", "volume", "tmpfs", ...
    source: str  # bind: an absolute host path; volume: the volume's name


@dataclass(frozen=True)
class Service:
    name: str
    container: str
    has_healthcheck: bool
    published: Mapping[int, int] = field(default_factory=dict)  # container port -> 127.0.0.1 port
    mounts: tuple[Mount, ...] = ()
    command: tuple[str, ...] = ()  # as the compose file sets it; empty when the image's own is used


@dataclass(frozen=True)
class Profile:
    install_dir: Path
    env: Mapping[str, str | Secret]
    version: str
    project: str
    compose_files: tuple[Path, ...]
    services: Mapping[str, Service]
    redactor: Redactor
    extra_compose: tuple[Path, ...] = ()  # what --compose-file added (a reload after a checkout adds it again)
    prod_overlay: bool = False  # --prod

    def setting(self, name: str, default: str = "") -> str:
        """An ``.env`` value in clear, secret or not (for passing on, never for printing)."""
        value = self.env.get(name, default)
        return value.reveal() if isinstance(value, Secret) else value

    @property
    def task_queue(self) -> str | None:
        return task_queue(self.services)

    @property
    def health_dependencies(self) -> tuple[str, ...]:
        """What ``/health`` must call healthy: the database, and Redis where the installation runs it
        (from April 2026 the real /health says ``"redis": "removed"``)."""
        return ("database", "redis") if "redis" in self.services else ("database",)

    def container(self, service: str) -> str:
        return self.services[service].container if service in self.services else f"openwatch-{service}"

    def published_port(self, service: str, container_port: int, default: int) -> int:
        spec = self.services.get(service)
        return spec.published.get(container_port, default) if spec else default

    def db_conninfo(self) -> dict[str, str | int]:
        """psycopg keyword arguments for the OpenWatch database through its published 127.0.0.1 port
        (the password is passed as an argument, never in a DSN string that could be printed)."""
        fallback = int(self.setting("POSTGRES_PORT", "5432") or 5432)
        return {"host": "127.0.0.1", "port": self.published_port("database", 5432, fallback),
                "dbname": self.setting("POSTGRES_DB", "openwatch"), "user": self.setting("POSTGRES_USER", "openwatch"),
                "password": self.setting("POSTGRES_PASSWORD")}


def compose_command(install_dir: Path, files: list[Path] | tuple[Path, ...]) -> list[str]:
    args = ["docker", "compose", "--project-directory", str(install_dir)]
    for path in files:
        args += ["-f", str(path)]
    return args


def _mounts(spec: dict, install_dir: Path) -> tuple[Mount, ...]:
    """The service's volumes as ``docker compose config`` writes them (long syntax); a relative bind
    source is relative to the install dir, as Compose reads it."""
    mounts = []
    for volume in spec.get("volumes", []):
        source = str(volume.get("source", ""))
        if volume.get("type") == "bind" and source and not Path(source).is_absolute():
            source = str(install_dir / source)
        mounts.append(Mount(str(volume.get("target", "")), str(volume.get("type", "")), source))
    return tuple(mounts)


def _compose_services(config: dict, install_dir: Path) -> dict[str, Service]:
    services = {}
    for name, spec in config.get("services", {}).items():
        published = {
            int(port["target"]): int(port["published"])
            for port in spec.get("ports", []) if port.get("published")
        }
        healthcheck = spec.get("healthcheck") or {}
        services[name] = Service(
            name=name,
            container=spec.get("container_name", f"{config.get('name', 'openwatch')}-{name}-1"),
            has_healthcheck=bool(healthcheck.get("test")) and not healthcheck.get("disable", False),
            published=published,
            mounts=_mounts(spec, install_dir),
            command=tuple(str(word) for word in spec.get("command") or ()),
        )
    return services


def task_queue(services: Mapping[str, Service]) -> str | None:
    """How background work reaches the worker: ``celery`` (through Redis), ``job-queue`` (a
    PostgreSQL table the worker polls), or None when there is no worker service."""
    worker = services.get("worker")
    if worker is None:
        return None
    return "job-queue" if JOB_QUEUE_MODULE in worker.command else "celery"


def default_compose_files(install_dir: Path, env: Mapping[str, str | Secret],
                          environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The files ``docker compose`` reads in ``install_dir`` when given no ``-f``: ``COMPOSE_FILE`` (the
    environment's, else ``.env``'s) split on ``COMPOSE_PATH_SEPARATOR`` (``:``), relative to the install dir;
    without it ``docker-compose.yml`` plus ``docker-compose.override.yml`` when that exists."""
    def setting(name: str) -> str:
        value = environ.get(name) or env.get(name) or ""
        return value.reveal() if isinstance(value, Secret) else value

    listed = setting("COMPOSE_FILE")
    if listed:
        separator = setting("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [Path(name) if Path(name).is_absolute() else install_dir / name
                 for name in listed.split(separator) if name]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise OperatorError(f"COMPOSE_FILE names {', '.join(missing)}, which does not exist; "
                                "fix COMPOSE_FILE (environment or .env) or restore the file")
        return files
    files = [install_dir / COMPOSE_FILE]
    if (install_dir / OVERRIDE_FILE).is_file():
        files.append(install_dir / OVERRIDE_FILE)
    return files


def load(install_dir: Path, extra_compose: tuple[Path, ...] = (), use_prod_overlay: bool = False,
         require_secrets: bool = False) -> Profile:
    """The profile of ``install_dir``; :class:`OperatorError` when it is not an OpenWatch installation.
    With ``require_secrets``, also when ``.env`` leaves a secret its ``.env.example`` requires unset
    (checked before Compose reads the file, whose own message would be less clear)."""
    install_dir = Path(install_dir)
    if not install_dir.is_dir():
        raise OperatorError(f"--install-dir {install_dir} does not exist; pass the directory OpenWatch was cloned into")
    missing = [marker for marker in MARKERS if not (install_dir / marker).is_file()]
    if missing:
        raise OperatorError(
            f"{install_dir} is not an OpenWatch installation (missing {', '.join(missing)}); pass the right --install-dir"
        )
    env_file = install_dir / ".env"
    if not env_file.is_file():
        raise OperatorError(f"{env_file} is missing; create it from .env.example before running the suite")
    text = env_file.read_text()
    check_syntax(text, str(env_file))
    env = parse_env(text)
    example = install_dir / ".env.example"
    unset = unset_secrets(env, example.read_text()) if require_secrets and example.is_file() else []
    if unset:
        raise OperatorError(f"{env_file} leaves required secrets unset: {', '.join(unset)}; set them to the values "
                            "the installation was created with (see .env.example)")
    redactor = Redactor(value.reveal() for value in env.values() if isinstance(value, Secret))
    files = default_compose_files(install_dir, env)
    if use_prod_overlay:
        overlay = install_dir / PROD_OVERLAY
        if not overlay.is_file():
            raise OperatorError(f"--prod asked for {overlay}, which does not exist; drop --prod or restore the file")
        if overlay not in files:
            files.append(overlay)
    for extra in extra_compose:
        path = extra if extra.is_absolute() else install_dir / extra
        if not path.is_file():
            raise OperatorError(f"--compose-file {path} does not exist; pass an existing compose file")
        files.append(path)
    try:
        config = json.loads(run([*compose_command(install_dir, files), "config", "--format", "json"], timeout=60).stdout)
    except CommandError as error:
        raise OperatorError(f"docker compose cannot read {install_dir}'s compose files: {redactor(str(error))}") from None
    return Profile(
        install_dir=install_dir,
        env=env,
        version=(install_dir / "VERSION").read_text().strip(),
        project=config.get("name") or str(env.get("COMPOSE_PROJECT_NAME", install_dir.name)),
        compose_files=tuple(files),
        services=_compose_services(config, install_dir),
        redactor=redactor,
        extra_compose=tuple(extra_compose),
        prod_overlay=use_prod_overlay,
    )


def service_problem(services: Mapping[str, Service], files: tuple[Path, ...]) -> str | None:
    """Why the suite cannot work on these compose services: one it needs is missing, or one it does
    not know would be started, stopped and rolled back by it without the suite understanding it."""
    named = ", ".join(path.name for path in files)
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    if missing:
        return (f"the compose files ({named}) define no {', '.join(missing)} service; "
                "this is not a standard OpenWatch installation: pass the right --install-dir or --compose-file")
    if "redis" not in services and task_queue(services) == "celery":
        return (f"the compose files ({named}) run a Celery worker but define no redis service for its broker; "
                "pass the right --install-dir or --compose-file")
    unknown = sorted(name for name in services if name not in OPENWATCH_SERVICES)
    if unknown:
        return (f"the compose files ({named}) define services OpenWatch does not have: {', '.join(unknown)}; "
                "the suite would start and stop them without knowing them: run them as their own compose project "
                "(or drop the --compose-file that adds them)")
    return None
