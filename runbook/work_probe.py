"""Does work flow? One harmless task through the installation's own queue, seen answered, then removed.

The procedure's "at least one scan can execute successfully" cannot be taken literally on a
production installation (a scan reaches out to managed hosts and writes results); what it wants to
know is that work put on the queue is picked up and run. So:

- Celery (through Redis): Celery's built-in ``celery.accumulate`` task, sent by the worker's own app
  on its first queue; it returns its arguments, and the result is forgotten afterwards.
- The PostgreSQL job queue: a job row whose task name no handler has; the worker claims it and marks
  it failed with "Unknown task" (no registered task is free of side effects), which proves the same
  dequeue-and-dispatch path a real job takes; the row is deleted afterwards.
"""

from __future__ import annotations

import json
import time
import uuid

import docker
import psycopg

from runbook import celery_checks, containers
from runbook.errors import Problem
from runbook.profile import Profile

PROBE_TASK = "openwatch_upgrade_suite.work_probe"
DEADLINE_S = 30.0
POLL_S = 0.25

CELERY_ROUND_TRIP = """
import json, sys
from celery.app.utils import find_app
app, queue, token, timeout = find_app(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
result = app.send_task("celery.accumulate", args=[token], queue=queue)
try:
    print(json.dumps({"value": result.get(timeout=timeout)}))
except Exception as error:
    print(json.dumps({"error": type(error).__name__}))
finally:
    result.forget()
"""


def celery_round_trip(client: docker.DockerClient, profile: Profile, deadline_s: float = DEADLINE_S) -> float:
    """Seconds for a task sent through the broker to come back answered by a worker."""
    app, queues = celery_checks.worker_command(client, profile)
    token = uuid.uuid4().hex
    started = time.monotonic()
    found = containers.exec_in(profile.container("worker"),
                               ["python3", "-c", CELERY_ROUND_TRIP, app, queues[0], token, str(deadline_s)],
                               timeout=deadline_s + 30)
    seconds = time.monotonic() - started
    try:
        reply = json.loads(found.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = profile.redactor(found.stderr.strip().splitlines()[-1] if found.stderr.strip() else "no output")
        raise Problem(f"cannot send a probe task through Celery ({tail}); `docker logs {profile.container('worker')}`")\
            from None
    if reply.get("value") != [token]:
        raise Problem(f"a probe task sent to Celery queue {queues[0]!r} was not answered within {deadline_s:.0f} s "
                      f"({reply.get('error') or reply}); the worker is not consuming: "
                      f"`docker logs {profile.container('worker')}`")
    return seconds


def job_queue_round_trip(conn: psycopg.Connection, deadline_s: float = DEADLINE_S) -> float:
    """Seconds for a probe job to be claimed and answered by the worker; the row is removed after."""
    job_id = conn.execute(
        "INSERT INTO job_queue (task_name, args, queue, priority, max_retries, timeout_seconds)"
        " VALUES (%s, %s::jsonb, 'default', 0, 0, 60) RETURNING id",
        (PROBE_TASK, json.dumps({"probe": uuid.uuid4().hex}))).fetchone()[0]
    started = time.monotonic()
    try:
        status, error = "pending", None
        while time.monotonic() - started < deadline_s:
            status, error = conn.execute("SELECT status, error FROM job_queue WHERE id = %s", (job_id,)).fetchone()
            if status not in ("pending", "running"):
                break
            time.sleep(POLL_S)
        seconds = time.monotonic() - started
    finally:
        conn.execute("DELETE FROM job_queue WHERE id = %s", (job_id,))
    if status in ("pending", "running"):
        raise Problem(f"a probe job stayed {status!r} for {deadline_s:.0f} s: the worker is not polling the job "
                      "queue; `docker logs openwatch-worker`")
    if status != "failed" or PROBE_TASK not in (error or ""):
        raise Problem(f"the probe job ended {status!r} ({(error or '')[:120]}), not as an unknown task; "
                      "the worker's dispatch is not the one this check knows")
    return seconds
