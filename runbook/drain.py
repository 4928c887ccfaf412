"""Stopping the old version without losing queued work: the order of the stops, and the Celery drain.

A target that reads the same queue (Celery's in Redis, or the job queue's in the database) lets the
worker stop first, while users are still served: what they queue from then on waits for the new
worker (or for the old one again, after a rollback), and the worker's shutdown (about 2 s for
Celery's) stays out of the outage. A target without Celery (April 2026 on) never reads Redis again:
then the user-facing services stop first and the worker empties the queues once more before it
stops. Either way the producers (beat) go first, and on SIGTERM a Celery worker finishes its active
tasks and hands back those it held for later, as the job queue's worker finishes its job, so the
worker gets the drain deadline to stop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import docker

from runbook import celery_checks
from runbook.compose import stop_containers
from runbook.errors import Problem
from runbook.profile import Profile
from runbook.shell import progress


PRODUCERS, WORKER, USER_FACING = "producers", "worker", "user-facing"
DRAIN_BEFORE, DRAIN_AFTER = "drain before the stop", "drain after the backend stopped"


def order(old_queue: str | None, new_queue: str | None) -> tuple[str, ...]:
    """The stops and drains in order, for the old version's task queue and the target's (as data,
    so the order is tested without containers)."""
    drains = old_queue == "celery"
    before = (PRODUCERS, *((DRAIN_BEFORE,) if drains else ()))
    if new_queue == old_queue:
        return (*before, WORKER, USER_FACING)
    return (*before, USER_FACING, *((DRAIN_AFTER,) if drains else ()), WORKER)


def stop_old(client: docker.DockerClient, old: Profile, new: Profile | None, deadline_s: float,
             producers: Sequence[str], user_facing: Sequence[str], worker: str) -> None:
    """Stop ``producers``, the worker and ``user_facing`` in ``order``, draining Celery between."""
    actions = {
        PRODUCERS: lambda: stop_containers(client, list(producers)),
        DRAIN_BEFORE: lambda: drain_celery(client, old, deadline_s, "before the stop"),
        WORKER: lambda: stop_containers(client, [worker], timeout=int(deadline_s)),
        USER_FACING: lambda: stop_containers(client, list(user_facing)),
        DRAIN_AFTER: lambda: drain_celery(client, old, deadline_s, "after the backend stopped"),
    }
    for step in order(old.task_queue, new.task_queue if new is not None else "unknown"):
        actions[step]()


def drain_celery(client: docker.DockerClient, old: Profile, deadline_s: float, when: str) -> None:
    """Wait until the worker has taken and finished everything queued in Redis, and the tasks it
    holds for later (an ETA or a retry's countdown), which a stopped worker would hand back to a
    queue no release after Celery reads."""
    deadline = time.monotonic() + deadline_s
    _, queues = celery_checks.worker_command(client, old)
    while True:
        snapshot = celery_checks.inspect_worker(client, old)
        queued = celery_checks.queue_lengths(old, queues)
        busy = snapshot.active + snapshot.reserved + snapshot.scheduled + sum(queued.values())
        if not busy:
            progress(f"Celery drained {when}")
            return
        if time.monotonic() > deadline:
            waiting = {queue: count for queue, count in queued.items() if count}
            raise Problem(f"Celery still has {snapshot.active} active, {snapshot.reserved} reserved, "
                          f"{snapshot.scheduled} scheduled (waiting for their ETA) and "
                          f"{sum(queued.values())} queued tasks {waiting} {when}, after "
                          f"{deadline_s:.0f}s; the stopped services are started again, try later")
        time.sleep(1)
