"""Rollback tiers: the least that puts the installation back exactly as recorded, escalating when
the result does not match (health, version, revision, the schema's fingerprint, and every table's
checksum). The tier is chosen from what the database is found to be after the failure, never from
what the failed stage should have left: a migration can commit part of its work and fail later."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from shlex import quote

import docker.errors
import requests

from runbook import (alembic_scripts, backup, dbstate, delta_backup, gitrepo, profile as profiles, schema_fingerprint,
                     service_checks, startup, state)
from runbook.compose import Compose, stop_containers
from runbook.errors import Problem
from runbook.shell import CommandError, progress
from runbook.upgrade import BY_NAME, Upgrade, error_line

@dataclass(frozen=True)
class Action:
    """One step of a rollback tier: its title (as the journal, the report and ``--plan`` print it;
    ``{revision}`` is the recorded Alembic revision) and what it runs."""
    title: str
    run: Callable[[Rollback], None]


CHECK_OUT_REF = Action("check out the recorded git ref", lambda rollback: rollback.restore_ref())
RETAG_IMAGES = Action("re-tag the recorded images", lambda rollback: rollback.upgrade.restore_images())
COMPARE_AT_STOP = Action("compare the database with the state at the stop", lambda rollback: rollback.verify_database())
REF = (CHECK_OUT_REF, RETAG_IMAGES)
QUICK = (*REF, Action("stop whatever app container runs", lambda rollback: rollback.stop_app()),
         COMPARE_AT_STOP, Action("start the old version and wait healthy", lambda rollback: rollback.start_old()))
# Tier -> its actions in order, least to most invasive: escalation moves right, never left. Every tier
# ends with the same verification of the restored state (Rollback.run_tier's loop adds it).
TIERS: dict[str, tuple[Action, ...]] = {
    "none": (),  # nothing was changed; the verification proves it
    "ref": REF,
    "quick": QUICK,
    "full": (Action("stop the new app containers", lambda rollback: rollback.stop_app()),
             Action("alembic downgrade {revision} with the NEW image", lambda rollback: rollback.downgrade()),
             *QUICK),
    "emergency": (Action("stop the app containers (database container kept)", lambda rollback: rollback.stop_app()),
                  Action("restore the verified backup into a recreated database",
                         lambda rollback: rollback.restore_database()),
                  *QUICK),
}
VERIFY_RESTORED = "verify restored state"


@dataclass(frozen=True)
class DatabaseFinding:
    """What the database is after the failure, as read from it."""
    revisions: list[str]  # what alembic_version says now
    revision_moved: bool  # not the recorded revision any more
    schema_differences: list[str]  # from the recorded fingerprint, one line each


def choose_tier(failed_stage: str, found: DatabaseFinding | None) -> str:
    """The larger of what the failed stage may have changed and what the database was found to be
    (``None``: it could not be read). A moved revision needs the downgrade; a schema that differs
    while the revision did not move was changed outside Alembic's record (DDL a migration committed
    on its own before failing), which no downgrade knows about: only the backup puts it back."""
    changes = BY_NAME[failed_stage].changes
    by_stage = {"nothing": "none", "code": "ref", "containers": "quick", "database": "quick"}[changes]
    if found is None:  # unknown where a migration ran: the tier that can undo one, escalating if it cannot
        by_database = "full" if changes == "database" else "none"
    elif found.revision_moved:
        by_database = "full"
    elif found.schema_differences:
        by_database = "emergency"
    else:
        by_database = "none"
    return max(by_stage, by_database, key=list(TIERS).index)


class StateDiffers(Problem):
    """The verification found the installation not as recorded; ``lines`` names each difference."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


@dataclass
class RollbackResult:
    requested: str
    tier: str = "none"
    ok: bool = False
    actions: list[dict] = field(default_factory=list)
    problem: str = ""
    manual_steps: list[str] = field(default_factory=list)
    found: dict = field(default_factory=dict)  # the database as read after the failure
    differences: list[str] = field(default_factory=list)  # what the last failed verification found, capped

    @property
    def seconds(self) -> float:
        return round(sum(action["seconds"] for action in self.actions), 2)


class Rollback:
    def __init__(self, upgrade: Upgrade) -> None:
        self.upgrade = upgrade
        self.install_dir: Path = upgrade.profile.install_dir
        self.compare_data = True
        self.tier = "none"  # the tier running now
        self.irreversible: list[str] = []  # migrations the full tier downgraded without undoing them

    def observe_database(self) -> DatabaseFinding | None:
        """Read the revision and schema the database has now (None when it cannot be read)."""
        before = self.upgrade.before
        try:
            with self.upgrade.connect() as conn:
                revisions = dbstate.alembic_revisions(conn)
                schema = schema_fingerprint.capture(conn)
        except Exception as error:  # noqa: BLE001 - an unreadable database is judged by the failed stage
            progress(f"cannot read the database's revision and schema ({self.failure_line(error)})")
            return None
        recorded = schema_fingerprint.Fingerprint.from_json(before.schema) if before.schema else None
        differences = schema_fingerprint.differences(recorded, schema) if recorded else []
        found = DatabaseFinding(revisions, revisions != [before.revision], differences)
        progress(f"database found at revision {', '.join(revisions) or 'none'} (recorded {before.revision}), schema "
                 + (f"differing in {len(differences)} places" if differences else "as recorded"))
        return found

    def not_started(self) -> RollbackResult:
        """Failed before anything was recorded: nothing was changed either."""
        self.upgrade.lock.release()
        self.upgrade.journal.finish("NOT STARTED")
        return RollbackResult("none", "none", ok=True)

    def run(self, failed_stage: str) -> RollbackResult:
        upgrade = self.upgrade
        upgrade.release_snapshot()  # a run interrupted between recording and dumping still holds it
        if upgrade.before is None:
            return self.not_started()
        try:
            self.stop_one_off_containers()
        except Exception as error:  # noqa: BLE001 - the tier still runs; its verification judges the result
            progress(f"could not stop one-off containers ({self.failure_line(error)}); rolling back anyway")
        found = self.observe_database()
        recorded = {"revisions": found.revisions, "schema_differences": schema_fingerprint.capped(
            found.schema_differences)} if found else {"unreadable": True}
        return self.run_tier(choose_tier(failed_stage, found), found=recorded)

    def stop_one_off_containers(self) -> None:
        """An interrupted run can leave ``compose run`` containers going (a migration mid-way): stop them
        first, so PostgreSQL rolls their transaction back before the database is judged."""
        client = self.upgrade.client
        found = client.containers.list(all=True, filters={
            "label": [f"com.docker.compose.project={self.upgrade.profile.project}", "com.docker.compose.oneoff=True"]})
        for container in found:
            progress(f"stopping one-off container {container.name} left by the interrupted stage")
            container.stop(timeout=10)
            # Removed here even with AutoRemove (``run --rm``): a container killed between create and start
            # stays "created" for ever, as the engine only auto-removes containers that ran and exited.
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                if error.status_code != 409:  # 409: the engine's own auto-removal is already under way
                    raise

    def run_tier(self, tier: str, *, compare_data: bool = True, found: dict | None = None) -> RollbackResult:
        """Run ``tier``; with ``compare_data`` (right after a failed upgrade) anything short of the
        recorded checksums escalates to the emergency tier. Without it (``--rollback-to`` a later day,
        when users have written since) a restore would lose their writes, so it is never automatic."""
        upgrade = self.upgrade
        self.compare_data = compare_data
        result = RollbackResult(requested=tier, found=found or {})
        while True:
            result.tier = self.tier = tier
            try:
                for action in TIERS[tier]:
                    self.step(result, action.title.format(revision=upgrade.before.revision), partial(action.run, self))
                self.step(result, VERIFY_RESTORED, self.verify_restored)
                result.ok = True
                break
            # Anything a tier raises (an image pruned since it was recorded, a database that went away, a
            # command that hung, a bug) leaves the installation in an unknown state, like a failed check:
            # escalate, or stop safe. Never let it end the run with the journal still "running".
            except Exception as error:  # noqa: BLE001
                result.problem = self.failure_line(error)
                if isinstance(error, StateDiffers):
                    result.differences = schema_fingerprint.capped(error.lines)
                if tier == "emergency" or upgrade.backup is None or not compare_data:
                    progress(f"rollback tier {tier} failed ({result.problem}); stopping safe")
                    self.leave_stopped_safe(result)
                    break
                progress(f"rollback tier {tier} did not restore the installation ({result.problem}); escalating")
                tier = "emergency"
        return self.record(result)

    def record(self, result: RollbackResult) -> RollbackResult:
        """The rollback's end: the lock released if it worked, its account in the journal, the run finished."""
        upgrade = self.upgrade
        if result.ok:
            upgrade.lock.release()
        upgrade.journal.set("rollback", {"requested": result.requested, "tier": result.tier, "ok": result.ok,
                                         "actions": result.actions, "problem": result.problem,
                                         "manual_steps": result.manual_steps, "found": result.found,
                                         "differences": result.differences})
        upgrade.journal.finish(f"ROLLED BACK ({result.tier})" if result.ok else "FAILED - MANUAL ACTION")
        return result

    def go_back_by(self, tier: str, what: str, steps: list[tuple[str, Callable[[], None]]]) -> RollbackResult:
        """A component's rollback: ``steps`` (title, action) in order under ``tier``; the first that fails
        leaves the installation stopped safe (``leave_stopped_safe``: its app stopped, the steps by hand)."""
        result = RollbackResult(requested=tier, tier=tier)
        try:
            for title, action in steps:
                self.step(result, title, action)
            result.ok = True
        except Exception as error:  # noqa: BLE001 - any failure leaves it stopped, with the steps by hand
            result.problem = self.failure_line(error)
            progress(f"{what} failed ({result.problem}); stopping safe")
            self.leave_stopped_safe(result)
        return self.record(result)

    def failure_line(self, error: BaseException) -> str:
        """What went wrong, redacted: a domain error's own message; anything else as its class and the
        first line of its text (a driver's or the engine's later lines can carry connection details)."""
        redact = self.upgrade.profile.redactor
        if isinstance(error, (Problem, CommandError)):
            return redact(str(error))[:500]
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "no message")
        return redact(f"{type(error).__name__}: {first}")[:300]

    def step(self, result: RollbackResult, name: str, action) -> None:
        progress(f"rollback: {name}")
        started, t0 = time.monotonic(), time.time()
        entry = {"name": name, "t0": t0}
        try:
            action()
        except BaseException as error:
            result.actions.append({**entry, "seconds": round(time.monotonic() - started, 2), "t1": time.time(),
                                   "ok": False, "detail": self.failure_line(error)[:300]})
            raise
        result.actions.append({**entry, "seconds": round(time.monotonic() - started, 2), "t1": time.time(), "ok": True})

    # -- actions -------------------------------------------------------------------------------
    def restore_ref(self) -> None:
        gitrepo.git(self.install_dir, "checkout", "--quiet", "--force", "--detach", self.upgrade.before.git_commit)

    def current_profile(self) -> profiles.Profile:
        return self.upgrade.load_profile()

    def start_old(self) -> None:
        """Start and judge the old version as the start stage judges the new one (``runbook.startup``),
        not with ``compose up --wait``, which refuses a service whose healthcheck is disabled (the
        real celery-beat of February 2026: "container openwatch-celery-beat has no healthcheck
        configured")."""
        current = self.current_profile()
        compose = Compose.of(current)
        deadline = self.upgrade.settings.start_deadline_s
        try:
            compose.up(timeout=deadline, wait=False)
        except CommandError as error:
            # A compose CLI killed by the interrupt can leave its own operation unfinished for a
            # moment (seen once in CI); one retry is far cheaper than restoring the backup.
            progress(f"starting the old version failed once "
                     f"({self.upgrade.profile.redactor(error_line(error.stderr))[:200]}); retrying")
            time.sleep(2)
            compose.up(timeout=deadline, wait=False)
        startup.watch(self.upgrade.client, current, self.upgrade.settings.base_url, startup.Rule(deadline_s=deadline))

    def stop_app(self) -> None:
        stop_containers(self.upgrade.client, self.upgrade.app_containers(self.current_profile()))

    def downgrade(self) -> None:
        upgrade = self.upgrade
        if upgrade.new_profile is None or upgrade.alembic_ini is None:
            raise Problem("the new release's image was never built, so it cannot downgrade")
        result = Compose.of(upgrade.new_profile).alembic(upgrade.alembic_ini, "downgrade", upgrade.before.revision,
                                                         check=False)
        if result.returncode != 0:
            said = error_line(f"{result.stdout}\n{result.stderr}")
            raise Problem(f"alembic downgrade to {upgrade.before.revision} failed: "
                          f"{upgrade.profile.redactor(said)[:300]}")
        self.irreversible = self.downgrades_that_do_nothing()
        if self.irreversible:
            progress(f"the downgrade of {', '.join(self.irreversible)} does nothing: what it changed stays "
                     "unless the backup is restored; the verification decides")

    def downgrades_that_do_nothing(self) -> list[str]:
        """The migrations just downgraded whose downgrade() is empty, read from the target's scripts."""
        try:
            graph = alembic_scripts.scripts(self.upgrade.new_profile.install_dir)
        except (OSError, SyntaxError, ValueError):
            return []
        return [name for head in alembic_scripts.heads(graph)
                for name in alembic_scripts.irreversible_between(graph, self.upgrade.before.revision, head)]

    def restore_database(self) -> None:
        upgrade = self.upgrade
        dump = Path(upgrade.backup.dump)
        if backup.sha256_of(dump) != upgrade.backup.sha256:
            raise Problem(f"the backup {dump} no longer matches its sha256; restore it by hand from another copy")
        # What the app wrote after the dump goes on top, in the scratch database, before the swap.
        on_top = partial(delta_backup.apply, upgrade.delta, upgrade.db_container, upgrade.db_user) \
            if upgrade.delta is not None else None
        backup.restore(dump, upgrade.db_container, upgrade.db_user, upgrade.db_name, before_swap=on_top)

    @property
    def reference(self) -> state.InstallState:
        """What the database must be: as it was once the app stopped; the recording when the run never
        got that far (then nothing of ours wrote to it, and the app that did is still running)."""
        return self.upgrade.at_stop or self.upgrade.before

    def verify_database(self) -> None:
        """With every app container stopped, so the app's own writes cannot blur the comparison:
        revision, schema, and (when a state at the stop was recorded) every table's rows and checksum."""
        upgrade = self.upgrade
        found = upgrade.capture(self.current_profile())
        upgrade.journal.set("restored", found.to_json())  # the report's "after" of a rollback
        self.compare(found, data=self.compare_data and upgrade.at_stop is not None)

    def verify_restored(self) -> None:
        """The old version serves again: health, containers, version, and the database's revision and
        schema (its data was compared before the start, while nothing wrote to it)."""
        upgrade = self.upgrade
        current = self.current_profile()
        with requests.Session() as http:
            service_checks.backend_health(http, upgrade.settings.base_url, current.health_dependencies,
                                          expected_version=upgrade.before.version, install_dir=current.install_dir)
        service_checks.containers_healthy(upgrade.client, current)
        restored = upgrade.capture(current)
        if COMPARE_AT_STOP not in TIERS[self.tier]:
            upgrade.journal.set("restored", restored.to_json())  # the app never stopped: as it serves
        self.compare(restored, data=False)

    def compare(self, found: state.InstallState, data: bool) -> None:
        reference = self.reference
        if found.revision != reference.revision:
            raise Problem(f"database at {found.revision}, recorded {reference.revision}")
        schema = state.schema_differences(reference, found)
        tables = state.data_differences(reference, found) if data else []
        cause = f" (the downgrade of {', '.join(self.irreversible)} does nothing)" if self.irreversible else ""
        said = [f"schema differs from the recorded state in {len(schema)} places{cause}: "
                f"{'; '.join(schema_fingerprint.capped(schema, 3))}"] if schema else []
        said += [f"data differs from the recorded state in {', '.join(tables)}"] if tables else []
        if said:
            lines = schema + [f"table {name}: {self.rows_and_checksum(found, name)}" for name in tables]
            raise StateDiffers("; ".join(said), lines)

    def rows_and_checksum(self, restored: state.InstallState, table: str) -> str:
        recorded, found = self.reference.tables.get(table), restored.tables.get(table)
        if recorded is None or found is None:
            return "not recorded" if recorded is None else "missing"
        if recorded["rows"] != found["rows"]:
            return f"{found['rows']} rows, recorded {recorded['rows']}"
        return f"{found['rows']} rows as recorded, but their checksum differs"

    def stop_app_if_it_can(self) -> None:
        """Stopping safe: a failure to stop is reported, not raised, as the manual steps still apply."""
        try:
            self.stop_app()
        except Exception as error:  # noqa: BLE001 - the manual steps the caller writes still apply
            progress(f"could not stop the app containers ({self.failure_line(error)})")

    def leave_stopped_safe(self, result: RollbackResult) -> None:
        """Stop the app (the database keeps running, its volume untouched) and say what to do."""
        upgrade = self.upgrade
        self.stop_app_if_it_can()
        dump = upgrade.backup.dump if upgrade.backup else "<the newest verified dump in backups/postgres>"
        db, user, name = upgrade.db_container, upgrade.db_user, upgrade.db_name
        psql = f"docker exec {db} psql -U {quote(user)} -d postgres -c"
        result.manual_steps = [
            f"cd {quote(str(self.install_dir))}",
            f"git checkout --detach {upgrade.before.git_commit}   # {upgrade.before.git_ref}",
            f"{psql} {quote(f'DROP DATABASE {backup.identifier(name)} WITH (FORCE)')}",
            f"{psql} {quote(f'CREATE DATABASE {backup.identifier(name)} OWNER {backup.identifier(user)}')}",
            f"docker exec -i {db} pg_restore -U {quote(user)} -d {quote(name)} --no-owner --no-privileges < {dump}",
            "docker compose up -d   # then: pytest suites/postflight",
        ]
