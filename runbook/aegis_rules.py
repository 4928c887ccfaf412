"""``--component aegis --rules REF``: the procedure's "Aegis Rules" update (``cd backend/aegis && git
pull origin main``, then ``docker compose up -d --build backend worker``), done as the suite does an
upgrade: pre-flight gate, lock, recorded state and verified backup, ordered stages, automatic
rollback to exactly the recorded state.

The rule bundle is its own git repository inside the installation (``backend/aegis``, its own
origin). REF (a tag, a branch of that origin or a commit id) is resolved once to a commit; the run
records the bundle's commit and what the engine serves (its health and the rule count), checks the
target commit out detached, rebuilds and restarts the backend and worker only (every other container
keeps running: their start times are compared), and accepts the result only when the engine's health
answers healthy and the rules endpoint lists exactly as many rules as the target's ``rules.json``
holds. On failure the recorded commit is checked out again, the two images rebuilt (they come out as
the recorded ones: the bundle's ``.git`` is not in the image) and the engine must serve what it
served before."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from shlex import quote

import requests

from runbook import backout, gitrepo, service_checks, targets
from runbook.app_component import AppComponentUpgrade, ComponentRollback
from runbook.compose import Compose, stop_containers
from runbook.errors import OperatorError, Problem
from runbook.journal import Journal
from runbook.rollback import VERIFY_RESTORED, RollbackResult
from runbook.shell import progress
from runbook.upgrade import Stage

BUNDLE_DIR = Path("backend") / "aegis"
RULES_FILE = "rules.json"
SERVICES = ("backend", "worker")  # the procedure's `--build backend worker`: the image that loads the rules
TIER = "rules"
WHAT_TO_PASS = "pass a tag, a branch or a commit id of the rule bundle's origin (`git -C backend/aegis tag`)"


def rule_count(text: str, where: str) -> int:
    """How many rules a ``rules.json`` holds (a JSON list); Problem naming ``where`` when it is not one."""
    try:
        rules = json.loads(text)
    except ValueError as error:
        raise Problem(f"{where} is not JSON ({error.msg} at line {error.lineno}); pick another rule release") from None
    if not isinstance(rules, list):
        raise Problem(f"{where} holds a JSON {type(rules).__name__}, not the list of rules the engine loads; "
                      "pick another rule release")
    return len(rules)


def resolve(install_dir: Path, name: str) -> targets.Target:
    """``--rules``: the commit ``name`` means in the bundle's origin (OperatorError in one line)."""
    bundle = Path(install_dir) / BUNDLE_DIR
    if not (bundle / ".git").exists():
        raise OperatorError(f"{bundle} is not a git repository; the Aegis rule bundle must be cloned there "
                            "before its rules can be updated")
    try:
        target = targets.resolve(bundle, name)
    except OperatorError as error:
        raise OperatorError(str(error).replace(targets.WHAT_TO_PASS, WHAT_TO_PASS)) from None
    if target.commit == gitrepo.head_commit(bundle):
        raise OperatorError(f"the rule bundle is already at {target.label}; there is nothing to update")
    return target


def judge(profile, name: str) -> targets.Target:
    """What ``--component aegis --rules NAME`` needs before anything runs; OperatorError naming the option."""
    try:
        audit_account(profile)
    except OperatorError as error:
        raise OperatorError(f"--component aegis: {error}") from None
    try:
        return resolve(profile.install_dir, name)
    except OperatorError as error:
        raise OperatorError(f"--rules: {error}") from None


def audit_account(profile) -> tuple[str, str]:
    """The account the engine's health and rule count are read with (they need a token); OperatorError
    before anything runs when ``.env`` has none, as a stage would otherwise only be skipped."""
    user, password = profile.setting("OPENWATCH_AUDIT_USER"), profile.setting("OPENWATCH_AUDIT_PASSWORD")
    if not user or not password:
        raise OperatorError("the engine's health and rule count need a token: set OPENWATCH_AUDIT_USER and "
                            "OPENWATCH_AUDIT_PASSWORD in .env (an account that can log in)")
    return user, password


@dataclass(frozen=True)
class Served:
    """What the running engine serves: its health and the rules its reference endpoint lists."""
    healthy: bool
    total: int

    def line(self) -> str:
        return f"{'healthy' if self.healthy else 'unhealthy'}, {self.total} rules"


def served(base_url: str, user: str, password: str) -> Served:
    with requests.Session() as http:
        token = service_checks.login(http, base_url, user, password)
        paths = service_checks.api_paths(http, base_url)
        try:
            service_checks.engine_healthy(http, base_url, token, paths)
            healthy = True
        except Problem:
            healthy = False
        rules = service_checks.served_path(paths, service_checks.RULES_PATHS, "rule reference")
        return Served(healthy, int(service_checks.authorized_get(http, base_url, rules, token).get("total") or 0))


def count_problem(listed: int, expected: int, target: str) -> str | None:
    if listed == expected:
        return None
    return (f"the rules endpoint lists {listed} rules, {target}'s {RULES_FILE} holds {expected}; the backend did not "
            "load the new bundle")


class AegisRulesUpgrade(AppComponentUpgrade):
    """One update of the rule bundle to ``settings.target`` (a commit of the bundle's origin)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, component="aegis", **kwargs)

    @property
    def bundle(self) -> Path:
        return self.profile.install_dir / BUNDLE_DIR

    def own_services(self) -> tuple[str, ...]:
        return SERVICES

    def make_rollback(self) -> AegisRollback:
        return AegisRollback(self)

    def rules(self) -> dict:
        return self.journal.data["aegis_rules"]

    def served(self) -> Served:
        return served(self.settings.base_url, *audit_account(self.profile))

    # -- stages --------------------------------------------------------------------------------
    def stage_lock_and_record(self) -> None:
        super().stage_lock_and_record()
        target, bundle = self.settings.target, self.bundle
        commit = gitrepo.head_commit(bundle)
        expected = rule_count(gitrepo.file_at(bundle, target.commit, RULES_FILE), f"{target.label}'s {RULES_FILE}")
        now = self.served()
        self.journal.set("aegis_rules", {"bundle": str(bundle), "before_commit": commit,
                                         "before_ref": gitrepo.head_ref(bundle), "served_before": asdict(now),
                                         "target": target.name, "target_commit": target.commit,
                                         "expected_rules": expected})
        progress(f"rule bundle at {gitrepo.head_ref(bundle)} ({commit[:12]}), serving {now.line()}; "
                 f"{target.label} holds {expected} rules")

    def stage_checkout_rules(self) -> None:
        """The commit ``--rules`` resolved to (a branch that moved since is not followed), detached."""
        gitrepo.git(self.bundle, "fetch", "--quiet", "--tags", "origin", timeout=600)
        gitrepo.git(self.bundle, "checkout", "--quiet", "--detach", self.settings.target.commit)
        self.new_profile = self.load_profile()

    def stage_drain_and_stop(self) -> None:
        """The backend first (no new work), then the worker, given the drain deadline to finish its
        task; what is queued stays in Redis (or the job table) for the same worker code to take up."""
        old = self.profile
        stop_containers(self.client, [old.container("backend")])
        stop_containers(self.client, [old.container("worker")], timeout=int(self.settings.drain_deadline_s))
        self.record_at_stop()

    def stage_verify(self) -> None:
        new, base = self.new_profile, self.settings.base_url
        user, password = audit_account(new)
        with requests.Session() as http:
            service_checks.backend_health(http, base, new.health_dependencies, expected_version=new.version,
                                          install_dir=new.install_dir)
            token = service_checks.login(http, base, user, password)
            paths = service_checks.api_paths(http, base)
            service_checks.engine_healthy(http, base, token, paths)
            listed = service_checks.rules_listed(http, base, token, paths)
        problem = count_problem(listed, self.rules()["expected_rules"], self.settings.target.label)
        if problem:
            raise Problem(problem)
        service_checks.containers_healthy(self.client, new)
        self.others_not_restarted()
        self.remember(after=self.capture(new))
        self.journal.set("aegis_rules", {**self.rules(), "served_after": asdict(Served(True, listed))})


class AegisRollback(ComponentRollback):
    """Back to the recorded bundle commit: checked out, backend and worker rebuilt and restarted (only
    when the run had stopped them), then the engine must serve what it served before."""

    upgrade: AegisRulesUpgrade

    def run(self, failed_stage: str) -> RollbackResult:
        upgrade = self.upgrade
        upgrade.release_snapshot()
        if upgrade.before is None or "aegis_rules" not in upgrade.journal.data:
            upgrade.lock.release()
            upgrade.journal.finish("NOT STARTED")
            return RollbackResult("none", "none", ok=True)
        actions = rollback_actions(failed_stage)
        if not actions:
            return self.run_tier("none")
        return self.go_back_by(TIER, "putting the rule bundle back",
                               [(title, partial(ACTIONS[title], self)) for title in actions])

    def restore_rules(self) -> None:
        gitrepo.git(self.upgrade.bundle, "checkout", "--quiet", "--force", "--detach",
                    self.upgrade.rules()["before_commit"])

    def rebuild(self) -> None:
        current = self.current_profile()
        Compose.of(current)("build", "--quiet", *self.upgrade.services(current), timeout=3600)

    def verify_restored(self) -> None:
        """The release rollback's verification (health, version, containers, revision and schema), and
        the engine serving what it served before, on the images recorded, the others never restarted."""
        super().verify_restored()
        upgrade, recorded = self.upgrade, self.upgrade.rules()
        commit = gitrepo.head_commit(upgrade.bundle)
        if commit != recorded["before_commit"]:
            raise Problem(f"the rule bundle is at {commit[:12]}, recorded {recorded['before_commit'][:12]}")
        now, before = upgrade.served(), Served(**recorded["served_before"])
        if now != before:
            raise Problem(f"the engine serves {now.line()}, recorded {before.line()}")
        restored = upgrade.journal.data.get("restored") or {}
        changed = sorted(service for service in SERVICES
                         if restored.get("image_ids", {}).get(service) != upgrade.before.image_ids.get(service))
        if changed:
            raise Problem(f"{', '.join(changed)} run other images than recorded after the rebuild")
        upgrade.others_not_restarted()

    def leave_stopped_safe(self, result: RollbackResult) -> None:
        upgrade = self.upgrade
        self.stop_app_if_it_can()
        result.manual_steps = [
            f"cd {quote(str(upgrade.bundle))} && git checkout --detach {upgrade.rules()['before_commit']}   "
            f"# {upgrade.rules()['before_ref']}",
            f"cd {quote(str(self.install_dir))} && docker compose build {' '.join(SERVICES)}",
            f"docker compose up -d --no-deps {' '.join(SERVICES)}   # then: pytest suites/postflight",
        ]


# The stages in order, each calling its method (the release upgrade's for gate, backup, verify_backup and
# finish; the component upgrade's for build and start). Only a failure in finish is not rolled back.
STAGES: tuple[Stage, ...] = (
    Stage("gate", "pre-flight gate passed", "nothing", AegisRulesUpgrade.stage_gate,
          "nothing: lets the update go on only if every pre-flight check passed"),
    Stage("lock_and_record", "lock taken, state, rule bundle commit and served rules recorded", "nothing",
          AegisRulesUpgrade.stage_lock_and_record,
          "takes the run lock, writes the journal; reads the database state, the bundle's commit and what the engine "
          "serves, and counts the target's rules"),
    Stage("backup", "database and configuration backed up", "nothing", AegisRulesUpgrade.stage_backup,
          "writes a pg_dump of the database and copies .env, certificates and compose files to the backup folder"),
    Stage("verify_backup", "backup verified by restore", "nothing", AegisRulesUpgrade.stage_verify_backup,
          "reads the dump back (sha256, pg_restore --list), compares the scratch restore, drops it"),
    Stage("checkout_rules", "target rules checked out in backend/aegis", "code", AegisRulesUpgrade.stage_checkout_rules,
          "fetches the bundle's origin and checks out the target commit, detached"),
    Stage("build", "backend and worker images built while the old ones serve", "code", AegisRulesUpgrade.stage_build,
          "builds the backend and worker images with the new bundle"),
    Stage("drain_and_stop", "backend stopped, then the worker (its task finished)", "containers",
          AegisRulesUpgrade.stage_drain_and_stop,
          "stops the backend and the worker (the database, Redis, beat and frontend keep running)"),
    Stage("start", "backend and worker started (--no-deps) and healthy", "containers", AegisRulesUpgrade.stage_start,
          "starts the backend and worker on the new images"),
    Stage("verify", "engine healthy, the target's rule count listed, the others not restarted", "containers",
          AegisRulesUpgrade.stage_verify, "nothing: reads health, the engine's health, the rules listed, containers and every table"),
    Stage("finish", "lock released, old backups pruned", "nothing", AegisRulesUpgrade.stage_finish,
          "releases the lock, deletes backups past retention (never the newest)", rolled_back=False),
)
NAMES = [stage.name for stage in STAGES]

# Each rollback action (its title, as the journal and report print it) and what it runs.
ACTIONS: dict[str, Callable[[AegisRollback], None]] = {
    "stop the backend and worker": AegisRollback.stop_app,
    "check out the recorded rule bundle commit": AegisRollback.restore_rules,
    "rebuild the backend and worker images": AegisRollback.rebuild,
    "compare the database with the state at the stop": AegisRollback.verify_database,
    "start the backend and worker and wait healthy": AegisRollback.start_old,
    VERIFY_RESTORED: AegisRollback.verify_restored,
}


def rollback_actions(failed_stage: str) -> list[str]:
    """What puts the installation back after ``failed_stage``: nothing but a check before the bundle
    moved (empty: the release rollback's "none" tier verifies); the bundle and images back while the
    old containers still serve; and with a stop and start once the run had stopped them."""
    position = NAMES.index(failed_stage)
    if position < NAMES.index("checkout_rules"):
        return []
    titles = list(ACTIONS)
    if position < NAMES.index("drain_and_stop"):
        return [titles[1], titles[2], VERIFY_RESTORED]
    return titles


def planned(stage: Stage, revision: str) -> backout.Backout:
    """For ``--plan``: what :meth:`AegisRollback.run` does after a failure in ``stage``."""
    actions = rollback_actions(stage.name)
    if not actions:
        return backout.nothing_changed(revision)
    return backout.Backout(TIER, "the recorded rule bundle commit checked out, backend and worker rebuilt from it",
                           actions)


def start(profile, client, settings) -> AegisRulesUpgrade:
    target = settings.target
    journal = Journal.start(profile.install_dir, f"aegis {target.name}", settings.ticket, target.commit, target.kind)
    return AegisRulesUpgrade(profile, client, settings, journal)

