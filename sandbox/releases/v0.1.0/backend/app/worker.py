"""Celery worker and beat (``celery -A app.worker worker|beat``)."""

import logging
import time

from celery import Celery

from app import config

celery = Celery("openwatch", broker=config.redis_url(), backend=config.redis_url())
celery.conf.update(
    task_default_queue="default",
    broker_connection_retry_on_startup=True,
    beat_schedule={"heartbeat": {"task": "openwatch.heartbeat", "schedule": 30.0}},
)
log = logging.getLogger("openwatch.worker")


@celery.task(name="openwatch.heartbeat")
def heartbeat() -> str:
    log.info("heartbeat")
    return "ok"


@celery.task(name="openwatch.scan_host")
def scan_host(host_id: int, seconds: float = 0.0) -> int:
    """Stand-in for a compliance scan; ``seconds`` lets tests keep a task active."""
    time.sleep(seconds)
    return host_id
