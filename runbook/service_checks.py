"""Checks of the running services: HTTP health, containers, logs, Redis, frontend, API and docs.

Each check raises :class:`Problem` with what is wrong and what to do, or returns what it read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import docker
import requests

from runbook import containers
from runbook.errors import NotApplicable, Problem
from runbook.profile import Profile
from runbook.redaction import Redactor

TIMEOUT = 5
LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


def _get(http: requests.Session, url: str, **kwargs) -> requests.Response:
    try:
        return http.get(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as error:
        raise Problem(f"GET {url} failed ({type(error).__name__}); is the service up? "
                      "`docker compose ps`, then `docker compose up -d`") from None


def backend_health(http: requests.Session, base_url: str, expected_version: str | None = None) -> dict:
    response = _get(http, f"{base_url}/health")
    try:
        body = response.json()
    except ValueError:
        raise Problem(f"/health answered {response.status_code} without JSON; check `docker logs openwatch-backend`") from None
    down = [name for name in ("database", "redis") if body.get(name) != "healthy"]
    if response.status_code != 200 or body.get("status") != "healthy" or down:
        detail = f"; unhealthy: {', '.join(down)}" if down else ""
        raise Problem(f"/health answered {response.status_code} status={body.get('status')!r}{detail}; "
                      "fix the named dependency (`docker compose ps`, `docker logs openwatch-backend`)")
    if expected_version is not None and body.get("version") != expected_version:
        raise Problem(f"/health reports version {body.get('version')!r} but VERSION says {expected_version!r}; "
                      "the running image is not the checked-out code: rebuild and restart (`docker compose up -d --build`)")
    return body


def container_states(client: docker.DockerClient, profile: Profile) -> dict[str, containers.ContainerState]:
    return {service: containers.state(client, spec.container) for service, spec in profile.services.items()}


def containers_healthy(client: docker.DockerClient, profile: Profile) -> dict[str, containers.ContainerState]:
    states = container_states(client, profile)
    problems = []
    for service, found in states.items():
        spec = profile.services[service]
        if not found.exists:
            problems.append(f"{found.name} does not exist (`docker compose up -d {service}`)")
        elif found.restart_looping:
            problems.append(f"{found.name} is in a restart loop ({found.restart_count} restarts; "
                            f"`docker logs --tail 50 {found.name}`)")
        elif found.status != "running":
            problems.append(f"{found.name} is {found.status} (`docker logs --tail 50 {found.name}`, "
                            f"then `docker compose up -d {service}`)")
        elif spec.has_healthcheck and found.health != "healthy":
            problems.append(f"{found.name} is running but {found.health or 'has no health status'} "
                            f"(`docker inspect --format '{{{{json .State.Health}}}}' {found.name}`)")
    if problems:
        raise Problem("; ".join(problems))
    return states


def restart_counts_stable(before: Mapping[str, containers.ContainerState],
                          after: Mapping[str, containers.ContainerState]) -> None:
    rising = [f"{after[s].name} {before[s].restart_count}->{after[s].restart_count}"
              for s in after if s in before and after[s].restart_count > before[s].restart_count]
    if rising:
        raise Problem(f"containers restarted during this run: {', '.join(rising)}; "
                      "a crash loop: read `docker logs --tail 100 <container>`")


def logs_clean(client: docker.DockerClient, container: str, minutes: int, redactor: Redactor) -> None:
    try:
        text = containers.logs_since(client, container, minutes)
    except docker.errors.NotFound:
        raise Problem(f"{container} does not exist, so its logs cannot be read (`docker compose up -d`)") from None
    bad = [line for line in text.splitlines() if LOG_PROBLEM.search(line)]
    if bad:
        first = " | ".join(redactor(line.strip())[:200] for line in bad[:3])
        raise Problem(f"{len(bad)} ERROR/CRITICAL/Traceback lines in {container}'s last {minutes} min of logs, "
                      f"first: {first}; read `docker logs --since {minutes}m {container}`")


def redis_answers(profile: Profile) -> None:
    container = profile.container("redis")
    password = profile.setting("REDIS_PASSWORD")
    authed = containers.exec_in(container, ["redis-cli", "ping"], secret_env={"REDISCLI_AUTH": password})
    if authed.stdout.strip() != "PONG":
        raise Problem(f"redis-cli ping with REDIS_PASSWORD answered {profile.redactor(authed.stdout.strip() or authed.stderr.strip())!r}; "
                      f"check {container} (`docker logs {container}`) and that .env's REDIS_PASSWORD matches")
    anonymous = containers.exec_in(container, ["redis-cli", "ping"], secret_env={"REDISCLI_AUTH": ""})
    if "NOAUTH" not in anonymous.stdout + anonymous.stderr:
        raise Problem(f"{container} answers without a password; start it with --requirepass (see docker-compose.yml)")


def frontend_page(http: requests.Session, frontend_url: str) -> None:
    response = _get(http, f"{frontend_url}/")
    if response.status_code != 200 or "<html" not in response.text.lower():
        raise Problem(f"frontend {frontend_url}/ answered {response.status_code} without a page; "
                      "check `docker logs openwatch-frontend`")


def frontend_proxies_api(http: requests.Session, frontend_url: str) -> None:
    """An unauthenticated API call through nginx must reach the backend and get its 401."""
    response = _get(http, f"{frontend_url}/api/rules/reference/")
    if response.status_code != 401 or "application/json" not in response.headers.get("content-type", ""):
        raise Problem(f"frontend did not proxy /api/ to the backend (got {response.status_code}); "
                      "check the backend is up and nginx's /api/ location")


def login(http: requests.Session, base_url: str, user: str, password: str) -> str:
    if not user or not password:
        raise NotApplicable("no audit user configured: set OPENWATCH_AUDIT_USER and OPENWATCH_AUDIT_PASSWORD in .env")
    try:
        response = http.post(f"{base_url}/api/auth/login", json={"username": user, "password": password},
                             timeout=TIMEOUT)
    except requests.RequestException as error:
        raise Problem(f"POST /api/auth/login failed ({type(error).__name__}); is the backend up?") from None
    if response.status_code != 200 or "access_token" not in response.text:
        raise Problem(f"login as {user} answered {response.status_code}; check the audit account and the backend logs")
    return response.json()["access_token"]


def authorized_get(http: requests.Session, base_url: str, path: str, token: str) -> dict:
    response = _get(http, f"{base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise Problem(f"GET {path} with a valid token answered {response.status_code}: "
                      f"{response.text[:120]}; check `docker logs openwatch-backend`")
    return response.json()


def aegis_healthy(http: requests.Session, base_url: str, token: str) -> None:
    body = authorized_get(http, base_url, "/api/scans/aegis/health", token)
    if body.get("status") != "healthy":
        raise Problem(f"Aegis reports {body.get('status')!r}; the rule bundle did not load")


def rules_listed(http: requests.Session, base_url: str, token: str) -> None:
    body = authorized_get(http, base_url, "/api/rules/reference/", token)
    if not body.get("total"):
        raise Problem("/api/rules/reference/ lists no rules; the Aegis bundle is empty")


def docs_served(http: requests.Session, base_url: str) -> str:
    """Swagger UI at /docs (the procedure says /api/docs; both are tried)."""
    for path in ("/docs", "/api/docs"):
        response = _get(http, f"{base_url}{path}")
        if response.status_code == 200 and "swagger" in response.text.lower():
            return path
    raise Problem("no API documentation at /docs or /api/docs; check the backend's FastAPI docs_url")
