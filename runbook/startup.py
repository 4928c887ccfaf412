"""Start a release and judge it as soon as the evidence is in: healthy, or failed by a sustained-failure
rule, instead of waiting for Docker's own unhealthy verdict (start_period + retries x interval; 43 s on
the sandbox for a backend whose /health is always 503, while every second of it is downtime).

The rule (:func:`judge`) is a pure function of the observations so far, so it is tested with fakes;
:func:`watch` makes the observations (the containers through the SDK, ``GET /health``) and applies it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import docker
import requests

from runbook import containers
from runbook.errors import Problem
from runbook.profile import Profile
from runbook.shell import progress

BACKEND = "backend"
GONE = ("exited", "dead", "missing")


@dataclass(frozen=True)
class Rule:
    bad_answers: int = 5  # answers in a row that are not healthy ...
    bad_window_s: float = 2.0  # ... spread over at least this long, while the backend runs
    deadline_s: float = 180.0  # never healthy by then (no answer at all, or a service never healthy)
    poll_s: float = 0.25
    request_timeout_s: float = 2.0


@dataclass(frozen=True)
class Answer:
    """What ``GET /health`` said; ``status_code`` None when nothing answered (refused, timed out)."""
    status_code: int | None
    status: str | None = None  # the body's "status"
    healthy: bool = False  # 200, status healthy, database and redis healthy

    def describe(self) -> str:
        return f"{self.status_code} (status {self.status!r})" if self.status else f"{self.status_code}"


@dataclass(frozen=True)
class Observation:
    at: float  # seconds since the containers were started
    containers: dict[str, containers.ContainerState]  # by service
    healthchecked: frozenset[str]  # services with a Docker healthcheck
    answer: Answer


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str  # one line: what was seen, naming the rule that fired
    container: str | None = None  # the container the rule judged, when not the backend by its /health


def crashed(service: str, found: containers.ContainerState) -> str | None:
    """Why ``found`` counts as a crash: the backend may not exit or restart even once after its
    start (a restart policy hides a crash loop from ``compose up``); any container may not be gone.
    Docker zeroes RestartCount whenever a container is started, so any count is a restart since
    ``compose up`` started it."""
    if found.status == "missing":
        return f"{found.name} does not exist any more"
    if service == BACKEND and (found.restart_count > 0 or found.status in ("restarting", *GONE)):
        ran = f" after {found.ran_seconds:.1f} s" if found.ran_seconds is not None else ""
        code = f"with code {found.exit_code}" if found.exit_code is not None else "and was restarted"
        return f"{found.name} exited {code}{ran} (restart {found.restart_count})"
    if found.status in GONE:
        return f"{found.name} exited with code {found.exit_code}"
    return None


def bad_run(history: Sequence[Observation]) -> list[Observation]:
    """The answers since the last healthy one (no answer neither breaks nor extends the run)."""
    run: list[Observation] = []
    for observation in history:
        if observation.answer.healthy:
            run = []
        elif observation.answer.status_code is not None:
            run.append(observation)
    return run


def waiting_for(now: Observation) -> list[str]:
    """Containers not yet ready as ``compose up --wait`` means it: running, and healthy if checked (a
    backend Docker still calls unhealthy from a slow start is ready once its /health answers healthy:
    Docker's check of it asks the same URL, and says so only at its next interval)."""
    return [found.name for service, found in now.containers.items()
            if found.status != "running" or (service in now.healthchecked and found.health != "healthy"
                                             and not (service == BACKEND and found.health == "unhealthy"
                                                      and now.answer.healthy))]


def judge(history: Sequence[Observation], rule: Rule) -> Verdict | None:
    """Healthy, failed, or None (not yet) after the observations so far, the newest last."""
    now = history[-1]
    for service, found in now.containers.items():
        reason = crashed(service, found)
        if reason:
            return Verdict(False, f"crash: {reason}", found.name)
        # The backend is judged by its own /health (the rules below), not by Docker's check of the same
        # URL: the real backend's has no start period (3 x 30 s), so a start slower than 90 s on a
        # loaded machine is "unhealthy" to Docker before /health has answered once (seen rolling the
        # real OpenWatch back to February), and stays so up to 30 s after it answers healthy.
        if found.health == "unhealthy" and service != BACKEND:
            return Verdict(False, f"Docker's healthcheck: {found.name} is unhealthy after {now.at:.1f} s", found.name)
    run = bad_run(history)
    if len(run) >= rule.bad_answers and run[-1].at - run[0].at >= rule.bad_window_s:
        return Verdict(False, f"sustained failure: backend answered /health {run[-1].answer.describe()} "
                              f"{len(run)} times in a row over {run[-1].at - run[0].at:.1f} s")
    pending = waiting_for(now)
    if now.answer.healthy and not pending:
        return Verdict(True, f"healthy after {now.at:.1f} s")
    if now.at >= rule.deadline_s:
        last = f"last answered {now.answer.describe()}" if now.answer.status_code else "never answered"
        not_ready = f"; not ready: {', '.join(pending)}" if pending else ""
        return Verdict(False, f"deadline: not healthy within {rule.deadline_s:.0f} s (/health {last}{not_ready})")
    return None


def ask_health(http: requests.Session, base_url: str, timeout: float,
               dependencies: tuple[str, ...] = ("database",)) -> Answer:
    try:
        response = http.get(f"{base_url}/health", timeout=timeout)
    except requests.RequestException:
        return Answer(None)
    try:
        body = response.json()
    except ValueError:
        return Answer(response.status_code)
    if not isinstance(body, dict):
        return Answer(response.status_code)
    healthy = (response.status_code == 200 and body.get("status") == "healthy"
               and all(body.get(name) == "healthy" for name in dependencies))
    return Answer(response.status_code, str(body.get("status")), healthy)


def watch(client: docker.DockerClient, profile: Profile, base_url: str, rule: Rule) -> Verdict:
    """Observe the started installation every ``rule.poll_s`` until :func:`judge` decides; a failure
    is raised as a one-line :class:`Problem`."""
    healthchecked = frozenset(name for name, spec in profile.services.items() if spec.has_healthcheck)
    history: list[Observation] = []
    started = time.monotonic()
    with requests.Session() as http:
        while True:
            found = {service: containers.state(client, spec.container) for service, spec in profile.services.items()}
            answer = ask_health(http, base_url, rule.request_timeout_s, profile.health_dependencies)
            history.append(Observation(time.monotonic() - started, found, healthchecked, answer))
            verdict = judge(history, rule)
            if verdict is not None:
                break
            time.sleep(rule.poll_s)
    if not verdict.healthy:
        raise Problem(f"{profile.version} did not start: {verdict.reason}; "
                      f"read `docker logs --tail 50 {verdict.container or profile.container(BACKEND)}`")
    progress(f"{profile.version} {verdict.reason}")
    return verdict
