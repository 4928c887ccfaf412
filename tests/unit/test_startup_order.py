"""The start order (runbook/startup.py ``start``): the user-facing services first, the worker and
celery-beat only once the backend answers /health healthy, and never when it does not (a failed
release's worker never runs). A real HTTP server plays the backend's /health; the engine's
containers are a small fake whose state follows what ``up`` started."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbook.errors import Problem
from runbook.profile import Profile, Service
from runbook.redaction import Redactor
from runbook.startup import Rule, start

SERVICES = ("database", "redis", "backend", "worker", "celery-beat", "frontend")
FAST = Rule(bad_answers=3, bad_window_s=0.2, deadline_s=10.0, poll_s=0.02, request_timeout_s=1.0)


class Engine:
    """Containers by name: running once ``up`` named their service (or ran with none), else exited."""

    def __init__(self) -> None:
        self.running = {"openwatch-db", "openwatch-redis"}
        self.ups: list[tuple[str, ...]] = []
        self.containers = self

    def up(self, *services: str) -> None:
        self.ups.append(services)
        self.running |= {f"openwatch-{service}" for service in (services or SERVICES) if service != "database"}

    def get(self, name: str) -> object:
        now = datetime.now(timezone.utc).isoformat()
        state = {"Status": "running" if name in self.running else "exited", "StartedAt": now, "FinishedAt": now,
                 "ExitCode": 0}
        if name != "openwatch-celery-beat":
            state["Health"] = {"Status": "healthy"}
        return type("Container", (), {"attrs": {"State": state, "Config": {"Cmd": []}, "RestartCount": 0}})()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Engine]]:
    """/health as the backend answers it: refused-like 502 until ``up`` started it, then ``status``."""
    engine, status = Engine(), request.param

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            started = "openwatch-backend" in engine.running
            code = (200 if status == "healthy" else 503) if started else 502
            body = json.dumps({"status": status, "database": "healthy", "redis": "healthy"}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", engine
    server.shutdown()
    server.server_close()


def profile(tmp_path: Path, services: tuple[str, ...] = SERVICES) -> Profile:
    names = {"database": "openwatch-db"}
    return Profile(tmp_path, {}, "0.1.0", "openwatch", (), {
        service: Service(service, names.get(service, f"openwatch-{service}"), has_healthcheck=service != "celery-beat")
        for service in services}, Redactor())


@pytest.mark.parametrize("backend", ["healthy"], indirect=True)
def test_worker_and_beat_start_once_the_backend_answers_healthy(backend: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = backend
    verdict = start(engine.up, engine, profile(tmp_path), url, FAST)
    assert verdict.healthy
    assert engine.ups == [("backend", "frontend"), ()]  # then everything, as one compose up would


@pytest.mark.parametrize("backend", ["degraded"], indirect=True)
def test_a_release_whose_backend_never_gets_healthy_never_starts_its_worker(backend: tuple[str, Engine],
                                                                           tmp_path: Path) -> None:
    url, engine = backend
    with pytest.raises(Problem, match=r"did not start: sustained failure: backend answered /health 503"):
        start(engine.up, engine, profile(tmp_path), url, FAST)
    assert engine.ups == [("backend", "frontend")]
    assert "openwatch-worker" not in engine.running and "openwatch-celery-beat" not in engine.running


@pytest.mark.parametrize("backend", ["healthy"], indirect=True)
def test_without_a_worker_everything_starts_at_once(backend: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = backend
    assert start(engine.up, engine, profile(tmp_path, ("database", "backend", "frontend")), url, FAST).healthy
    assert engine.ups == [()]
