"""The PostgreSQL job queue (OpenWatch from April 2026): is the worker keeping up, is anything stuck.

The worker polls the ``job_queue`` table (``SELECT ... FOR UPDATE SKIP LOCKED``) and its scheduler
thread enqueues the rows of ``recurring_jobs``; everything here is read from those two tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from runbook.errors import NotApplicable, Problem
from runbook.profile import Profile

# A job that started this long past its own timeout_seconds was not ended by the worker's alarm:
# the worker died under it (SIGKILL, OOM) and nothing will ever finish it.
STUCK_GRACE_S = 300
# A pending job is backlog once it has been eligible this long (the worker polls every second).
BACKLOG_AGE_S = 120


@dataclass(frozen=True)
class QueueSnapshot:
    running: int
    stuck: list[str]  # "task_name (job id) running 2h past its 3600 s timeout"
    backlog: dict[str, int]  # queue -> pending jobs eligible for longer than BACKLOG_AGE_S
    recurring_enabled: int


def require_job_queue(profile: Profile) -> None:
    if profile.task_queue != "job-queue":
        raise NotApplicable("no PostgreSQL job queue here: " + ("this installation runs Celery"
                                                                if profile.task_queue else "no worker service"))


def snapshot(conn: psycopg.Connection) -> QueueSnapshot:
    exists = conn.execute("SELECT to_regclass('public.job_queue') IS NOT NULL, "
                          "to_regclass('public.recurring_jobs') IS NOT NULL").fetchone()
    if not all(exists):
        raise Problem("the worker runs the job queue but the database has no job_queue/recurring_jobs table; "
                      "the database is behind the code: run the migrations (`alembic upgrade head`)")
    running = conn.execute("SELECT count(*) FROM job_queue WHERE status = 'running'").fetchone()[0]
    stuck = [
        f"{task} ({job_id}) running {int(overdue // 60)} min past its {timeout} s timeout"
        for task, job_id, timeout, overdue in conn.execute(
            "SELECT task_name, id::text, coalesce(timeout_seconds, 3600),"
            "       extract(epoch FROM now() - started_at) - coalesce(timeout_seconds, 3600)"
            " FROM job_queue WHERE status = 'running'"
            "   AND started_at < now() - make_interval(secs => coalesce(timeout_seconds, 3600) + %s)"
            " ORDER BY started_at LIMIT 5", (STUCK_GRACE_S,))
    ]
    backlog = dict(conn.execute(
        "SELECT queue, count(*) FROM job_queue WHERE status = 'pending'"
        "   AND scheduled_at < now() - make_interval(secs => %s) GROUP BY queue ORDER BY queue",
        (BACKLOG_AGE_S,)).fetchall())
    recurring = conn.execute("SELECT count(*) FROM recurring_jobs WHERE enabled IS NOT FALSE").fetchone()[0]
    return QueueSnapshot(running, stuck, backlog, recurring)


def idle(found: QueueSnapshot) -> None:
    """Pre-flight: no job running now, so stopping the worker cuts none short."""
    if found.running:
        raise Problem(f"the job queue is busy: {found.running} jobs running; wait for them to finish "
                      "or schedule the upgrade later")


def none_stuck(found: QueueSnapshot) -> None:
    if found.stuck:
        raise Problem(f"jobs stuck in 'running': {'; '.join(found.stuck)}; their worker died under them: "
                      "mark them failed (`UPDATE job_queue SET status='failed' WHERE id=...`) after checking the worker logs")


def consumed(found: QueueSnapshot, backlog_limit: int) -> None:
    over = {queue: count for queue, count in found.backlog.items() if count > backlog_limit}
    if over:
        raise Problem(f"jobs waiting over {BACKLOG_AGE_S} s: {over} (limit {backlog_limit} per queue); "
                      "the worker is not keeping up or not polling: `docker logs openwatch-worker`")


def recurring_present(found: QueueSnapshot) -> None:
    if not found.recurring_enabled:
        raise Problem("recurring_jobs has no enabled job, so nothing periodic (host checks, retention) will run; "
                      "the seed migration did not run or someone disabled them")
