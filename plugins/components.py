"""``--component``: upgrade one part of the installation instead of the release (the procedure's
"Upgrading Individual Components"), through the same suite: pre-flight gate, lock, journal, report,
automatic rollback. Options are judged once the suite is collected, in one line each."""

from __future__ import annotations

import pytest

from plugins.options import PROFILE_KEY
from runbook import aegis_rules
from runbook.components import COMPONENTS
from runbook.errors import OperatorError
from runbook.pg_major_rollback import finished_major_upgrade
from runbook.targets import Target

RULES_TARGET_KEY = pytest.StashKey[Target]()  # --rules, resolved once in the bundle's origin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("openwatch")
    group.addoption("--component", choices=COMPONENTS,
                    help="upgrade one component instead of the release: backend or frontend (with --target: only "
                         "its services rebuilt and restarted), postgres (with --image: a major version, by dump and "
                         "restore onto a new volume; the old one is kept), redis (with --image: a newer Redis image on the same "
                         "volume), aegis (with --rules: the rule bundle in backend/aegis)")
    group.addoption("--image", help="with --component postgres or redis: the new image, e.g. "
                                    "openwatch-sandbox/postgres:17 or openwatch-sandbox/redis:8")
    group.addoption("--rules", metavar="REF",
                    help="with --component aegis: the Aegis rule release to check out in backend/aegis (a tag, a "
                         "branch or a commit id of its origin); backend and worker rebuilt and restarted")
    group.addoption("--pg-rollback", action="store_true",
                    help="with --component postgres: go back to the old image on the old volume the last finished "
                         "major upgrade kept (rows written since are lost: refused unless "
                         "--pg-rollback-discarding-writes)")
    group.addoption("--pg-rollback-discarding-writes", action="store_true",
                    help="with --pg-rollback: go back even though the app wrote to the new cluster since")


def component_problem(config: pytest.Config) -> str | None:
    component, image = config.getoption("component"), config.getoption("image")
    going_back = config.getoption("pg_rollback")
    if config.getoption("rules") and component != "aegis":
        return "--rules is for --component aegis (the rule bundle's release); add --component aegis or drop --rules"
    if component == "aegis":
        if config.getoption("target") or image or going_back:
            return "--component aegis updates the rule bundle only; drop --target, --image and --pg-rollback"
        return None if config.getoption("rules") else \
            "--component aegis needs --rules (a tag, branch or commit of the rule bundle's origin, e.g. aegis-2026.2)"
    if not component:
        return "--image and --pg-rollback need --component postgres (--image also --component redis)" \
            if image or going_back else None
    if config.getoption("rollback_to") or config.getoption("resume"):
        return "--component runs an upgrade of its own; do not combine it with --rollback-to or --resume"
    if component == "redis":
        if going_back or config.getoption("target"):
            return "--component redis changes only the Redis image; do not combine it with --pg-rollback or --target"
        return None if image else "--component redis needs --image (the new Redis image, e.g. openwatch-sandbox/redis:8)"
    if component != "postgres":
        if image or going_back:
            return f"--image and --pg-rollback are for --component postgres, not {component}"
        return None if config.getoption("target") else \
            f"--component {component} needs --target (the release whose {component} to build and start)"
    if config.getoption("target"):
        return "--component postgres upgrades the installed release's database; do not combine it with --target"
    if going_back:
        return "--pg-rollback goes back to the image the journal recorded; drop --image" if image else None
    if not image:
        return "--component postgres needs --image (the new PostgreSQL image, e.g. openwatch-sandbox/postgres:17)"
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    profile = config.stash.get(PROFILE_KEY, None)
    if profile is None:
        return
    problem = component_problem(config)
    if problem:
        raise pytest.UsageError(problem)
    if config.getoption("component") == "aegis":
        try:
            config.stash[RULES_TARGET_KEY] = aegis_rules.judge(profile, config.getoption("rules"))
        except OperatorError as error:
            raise pytest.UsageError(str(error)) from None
    if config.getoption("pg_rollback"):
        try:
            finished_major_upgrade(profile.install_dir)
        except OperatorError as error:
            raise pytest.UsageError(f"--pg-rollback: {error}") from None
