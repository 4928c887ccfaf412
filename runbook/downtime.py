"""An external prober: polls the public endpoints at 10 Hz from a background thread and records
every interval in which users could not use OpenWatch, aligned with the upgrade's stage marks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

INTERVAL_S = 0.1
TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Outage:
    start: float  # seconds since the prober started
    end: float
    stages: tuple[str, ...]  # stages running while users could not get through

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class DowntimeReport:
    observed_s: float
    origin_epoch: float = 0.0  # wall-clock time of offset 0, to align with the journal's stages
    outages: list[Outage] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return round(sum(outage.seconds for outage in self.outages), 2)

    @property
    def longest_s(self) -> float:
        return round(max((outage.seconds for outage in self.outages), default=0.0), 2)

    def summary(self) -> str:
        return (f"user-visible downtime {self.total_s:.1f}s in {len(self.outages)} outage(s), "
                f"longest {self.longest_s:.1f}s, over {self.observed_s:.0f}s observed")


def endpoint_up(session: requests.Session, health_url: str, page_url: str | None) -> bool:
    """Up means: /health answers 200 "healthy" and the frontend page answers 200."""
    try:
        health = session.get(health_url, timeout=TIMEOUT_S)
        if health.status_code != 200 or health.json().get("status") != "healthy":
            return False
        return page_url is None or session.get(page_url, timeout=TIMEOUT_S).status_code == 200
    except (requests.RequestException, ValueError):
        return False


class Prober:
    def __init__(self, health_url: str, page_url: str | None = None, interval_s: float = INTERVAL_S) -> None:
        self.health_url, self.page_url, self.interval_s = health_url, page_url, interval_s
        self._samples: list[tuple[float, bool]] = []
        self._marks: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = 0.0
        self._origin_epoch = 0.0
        self._lock = threading.Lock()

    def start(self) -> Prober:
        self._origin, self._origin_epoch = time.monotonic(), time.time()
        # daemon: even a hard exit path never waits on this thread; stop() still joins it normally.
        self._thread = threading.Thread(target=self._run, name="openwatch-downtime-prober", daemon=True)
        self._thread.start()
        return self

    def mark(self, label: str) -> None:
        with self._lock:
            self._marks.append((time.monotonic() - self._origin, label))

    def _run(self) -> None:
        with requests.Session() as session:
            next_tick = time.monotonic()
            while not self._stop.is_set():
                started = time.monotonic()
                up = endpoint_up(session, self.health_url, self.page_url)
                with self._lock:
                    self._samples.append((started - self._origin, up))
                next_tick += self.interval_s
                self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def stop(self) -> DowntimeReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.report()

    def report(self) -> DowntimeReport:
        with self._lock:
            samples, marks = list(self._samples), list(self._marks)
        observed = samples[-1][0] if samples else 0.0
        return DowntimeReport(observed, self._origin_epoch, outages(samples, marks), marks)


def outages(samples: list[tuple[float, bool]], marks: list[tuple[float, str]]) -> list[Outage]:
    """Down from the first failed probe to the first successful one after it (or the last probe)."""
    found, down_since = [], None
    for at, up in samples:
        if not up and down_since is None:
            down_since = at
        elif up and down_since is not None:
            found.append((down_since, at))
            down_since = None
    if down_since is not None and samples:
        found.append((down_since, samples[-1][0]))
    return [Outage(start, end, stages_during(start, end, marks)) for start, end in found]


def stages_during(start: float, end: float, marks: list[tuple[float, str]]) -> tuple[str, ...]:
    """Each mark opens a stage that lasts until the next mark."""
    names = []
    for index, (at, label) in enumerate(marks):
        until = marks[index + 1][0] if index + 1 < len(marks) else float("inf")
        if at < end and until > start:
            names.append(label)
    return tuple(names)
