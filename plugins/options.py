"""Command-line options for every suite, validated once the suites are collected.

Options are checked only when a test under ``suites/`` is selected, so ``pytest tests`` works
without an installation. Every problem is a one-line ``pytest.UsageError`` that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from plugins.keys import MAINTENANCE_KEY
from plugins.runmode import PLAN, UPGRADE, mode_of
from runbook import profile as profiles
from runbook import release_checks, targets
from runbook.errors import OperatorError, Problem
from runbook.journal import Journal
from runbook.profile import Profile
from runbook.targets import Target

PROFILE_KEY = pytest.StashKey[Profile]()
OPTIONS_KEY = pytest.StashKey["SuiteOptions"]()


@dataclass(frozen=True)
class SuiteOptions:
    install_dir: Path
    target: str | None  # as given
    resolved_target: Target | None  # None without --target, or while an upgrade is at work (not judged then)
    ticket: str | None
    base_url: str
    frontend_url: str
    backup_dir: Path
    backup_max_age_hours: float
    backup_retention_days: float
    log_window_minutes: int
    queue_backlog_limit: int
    break_lock: bool


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("openwatch", "OpenWatch installation")
    group.addoption("--install-dir", type=Path, default=Path("/opt/openwatch"),
                    help="the OpenWatch installation (a git clone with .env); default /opt/openwatch")
    group.addoption("--target", help="what to check or upgrade to: a tag (v0.2.0), a branch of origin (main, "
                                     "origin/main) or a commit id; it must contain the installed commit")
    group.addoption("--ticket", help="change ticket id, recorded in reports")
    group.addoption("--runtime", default="docker", help="container runtime: docker (podman is not supported yet)")
    group.addoption("--compose-file", type=Path, action="append", default=[],
                    help="extra compose file, relative to --install-dir (repeatable)")
    group.addoption("--prod", action="store_true", help="include docker-compose.prod.yml, as production runs")
    group.addoption("--base-url", help="backend URL; default http://127.0.0.1:<published backend port>")
    group.addoption("--frontend-url", help="frontend URL; default http://127.0.0.1:<published frontend port>")
    group.addoption("--backup-dir", type=Path, help="database backups; default <install-dir>/backups/postgres")
    group.addoption("--backup-max-age-hours", type=float, default=26.0, help="newest backup must be younger")
    group.addoption("--backup-retention-days", type=float, default=7.0, help="backups older than this are flagged")
    group.addoption("--log-window-minutes", type=int, default=10, help="how far back to read service logs")
    group.addoption("--queue-backlog-limit", type=int, default=100, help="queued Celery tasks tolerated")
    group.addoption("--break-lock", action="store_true",
                    help="take over an upgrade lock whose holder is gone (never one a live process holds)")


def selects_suites(session: pytest.Session) -> bool:
    suites = session.config.rootpath / "suites"
    return any(suites in Path(item.path).parents for item in session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.items or not selects_suites(session):
        return
    config = session.config
    config.stash[PROFILE_KEY] = profile = load_profile(config)
    config.stash[OPTIONS_KEY] = build_options(config, profile, resolve_target(config, profile))


def load_profile(config: pytest.Config) -> Profile:
    if config.getoption("runtime") != "docker":
        raise pytest.UsageError(f"--runtime {config.getoption('runtime')} is not supported yet; use --runtime docker")
    problem = combination_problem(config)
    if problem:
        raise pytest.UsageError(problem)
    mode = mode_of(config)
    upgrade_run = mode.upgrade_suite
    # First of all: while another run is at work, the installation (even its VERSION) is in its hands.
    held = release_checks.live_holder(config.getoption("install_dir")) if upgrade_run else None
    if held:
        raise pytest.UsageError(held)
    try:
        docker.from_env(timeout=10).ping()
    except docker.errors.DockerException:
        raise pytest.UsageError("the Docker engine is not running; start dockerd (or `bash sandbox/bootstrap-docker.sh`)") from None
    try:  # an audit reports what a missing secret breaks; an upgrade must not start without it
        profile = profiles.load(config.getoption("install_dir"), tuple(config.getoption("compose_file")),
                                use_prod_overlay=config.getoption("prod"), require_secrets=upgrade_run)
    except OperatorError as error:
        raise pytest.UsageError(str(error)) from None
    problem = profiles.service_problem(profile.services, profile.compose_files)
    if problem:
        raise pytest.UsageError(problem)
    target = config.getoption("target")
    own_run = [name for name in ("rollback_to", "resume") if config.getoption(name, None)]
    if upgrade_run and not target and not own_run and not config.getoption("component", None):
        raise pytest.UsageError("the upgrade suite needs --target (a tag, a branch such as main, or a commit id), "
                                "or --rollback-to REF to undo the last upgrade, or --resume to settle one that died")
    died = release_checks.died_unfinished(Journal.load(profile.install_dir)) if mode.name in (UPGRADE, PLAN) else None
    if died:  # before --target is judged: the checkout may already be the target's
        raise pytest.UsageError(died)
    return profile


def combination_problem(config: pytest.Config) -> str | None:
    """Options that exclude each other, judged before anything is read."""
    if sum(bool(config.getoption(name, None)) for name in ("target", "rollback_to", "resume")) > 1:
        return "--target, --rollback-to and --resume exclude each other; pass one"
    other_run = next((name for name in ("rollback_to", "resume", "pg_rollback") if config.getoption(name, None)), None)
    if config.getoption("plan", None) and other_run:
        return (f"--plan shows what an upgrade would do, changing nothing; it does not go with "
                f"--{other_run.replace('_', '-')}, which changes the installation: drop one of them")
    return None


def resolve_target(config: pytest.Config, profile: Profile) -> Target | None:
    """``--target`` as one commit of origin that contains the installed one; judged once, here."""
    target = config.getoption("target")
    if not target or MAINTENANCE_KEY in config.stash:  # a running upgrade may have checked it out already
        return None
    try:
        resolved = targets.resolve(profile.install_dir, target)
        targets.judge(profile.install_dir, resolved, profile.version)
    except (OperatorError, Problem) as error:
        raise pytest.UsageError(f"--target: {error}") from None
    return resolved


def build_options(config: pytest.Config, profile: Profile, resolved_target: Target | None) -> SuiteOptions:
    backend_port = profile.published_port("backend", 8000, 8000)
    frontend_port = profile.published_port("frontend", 80, 3000)
    return SuiteOptions(
        install_dir=profile.install_dir,
        target=config.getoption("target"),
        resolved_target=resolved_target,
        ticket=config.getoption("ticket"),
        base_url=(config.getoption("base_url") or f"http://127.0.0.1:{backend_port}").rstrip("/"),
        frontend_url=(config.getoption("frontend_url") or f"http://127.0.0.1:{frontend_port}").rstrip("/"),
        backup_dir=config.getoption("backup_dir") or profile.install_dir / "backups" / "postgres",
        backup_max_age_hours=config.getoption("backup_max_age_hours"),
        backup_retention_days=config.getoption("backup_retention_days"),
        log_window_minutes=config.getoption("log_window_minutes"),
        queue_backlog_limit=config.getoption("queue_backlog_limit"),
        break_lock=config.getoption("break_lock"),
    )
