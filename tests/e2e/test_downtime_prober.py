"""The prober's accuracy against a real outage: the backend killed for ~3 s, then started again."""

from __future__ import annotations

import subprocess
import threading
import time

import requests

from runbook.downtime import Prober
from sandbox.installation import Installation


def first_answer_after(url: str, deadline_s: float = 60) -> float:
    """Ground truth for the end of the outage: a 20 ms poll for the first healthy answer."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=0.2).status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not come back within {deadline_s}s")


def test_prober_measures_a_real_outage_within_300_ms(sandbox: Installation) -> None:
    health = f"{sandbox.backend_url}/health"
    prober = Prober(health, f"{sandbox.frontend_url}/").start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    subprocess.run(["docker", "kill", "openwatch-backend"], check=True, capture_output=True)
    time.sleep(3.0)
    subprocess.run(["docker", "start", "openwatch-backend"], check=True, capture_output=True)
    back_at = first_answer_after(health)
    time.sleep(1.0)
    report = prober.stop()
    true_outage = back_at - killed_at
    assert len(report.outages) == 1, report.outages
    assert abs(report.outages[0].seconds - true_outage) <= 0.3, (report.outages[0], true_outage)
    assert report.total_s == round(report.outages[0].seconds, 2) and 3.0 <= true_outage < 30
    assert not any(thread.name == "openwatch-downtime-prober" for thread in threading.enumerate())
