"""Container facts through the Docker SDK, and ``docker exec`` with a deadline."""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timezone
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import docker
import docker.errors

from runbook.shell import run


RESTART_LOOP_COUNT = 2
RESTART_LOOP_WINDOW_S = 60


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # running, restarting, exited, created, paused, dead, or "missing"
    health: str | None  # healthy, unhealthy, starting; None without a healthcheck
    restart_count: int
    command: tuple[str, ...] = ()
    up_seconds: float = 0.0  # since the last (re)start
    exit_code: int | None = None  # of the last exit, while not running
    ran_seconds: float | None = None  # how long the run before that exit lasted

    @property
    def exists(self) -> bool:
        return self.status != "missing"

    @property
    def restart_looping(self) -> bool:
        """Restarting now, or restarted repeatedly and up only briefly (caught between two crashes)."""
        return self.status == "restarting" or (self.restart_count >= RESTART_LOOP_COUNT
                                               and self.up_seconds < RESTART_LOOP_WINDOW_S)


def state(client: docker.DockerClient, name: str) -> ContainerState:
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return ContainerState(name, "missing", None, 0)
    attrs = container.attrs
    health = attrs["State"].get("Health", {}).get("Status")
    command = tuple(attrs["Config"].get("Cmd") or ())
    status = attrs["State"]["Status"]
    started = _timestamp(attrs["State"]["StartedAt"])
    up_seconds = (datetime.now(timezone.utc) - started).total_seconds()
    exit_code = ran_seconds = None
    if status in ("exited", "dead", "restarting"):
        exit_code = int(attrs["State"].get("ExitCode", 0))
        ran_seconds = max(0.0, (_timestamp(attrs["State"]["FinishedAt"]) - started).total_seconds())
    return ContainerState(name, status, health, int(attrs.get("RestartCount", 0)), command, up_seconds, exit_code,
                          ran_seconds)


def _timestamp(text: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds, cut to what ``fromisoformat`` reads."""
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")


def logs_since(client: docker.DockerClient, name: str, minutes: int) -> str:
    container = client.containers.get(name)
    since = int(time.time()) - minutes * 60
    return container.logs(since=since, stdout=True, stderr=True).decode(errors="replace")


def exec_in(
    container: str,
    argv: Sequence[str],
    *,
    secret_env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 20,
):
    """``docker exec`` with a deadline (the SDK's exec has none).

    ``secret_env`` values travel in this process's environment and are named with ``-e NAME`` only,
    so they never appear in a command line that ``ps`` or an error message could show.
    """
    env = dict(os.environ)
    flags: list[str] = []
    for name, value in (secret_env or {}).items():
        env[name] = value
        flags += ["-e", name]
    if stdin is not None:
        flags.append("-i")
    return run(["docker", "exec", *flags, container, *argv], env=env, stdin=stdin, check=False, timeout=timeout)


def option_value(command: Sequence[str], *flags: str) -> str | None:
    """The value after ``-A``/``--app`` style flags in a container's command."""
    words = list(command)
    if len(words) == 1:
        words = shlex.split(words[0])
    for index, word in enumerate(words):
        if word in flags and index + 1 < len(words):
            return words[index + 1]
        for flag in flags:
            if flag.startswith("--") and word.startswith(flag + "="):
                return word.split("=", 1)[1]
    return None
