"""The run's mode, decided once at configure time and read everywhere else from the stash.

An upgrade run (``--target``), its own runs (``--resume``, ``--rollback-to``), a dry run (``--plan``),
an audit (the pre- or post-flight suite on its own), or none of them (the project's own tests). The
upgrade suite's own runs each run one test of it; this plugin deselects the others, and refuses a
``--resume`` or ``--rollback-to`` whose journal does not allow it before anything is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.keys import RUN_MODE_KEY
from runbook.errors import OperatorError
from runbook.resume import unfinished_run
from runbook.rollback_to import finished_upgrade

UPGRADE, RESUME, ROLLBACK_TO, PLAN, AUDIT = "upgrade", "resume", "rollback_to", "plan", "audit"
PG_ROLLBACK = "pg_rollback"  # --component postgres --pg-rollback: back to the old volume a major upgrade kept
AUDIT_SUITES = ("preflight", "postflight")
# Mode of the upgrade suite -> the only test it runs (an upgrade runs all the others).
OWN_TESTS = {ROLLBACK_TO: "test_rollback_to_recorded_release", RESUME: "test_resume_unfinished_run",
             PLAN: "test_plan", PG_ROLLBACK: "test_pg_rollback_to_old_volume"}


@dataclass(frozen=True)
class RunMode:
    name: str | None  # upgrade, resume, rollback_to, plan, audit; None for the project's own tests
    rollback_to: str | None = None  # the REF of --rollback-to

    @property
    def upgrade_suite(self) -> bool:
        return self.name in (UPGRADE, RESUME, ROLLBACK_TO, PLAN, PG_ROLLBACK)

    @property
    def own_test(self) -> str | None:
        """The one test of the upgrade suite this mode runs; None when it runs the whole suite."""
        return OWN_TESTS.get(self.name)

    @property
    def changes_things(self) -> bool:
        """Whether this run may change the installation (and so must hold its lock)."""
        return self.name in (UPGRADE, RESUME, ROLLBACK_TO, PG_ROLLBACK)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("openwatch")
    group.addoption("--rollback-to", metavar="REF",
                    help="undo the last finished upgrade (recorded in the journal) back to REF, the tag, VERSION or "
                         "commit id (7+ digits) it started from, as its own run")
    group.addoption("--resume", action="store_true",
                    help="settle an upgrade run that died (SIGKILL, power loss): roll it back, or complete it "
                         "if it had verified the new version")
    group.addoption("--plan", action="store_true",
                    help="change nothing: print (and report) the checks the upgrade to --target would run, each stage "
                         "with what it changes, and the rollback that applies if it failed there")


def arg_paths(config: pytest.Config) -> list[Path]:
    """The paths the run was given (node ids without their ``::`` part), resolved."""
    return [(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args]


def decide(config: pytest.Config) -> RunMode:
    suites = config.rootpath / "suites"
    paths = arg_paths(config)

    def within(suite: Path) -> bool:
        return any(path == suite or suite in path.parents for path in paths)

    if within(suites / "upgrade"):
        rollback_to = config.getoption("rollback_to")
        if rollback_to:
            return RunMode(ROLLBACK_TO, rollback_to)
        if config.getoption("resume"):
            return RunMode(RESUME)
        if config.getoption("pg_rollback", None):
            return RunMode(PG_ROLLBACK)
        return RunMode(PLAN if config.getoption("plan") else UPGRADE)
    audits = [suites / name for name in AUDIT_SUITES]
    if paths and all(any(path == suite or suite in path.parents for suite in audits) for path in paths):
        return RunMode(AUDIT)
    return RunMode(None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUN_MODE_KEY] = decide(config)


def mode_of(config: pytest.Config) -> RunMode:
    return config.stash.get(RUN_MODE_KEY, RunMode(None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An own run runs only its own test; an upgrade run runs none of them."""
    mode = mode_of(config)
    if not mode.upgrade_suite:
        return
    suite = config.rootpath / "suites" / "upgrade"

    def other_mode(item: pytest.Item) -> bool:
        name = getattr(item, "originalname", item.name)
        return name != mode.own_test if mode.own_test else name in OWN_TESTS.values()

    dropped = [item for item in items if Path(item.path).parent == suite and other_mode(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A --rollback-to or --resume the journal does not allow is refused before anything is touched."""
    mode = mode_of(session.config)
    if not session.items or mode.name not in (ROLLBACK_TO, RESUME):
        return
    install_dir = session.config.getoption("install_dir")  # judged by plugins/options.py, which ran first
    try:
        if mode.name == ROLLBACK_TO:
            finished_upgrade(install_dir, mode.rollback_to)
        else:
            unfinished_run(install_dir)
    except OperatorError as error:
        raise pytest.UsageError(f"--{'rollback-to' if mode.name == ROLLBACK_TO else 'resume'}: {error}") from None
