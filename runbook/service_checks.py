"""Checks of the running services: HTTP health, containers, logs, Redis, frontend, API and docs.

Each check raises :class:`Problem` with what is wrong and what to do, or returns what it read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import docker
import requests

from runbook import containers
from runbook.errors import NotApplicable, Problem
from runbook.profile import Profile
from runbook.redaction import Redactor
from runbook.shell import run

TIMEOUT = 5
OPENAPI_TIMEOUT = 60.0
LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


def _get(http: requests.Session, url: str, timeout: float = TIMEOUT, **kwargs) -> requests.Response:
    try:
        return http.get(url, timeout=timeout, **kwargs)
    except requests.RequestException as error:
        raise Problem(f"GET {url} failed ({type(error).__name__}); is the service up? "
                      "`docker compose ps`, then `docker compose up -d`") from None


def backend_health(http: requests.Session, base_url: str, dependencies: tuple[str, ...] = ("database",),
                   expected_version: str | None = None, install_dir: Path | None = None) -> dict:
    """``/health`` answers 200 healthy with every dependency healthy; with ``expected_version``, the
    version it reports is VERSION's, or (``install_dir`` given) a constant the checked-out backend
    code declares itself: the real compose-era /health reports the app's own "1.2.0" while VERSION
    stayed "0.1.0-alpha.1"."""
    response = _get(http, f"{base_url}/health")
    try:
        body = response.json()
    except ValueError:
        raise Problem(f"/health answered {response.status_code} without JSON; check `docker logs openwatch-backend`") from None
    if not isinstance(body, dict):
        raise Problem(f"/health answered {response.status_code} with JSON that is not an object; "
                      "check `docker logs openwatch-backend`")
    down = [name for name in dependencies if body.get(name) != "healthy"]
    if response.status_code != 200 or body.get("status") != "healthy" or down:
        detail = f"; unhealthy: {', '.join(down)}" if down else ""
        raise Problem(f"/health answered {response.status_code} status={body.get('status')!r}{detail}; "
                      "fix the named dependency (`docker compose ps`, `docker logs openwatch-backend`)")
    reported = str(body.get("version"))
    if expected_version is not None and reported != expected_version and not (
            install_dir is not None and declared_in_backend_code(install_dir, reported)):
        raise Problem(f"/health reports version {reported!r} but VERSION says {expected_version!r}"
                      f"{' and the checked-out backend code declares neither' if install_dir else ''}; "
                      "the running image is not the checked-out code: rebuild and restart (`docker compose up -d --build`)")
    return body


def declared_in_backend_code(install_dir: Path, version: str) -> bool:
    """Whether the checked-out backend code holds ``version`` as a string literal."""
    if not re.fullmatch(r"[\w.+-]{1,40}", version):
        return False
    found = run(["git", "-C", str(install_dir), "grep", "--quiet", "--fixed-strings", "-e", f'"{version}"',
                 "--", "backend/app"], check=False, timeout=30)
    return found.returncode == 0


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
    if "redis" not in profile.services:
        raise NotApplicable("the compose files define no redis service (the job queue replaced it in April 2026)")
    redis_requires_password(profile.container("redis"), profile.setting("REDIS_PASSWORD"), profile.redactor)


def redis_requires_password(container: str, password: str, redactor: Redactor) -> None:
    """``container``'s Redis answers PING with ``password`` and refuses it without one."""
    authed = containers.exec_in(container, ["redis-cli", "ping"], secret_env={"REDISCLI_AUTH": password})
    if authed.stdout.strip() != "PONG":
        raise Problem(f"redis-cli ping with REDIS_PASSWORD answered {redactor(authed.stdout.strip() or authed.stderr.strip())!r}; "
                      f"check {container} (`docker logs {container}`) and that .env's REDIS_PASSWORD matches")
    anonymous = containers.exec_in(container, ["redis-cli", "ping"], secret_env={"REDISCLI_AUTH": ""})
    if "NOAUTH" not in anonymous.stdout + anonymous.stderr:
        raise Problem(f"{container} answers without a password; start it with --requirepass (see docker-compose.yml)")


def frontend_page(http: requests.Session, frontend_url: str) -> None:
    response = _get(http, f"{frontend_url}/")
    if response.status_code != 200 or "<html" not in response.text.lower():
        raise Problem(f"frontend {frontend_url}/ answered {response.status_code} without a page; "
                      "check `docker logs openwatch-frontend`")


def frontend_proxies_api(http: requests.Session, frontend_url: str, path: str) -> None:
    """An unauthenticated API call through nginx must reach the backend and get its JSON refusal
    (401, or 403 from FastAPI's HTTPBearer before 0.115)."""
    response = _get(http, f"{frontend_url}{path}", allow_redirects=False)
    if response.status_code not in (401, 403) or "application/json" not in response.headers.get("content-type", ""):
        raise Problem(f"frontend did not proxy {path} to the backend (got {response.status_code}); "
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


# Where the installed code serves them: the rule engine was Aegis, renamed Kensa in 2026.
ENGINE_HEALTH_PATHS = ("/api/scans/kensa/health", "/api/scans/aegis/health")
RULES_PATHS = ("/api/rules/reference", "/api/rules/reference/")


def api_paths(http: requests.Session, base_url: str) -> frozenset[str]:
    """The paths the running backend's OpenAPI document declares. FastAPI builds the document at its
    first request: the real backend's (April 2026) took longer than TIMEOUT on a loaded
    two-core machine right after an upgrade's start, so this one request may take OPENAPI_TIMEOUT."""
    response = _get(http, f"{base_url}/openapi.json", timeout=OPENAPI_TIMEOUT)
    try:
        paths = response.json().get("paths") if response.status_code == 200 else None
    except ValueError:
        paths = None
    if not isinstance(paths, dict):
        raise Problem(f"/openapi.json answered {response.status_code} without paths; the suite reads the API of "
                      "the installed code from it: check `docker logs openwatch-backend`")
    return frozenset(paths)


def served_path(paths: frozenset[str], candidates: tuple[str, ...], what: str) -> str:
    found = next((path for path in candidates if path in paths), None)
    if found is None:
        raise Problem(f"the backend's API has no {what} endpoint (looked for {', '.join(candidates)}); "
                      "the installed code is not an OpenWatch the suite knows")
    return found


def engine_healthy(http: requests.Session, base_url: str, token: str, paths: frozenset[str]) -> str:
    """The rule engine (Aegis, later Kensa) loaded its rules; returns the path asked."""
    path = served_path(paths, ENGINE_HEALTH_PATHS, "rule engine health")
    body = authorized_get(http, base_url, path, token)
    if body.get("status") != "healthy":
        raise Problem(f"{path} reports {body.get('status')!r}"
                      f"{': ' + str(body.get('error'))[:120] if body.get('error') else ''}; the rule bundle did not load")
    return path


def rules_listed(http: requests.Session, base_url: str, token: str, paths: frozenset[str]) -> int:
    path = served_path(paths, RULES_PATHS, "rule reference")
    body = authorized_get(http, base_url, path, token)
    if not body.get("total"):
        raise Problem(f"{path} lists no rules; the rule bundle is empty")
    return int(body["total"])


def docs_served(http: requests.Session, base_url: str) -> str:
    """Swagger UI at /docs (the procedure says /api/docs; both are tried)."""
    for path in ("/docs", "/api/docs"):
        response = _get(http, f"{base_url}{path}")
        if response.status_code == 200 and "swagger" in response.text.lower():
            return path
    raise Problem("no API documentation at /docs or /api/docs; check the backend's FastAPI docs_url")
