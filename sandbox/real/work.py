"""Prove the real workers consume work: one harmless unit through the app's own queue, seen completed.

Feb (Celery): Celery's built-in ``celery.accumulate`` (registered in every Celery app, a pure function that
returns its arguments; ``celery.ping`` is no longer registered in Celery 5.6) sent with the real app
(``app.celery_app.celery_app``); it lands on the ``default`` queue the worker consumes, and its result
comes back through the Redis result backend, which is then forgotten: nothing is left in Redis or in the
database.
Apr/Jun (PostgreSQL job queue): ``enqueue_task("cleanup_expired_audit_exports")`` with the real
``app.services.job_queue.enqueue_task``: a registered task that only removes audit exports already past
their expiry (the app schedules it itself), routed to the ``maintenance`` queue the worker polls; its
``job_queue`` row is polled until ``completed`` and then deleted, so the table is as it was.
Both run inside the backend container with the app's own code and settings.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from runbook.shell import CommandError

CELERY_PING = """
import json, time
from app.celery_app import celery_app
started = time.monotonic()
result = celery_app.send_task("celery.accumulate", args=["openwatch-suite probe"])
value = result.get(timeout=TIMEOUT)
print(json.dumps({"id": result.id, "status": result.status, "result": value,
                  "seconds": round(time.monotonic() - started, 2)}))
result.forget()
"""

JOB_QUEUE_PROBE = """
import json, time
from sqlalchemy import text
from app.database import SessionLocal
from app.services.job_queue import enqueue_task
started = time.monotonic()
job_id = enqueue_task("cleanup_expired_audit_exports")
row = None
while time.monotonic() - started < TIMEOUT:
    with SessionLocal() as db:
        row = db.execute(text("SELECT status, result, error FROM job_queue WHERE id = :id"), {"id": job_id}).first()
    if row is not None and row.status in ("completed", "failed"):
        break
    time.sleep(0.2)
with SessionLocal() as db:
    db.execute(text("DELETE FROM job_queue WHERE id = :id"), {"id": job_id})
    db.commit()
print(json.dumps({"id": str(job_id), "status": row.status if row else None,
                  "result": row.result if row else None, "error": row.error if row else None,
                  "seconds": round(time.monotonic() - started, 2)}, default=str))
"""


@dataclass(frozen=True)
class WorkResult:
    queue: str
    status: str  # Celery: SUCCESS; job queue: completed (or failed / None when not consumed in time)
    result: object
    seconds: float

    @property
    def consumed(self) -> bool:
        return self.status in ("SUCCESS", "completed")


def send_harmless_work(queue: str, timeout_s: float = 60.0, container: str = "openwatch-backend") -> WorkResult:
    """Send one harmless unit of work through ``queue`` ("celery" or "job_queue") and wait for it."""
    script = (CELERY_PING if queue == "celery" else JOB_QUEUE_PROBE).replace("TIMEOUT", repr(float(timeout_s)))
    argv = ["docker", "exec", "-i", container, "python3", "-"]
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout_s + 60)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return WorkResult(queue, str(report["status"]), report["result"], float(report["seconds"]))
