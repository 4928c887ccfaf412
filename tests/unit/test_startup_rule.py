"""The start stage's judgement (runbook/startup.py) over made-up observation sequences: healthy,
failed by a crash, by a sustained run of bad /health answers, by Docker's verdict, or by the deadline;
a backend still starting (refusing connections, answering now and then) is "not yet"."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import requests

from runbook.containers import ContainerState
from runbook.startup import Answer, Observation, Rule, ask_health, judge

RULE = Rule(bad_answers=5, bad_window_s=2.0, deadline_s=180.0, poll_s=0.25)
REFUSED = Answer(None)
HEALTHY = Answer(200, "healthy", healthy=True)
DEGRADED = Answer(503, "degraded")
CHECKED = frozenset({"database", "backend", "frontend"})


def up(name: str, health: str | None = "healthy", **changes) -> ContainerState:
    return ContainerState(f"openwatch-{name}", changes.pop("status", "running"), health,
                          changes.pop("restart_count", 0), **changes)


def observation(at: float, answer: Answer, backend: ContainerState | None = None,
                frontend: ContainerState | None = None, beat: ContainerState | None = None) -> Observation:
    return Observation(at, {
        "database": up("db"),
        "backend": backend or up("backend"),
        "frontend": frontend or up("frontend"),
        "celery-beat": beat or up("celery-beat", health=None),
    }, CHECKED, answer)


def verdicts(observations: Iterable[Observation]) -> list[tuple[float, bool | None, str]]:
    """The verdict after each observation, stopping at the first decision (as the watcher does)."""
    history, found = [], []
    for item in observations:
        history.append(item)
        verdict = judge(history, RULE)
        found.append((item.at, None if verdict is None else verdict.healthy, verdict.reason if verdict else ""))
        if verdict is not None:
            break
    return found


def every(step: float, until: float, answer: Answer, **containers) -> list[Observation]:
    count = round(until / step)
    return [observation(round(i * step, 2), answer, **containers) for i in range(1, count + 1)]


def test_healthy_once_health_answers_and_every_container_is_ready() -> None:
    starting = up("backend", health="starting")
    found = verdicts([*every(0.25, 1.0, REFUSED, backend=starting),
                      observation(1.25, HEALTHY, backend=starting),  # Docker has not checked it yet
                      observation(1.5, HEALTHY)])
    assert found[-1] == (1.5, True, "healthy after 1.5 s")
    assert [healthy for _, healthy, _ in found[:-1]] == [None] * 5


def test_a_service_without_healthcheck_only_needs_to_run() -> None:
    found = verdicts([observation(0.5, HEALTHY, beat=up("celery-beat", health=None, status="created")),
                      observation(0.75, HEALTHY)])
    assert [healthy for _, healthy, _ in found] == [None, True]


def test_health_503_sustained_for_two_seconds_fails_within_the_window() -> None:
    found = verdicts([*every(0.25, 1.5, REFUSED), *[observation(1.5 + 0.25 * i, DEGRADED) for i in range(1, 20)]])
    at, healthy, reason = found[-1]
    assert healthy is False and at == 3.75  # first bad answer at 1.75 s, judged 2.0 s later
    assert reason == "sustained failure: backend answered /health 503 (status 'degraded') 9 times in a row over 2.0 s"


def test_bad_answers_must_also_be_many() -> None:
    """Five answers over two seconds, not two answers two seconds apart (slow answers, slow polls)."""
    slow = [observation(at, DEGRADED) for at in (0.5, 2.6, 4.7, 6.8)]
    assert [healthy for _, healthy, _ in verdicts(slow)] == [None] * 4
    assert verdicts([*slow, observation(8.9, DEGRADED)])[-1][1] is False


def test_refused_connections_are_not_bad_answers_and_do_not_reset_the_run() -> None:
    refusing = every(0.25, 30.0, REFUSED)
    assert {healthy for _, healthy, _ in verdicts(refusing)} == {None}
    mixed = [observation(at, answer) for at, answer in
             ((1.0, DEGRADED), (1.5, REFUSED), (2.0, DEGRADED), (2.5, DEGRADED), (3.0, REFUSED), (3.2, DEGRADED))]
    assert verdicts(mixed)[-1][1] is None  # four answers so far
    assert verdicts([*mixed, observation(3.4, DEGRADED)])[-1][1] is False


def test_a_healthy_answer_resets_the_run() -> None:
    flapping = [observation(0.25 * i, HEALTHY if i % 4 == 0 else DEGRADED,
                            backend=up("backend", health="starting")) for i in range(1, 40)]
    assert {healthy for _, healthy, _ in verdicts(flapping)} == {None}


def test_backend_exit_is_a_crash_at_once() -> None:
    exited = up("backend", health="starting", status="restarting", restart_count=1, exit_code=1, ran_seconds=0.84)
    found = verdicts([*every(0.25, 1.0, REFUSED, backend=up("backend", health="starting")),
                      observation(1.25, REFUSED, backend=exited)])
    assert found[-1] == (1.25, False, "crash: openwatch-backend exited with code 1 after 0.8 s (restart 1)")


def test_backend_caught_running_again_after_a_restart_is_a_crash() -> None:
    again = up("backend", health="starting", restart_count=1)
    assert verdicts([observation(1.0, REFUSED, backend=again)])[-1] == (
        1.0, False, "crash: openwatch-backend exited and was restarted (restart 1)")


def test_backend_exited_without_restart_policy_is_a_crash() -> None:
    exited = up("backend", health=None, status="exited", exit_code=0, ran_seconds=3.0)
    assert verdicts([observation(3.5, REFUSED, backend=exited)])[-1][2] == (
        "crash: openwatch-backend exited with code 0 after 3.0 s (restart 0)")


def test_other_containers_fail_on_exit_or_dockers_unhealthy_verdict_only() -> None:
    restarting = up("frontend", health="starting", status="restarting", restart_count=1)
    assert verdicts([observation(1.0, HEALTHY, frontend=restarting)])[-1][1] is None
    exited = up("frontend", status="exited", exit_code=2)
    assert verdicts([observation(1.0, HEALTHY, frontend=exited)])[-1][2] == (
        "crash: openwatch-frontend exited with code 2")
    unhealthy = up("frontend", health="unhealthy")
    assert verdicts([observation(40.0, HEALTHY, frontend=unhealthy)])[-1][2] == (
        "Docker's healthcheck: openwatch-frontend is unhealthy after 40.0 s")


def test_a_failure_names_the_container_whose_log_says_why() -> None:
    """The watcher tells the operator which log to read: the container the rule judged, or the backend
    when its /health answers did."""
    assert judge([observation(40.0, HEALTHY, frontend=up("frontend", health="unhealthy"))], RULE).container == (
        "openwatch-frontend")
    exited = up("backend", status="exited", exit_code=1, ran_seconds=0.5)
    assert judge([observation(1.0, REFUSED, backend=exited)], RULE).container == "openwatch-backend"
    assert verdicts(every(0.25, 5.0, DEGRADED))[-1][1] is False
    assert judge(every(0.25, 5.0, DEGRADED), RULE).container is None  # the backend, by its /health answers


def test_backend_judged_by_its_own_health_not_by_dockers_verdict() -> None:
    """The real backend's healthcheck has no start period: Docker calls a slow start unhealthy while
    /health has not answered yet, and still says so for a while after it answers healthy."""
    slow = up("backend", health="unhealthy")
    assert verdicts([observation(95.0, REFUSED, backend=slow)])[-1][1] is None
    assert verdicts([observation(95.0, REFUSED, backend=slow), observation(110.0, HEALTHY, backend=slow)])[-1] == (
        110.0, True, "healthy after 110.0 s")
    assert verdicts([observation(180.0, REFUSED, backend=slow)])[-1][2].startswith("deadline: not healthy within 180 s")


def test_gone_container_is_a_crash() -> None:
    gone = ContainerState("openwatch-frontend", "missing", None, 0)
    assert verdicts([observation(1.0, HEALTHY, frontend=gone)])[-1][2] == (
        "crash: openwatch-frontend does not exist any more")


def test_never_healthy_fails_at_the_deadline_naming_what_is_missing() -> None:
    starting = up("frontend", health="starting")
    assert verdicts([observation(180.0, REFUSED)])[-1][2] == (
        "deadline: not healthy within 180 s (/health never answered)")
    assert verdicts([observation(180.0, HEALTHY, frontend=starting)])[-1][2] == (
        "deadline: not healthy within 180 s (/health last answered 200 (status 'healthy'); "
        "not ready: openwatch-frontend)")


class FakeResponse:
    def __init__(self, status_code: int, body: object) -> None:
        self.status_code, self.body = status_code, body

    def json(self) -> object:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class FakeSession:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome

    def get(self, url: str, timeout: float) -> FakeResponse:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(("outcome", "answer"), [
    (FakeResponse(200, {"status": "healthy", "database": "healthy", "redis": "healthy"}), HEALTHY),
    (FakeResponse(200, {"status": "healthy", "database": "healthy", "redis": "unhealthy"}), Answer(200, "healthy")),
    (FakeResponse(503, {"status": "degraded", "database": "healthy", "redis": "healthy"}), DEGRADED),
    (FakeResponse(502, ValueError("not JSON")), Answer(502)),
    (FakeResponse(200, ["not", "an", "object"]), Answer(200)),
    (requests.ConnectionError("refused"), REFUSED),
    (requests.ReadTimeout("slow"), REFUSED),
])
def test_health_answer_classified(outcome: object, answer: Answer) -> None:
    assert ask_health(FakeSession(outcome), "http://127.0.0.1:1", 2.0, ("database", "redis")) == answer


def test_health_without_redis_ignores_what_it_says_about_redis() -> None:
    """The real /health of the job-queue era reports ``"redis": "removed"``: healthy there; while an
    installation that still runs Redis needs it healthy."""
    body = {"status": "healthy", "database": "healthy", "redis": "removed", "mongodb": "deprecated"}
    assert ask_health(FakeSession(FakeResponse(200, body)), "http://127.0.0.1:1", 2.0, ("database",)) == HEALTHY
    assert ask_health(FakeSession(FakeResponse(200, body)), "http://127.0.0.1:1", 2.0,
                      ("database", "redis")) == Answer(200, "healthy")
