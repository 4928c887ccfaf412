"""Container facts through the Docker SDK, and ``docker exec`` with a deadline."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import docker
import docker.errors

from runbook.shell import run


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # running, restarting, exited, created, paused, dead, or "missing"
    health: str | None  # healthy, unhealthy, starting; None without a healthcheck
    restart_count: int
    command: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.status != "missing"


def state(client: docker.DockerClient, name: str) -> ContainerState:
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return ContainerState(name, "missing", None, 0)
    attrs = container.attrs
    health = attrs["State"].get("Health", {}).get("Status")
    command = tuple(attrs["Config"].get("Cmd") or ())
    return ContainerState(name, attrs["State"]["Status"], health, int(attrs.get("RestartCount", 0)), command)


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
