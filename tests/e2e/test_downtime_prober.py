"""The prober against a real outage: the backend killed, then started again, is one outage.

How close its measured outage is to the true one is a bench figure (``bench/upgrade_downtime.py
--only prober``: ``prober_error_median_ms``), not a timed assertion here.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import requests

from runbook.downtime import Prober
from sandbox.installation import Installation


def poll(condition: Callable[[], bool], what: str, deadline_s: float = 60, every_s: float = 0.02) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"{what} did not happen within {deadline_s}s")


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.2).status_code == 200
    except requests.RequestException:
        return False


def test_prober_sees_a_real_outage_as_one(sandbox: Installation) -> None:
    health = f"{sandbox.backend_url}/health"
    prober = Prober(health, f"{sandbox.frontend_url}/").start()
    poll(lambda: prober.report().observed_s > 0.5 and not prober.report().outages, "the prober seeing the app up")
    subprocess.run(["docker", "kill", "openwatch-backend"], check=True, capture_output=True)
    poll(lambda: bool(prober.report().outages), "the prober noticing the outage")
    subprocess.run(["docker", "start", "openwatch-backend"], check=True, capture_output=True)
    poll(lambda: healthy(health), "the backend answering again")
    back_at = prober.report().observed_s
    poll(lambda: prober.report().observed_s > back_at + 0.5, "the prober sampling after the outage")
    report = prober.stop()
    assert len(report.outages) == 1, report.outages
    assert report.outages[0].seconds > 0 and report.total_s == round(report.outages[0].seconds, 2)
    assert not any(thread.name == "openwatch-downtime-prober" for thread in threading.enumerate())
