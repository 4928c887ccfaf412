"""Celery: does the worker answer, is anything running or waiting in its queues."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import docker

from runbook import containers
from runbook.errors import NotApplicable, Problem
from runbook.profile import Profile

# One process in the worker container asks all three questions (each ``celery inspect`` call
# would start Python and connect to the broker again). Ping waits its full timeout, since the number
# of workers is unknown; active/reserved/scheduled then stop as soon as every worker that pinged has replied.
# Scheduled are tasks with an ETA or countdown (the real app's retries use countdown=60..300): the
# worker holds them unacknowledged, outside the queue, until their time; stopped, it gives them back
# to the queue in Redis, which a release without Celery never reads.
INSPECT = """
import json, sys
from celery.app.utils import find_app
app, timeout = find_app(sys.argv[1]), float(sys.argv[2])
ping = app.control.inspect(timeout=timeout).ping() or {}
known = app.control.inspect(timeout=timeout * 3, limit=len(ping)) if ping else None
print(json.dumps({"ping": ping, "active": known.active() if known else {}, "reserved": known.reserved() if known else {},
                  "scheduled": known.scheduled() if known else {}}))
"""


# Time for Python to start and import the app in the worker container, on top of the inspect's own
# timeouts: seconds on a quiet machine, over 20 s seen at load 20-30 on two cores (a CI machine running
# four sandboxes); failing the pre-flight or the drain for that is worse than waiting.
STARTUP_ALLOWANCE_S = 60.0


@dataclass(frozen=True)
class WorkerSnapshot:
    answered: list[str]
    active: int
    reserved: int
    queues: list[str]
    scheduled: int = 0  # waiting for their ETA in the worker


def require_celery(profile: Profile) -> None:
    if profile.task_queue != "celery":
        raise NotApplicable("no Celery here: " + ("this installation runs the PostgreSQL job queue"
                                                  if profile.task_queue else "no worker service"))


def worker_command(client: docker.DockerClient, profile: Profile) -> tuple[str, list[str]]:
    """The Celery app and queue names from the worker container's own command."""
    require_celery(profile)
    found = containers.state(client, profile.container("worker"))
    app = containers.option_value(found.command, "-A", "--app") or "app.worker"
    queues = (containers.option_value(found.command, "-Q", "--queues") or "celery").split(",")
    return app, queues


def inspect_worker(client: docker.DockerClient, profile: Profile, timeout: float = 1.0) -> WorkerSnapshot:
    container = profile.container("worker")
    app, queues = worker_command(client, profile)
    allowed = timeout * 4 + STARTUP_ALLOWANCE_S  # ping, then active/reserved/scheduled up to 3 x timeout
    try:
        result = containers.exec_in(container, ["python3", "-c", INSPECT, app, str(timeout)], timeout=allowed)
    except subprocess.TimeoutExpired:
        raise Problem(f"`celery inspect` in {container} did not return within {allowed:.0f}s; is the worker or "
                      f"the machine overloaded? `docker stats {container}`") from None
    if result.returncode != 0:
        tail = profile.redactor(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
        raise Problem(f"cannot inspect the Celery worker in {container} ({tail}); "
                      f"is it running? `docker compose up -d worker`")
    replies = json.loads(result.stdout)
    answered = sorted((replies.get("ping") or {}).keys())
    if not answered:
        raise Problem(f"no Celery worker answered ping through the broker; check `docker logs {container}` "
                      "and that Redis is up")
    count = lambda key: sum(len(tasks) for tasks in (replies.get(key) or {}).values())  # noqa: E731
    return WorkerSnapshot(answered, count("active"), count("reserved"), queues, count("scheduled"))


def queue_lengths(profile: Profile, queues: list[str]) -> dict[str, int]:
    container = profile.container("redis")
    result = containers.exec_in(container, ["redis-cli"], stdin="".join(f"LLEN {q}\n" for q in queues),
                                secret_env={"REDISCLI_AUTH": profile.setting("REDIS_PASSWORD")})
    values = result.stdout.split()
    if result.returncode != 0 or len(values) != len(queues) or not all(v.isdigit() for v in values):
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise Problem(f"cannot read queue lengths from {container} (redis-cli exited {result.returncode}: "
                      f"{profile.redactor(said[-1][:200]) if said else 'no output'}); is Redis up? "
                      "`docker compose up -d redis`")
    return dict(zip(queues, map(int, values)))


def drained(snapshot: WorkerSnapshot, queued: dict[str, int]) -> None:
    """Pre-flight: nothing running now, so stopping the worker loses no work."""
    if snapshot.active or snapshot.reserved:
        raise Problem(f"Celery is busy: {snapshot.active} active and {snapshot.reserved} reserved tasks "
                      f"({sum(queued.values())} queued); wait for them to finish or schedule the upgrade later")


def consumed(queued: dict[str, int], backlog_limit: int) -> None:
    """Post-flight: the worker keeps up with its queues."""
    backlog = {queue: n for queue, n in queued.items() if n > backlog_limit}
    if backlog:
        raise Problem(f"queues are not being consumed: {backlog} waiting (limit {backlog_limit}); "
                      "check the worker's logs and concurrency")
