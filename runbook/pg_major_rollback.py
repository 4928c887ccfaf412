"""Going back from a PostgreSQL major upgrade: the old image on the old volume, which the upgrade
never wrote to. One path for every stage (the tier ``old-volume``), the same verification as a
code rollback (every table's rows and checksum with the state at the stop, the schema, health),
plus the recorded cluster facts; and ``--pg-rollback`` after a finished upgrade."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from shlex import quote

from runbook import backout, pg_cluster, pg_pointer, state
from runbook.errors import OperatorError, Problem
from runbook.journal import Journal
from runbook.pg_major import STAGES, PgMajorUpgrade
from runbook.rollback import VERIFY_RESTORED, Rollback, RollbackResult
from runbook.run_record import RunRecord
from runbook.shell import progress
from runbook.upgrade import Stage

TIER = "old-volume"
NAMES = [stage.name for stage in STAGES]
STOPPED_AT = NAMES.index("drain_and_stop")
REMOVE_NEW_VOLUME = "remove the new volume (the app never ran on it)"


def goes_back(failed_stage: str) -> bool:
    """Whether a failure in ``failed_stage`` has anything to undo: from the stop of the app on."""
    return failed_stage in NAMES and NAMES.index(failed_stage) >= STOPPED_AT


class PgMajorRollback(Rollback):
    upgrade: PgMajorUpgrade

    def run(self, failed_stage: str) -> RollbackResult:
        upgrade = self.upgrade
        upgrade.release_snapshot()
        if upgrade.before is None:
            return self.not_started()
        return self.go_back(compare_data=True) if goes_back(failed_stage) else self.run_tier("none")

    def go_back(self, compare_data: bool) -> RollbackResult:
        """Old image, old volume, old app; verified. With ``compare_data`` every table is compared with
        the state at the stop (right after a failed upgrade: the old volume must be exactly that)."""
        self.compare_data = compare_data
        return self.go_back_by(TIER, "going back to the old volume",
                               [(title, partial(STEPS[title], self)) for title in steps(self.upgrade.app_started_on_new)])

    def after_finish(self) -> RollbackResult:
        """``--pg-rollback``: the finished upgrade undone. The old volume holds the data as it was at the
        upgrade's stop; what the app wrote to the new cluster since would be lost, so that is refused
        unless the operator said to discard it."""
        upgrade = self.upgrade
        upgrade.lock.acquire(upgrade.settings.ticket)
        found = upgrade.capture(upgrade.profile)
        written = state.data_differences(upgrade.after, found) if upgrade.after else []
        if written and not upgrade.discarding_writes:
            upgrade.lock.release()
            raise Problem(f"the app wrote to {', '.join(written[:5])} in the new cluster since the upgrade; going back "
                          "to the old volume would lose those rows: export them, or pass --pg-rollback-discarding-writes")
        return self.go_back(compare_data=True)

    def unpoint(self) -> None:
        recorded = (self.upgrade.journal.data.get("pg_major") or {}).get("pointer") or {}
        self.upgrade.pointer.unpoint(recorded.get("previous_compose_file_line"))

    def start_old_database(self) -> None:
        """``compose up`` of the database with the compose files as they were: Compose recreates the
        container with the old image and the old volume (nothing when it already runs them)."""
        upgrade = self.upgrade
        upgrade.pointer.compose_without_override().up("database", "--no-deps", timeout=180, wait=False)
        upgrade.wait_database_ready("the old PostgreSQL")

    def compare_facts(self) -> None:
        recorded = pg_cluster.ClusterFacts.from_json(self.upgrade.journal.data["pg_major"]["facts"])
        found = self.upgrade.read_facts()
        lines = pg_cluster.differences(recorded, found)
        if found.server_version != recorded.server_version:
            lines.insert(0, f"server {found.server_version}, recorded {recorded.server_version}")
        if lines:
            raise Problem(f"the old cluster differs from the recorded: {'; '.join(lines[:5])}")

    def remove_new_volume(self) -> None:
        name = (self.upgrade.journal.data.get("pg_major") or {}).get("new_volume")
        if name and pg_pointer.remove_volume(self.upgrade.client, name):
            progress(f"removed the new volume {name}")

    def leave_stopped_safe(self, result: RollbackResult) -> None:
        upgrade = self.upgrade
        self.stop_app_if_it_can()
        data = upgrade.journal.data.get("pg_major") or {}
        result.manual_steps = [
            f"cd {quote(str(self.install_dir))}",
            f"rm -f {pg_pointer.OVERRIDE}   # and the COMPOSE_FILE line after '{pg_pointer.ENV_COMMENT}' in .env",
            f"docker compose up -d database   # {data.get('old_image')} on the untouched volume {data.get('old_volume')}",
            "docker compose up -d   # then: pytest suites/postflight",
        ]


# Going back, step by step (each title as the journal, the report and --plan print it), and what it runs.
STEPS: dict[str, Callable[[PgMajorRollback], None]] = {
    "stop the app containers": PgMajorRollback.stop_app,
    "point the installation back at the old image and volume": PgMajorRollback.unpoint,
    "start the old PostgreSQL on the old volume": PgMajorRollback.start_old_database,
    "compare the database with the state at the stop": PgMajorRollback.verify_database,
    "compare roles, owners, extensions and encoding with the recorded": PgMajorRollback.compare_facts,
    REMOVE_NEW_VOLUME: PgMajorRollback.remove_new_volume,
    "start the old version and wait healthy": PgMajorRollback.start_old,
    VERIFY_RESTORED: PgMajorRollback.verify_restored,
}


def steps(app_started_on_new: bool) -> list[str]:
    """The steps back; the new volume is removed only when the app never ran on it."""
    return [title for title in STEPS if title != REMOVE_NEW_VOLUME or not app_started_on_new]


def planned(stage: Stage, revision: str) -> backout.Backout:
    """For ``--plan``: what :meth:`PgMajorRollback.run` does after a failure in ``stage``. The switch
    stage marks the new volume as the app's before it does anything else, so from there on it is kept."""
    if not goes_back(stage.name):
        return backout.nothing_changed(revision)
    return backout.Backout(TIER, "the old image on the old volume, which the upgrade never wrote to",
                           steps(app_started_on_new=NAMES.index(stage.name) >= NAMES.index("switch")))


def finished_major_upgrade(install_dir) -> Journal:
    """The journal of a finished PostgreSQL major upgrade whose old volume is still there to go back to."""
    journal = Journal.load(install_dir)
    data = (journal.data if journal else {}).get("pg_major")
    if not data:
        raise OperatorError(f"the last run in {install_dir} was no PostgreSQL major upgrade; --pg-rollback needs one")
    if journal.data.get("outcome") != "UPGRADED":
        raise OperatorError(f"the last PostgreSQL major upgrade ended {journal.data.get('outcome')!r}, not UPGRADED; "
                            "it was rolled back already or needs a person: read .openwatch-upgrade/journal.json")
    return journal


def from_journal(profile, client, settings, discarding_writes: bool) -> PgMajorUpgrade:
    """The finished major upgrade the journal describes, ready to be undone in its own run."""
    journal = finished_major_upgrade(profile.install_dir)
    data = journal.data
    run = PgMajorUpgrade(profile, client, settings, journal, data["pg_major"]["new_image"])
    run.adopt(RunRecord.read(data), new_profile=profile, image_names={"database": data["pg_major"]["old_image"]})
    run.facts = pg_cluster.ClusterFacts.from_json(data["pg_major"]["facts"])
    run.app_started_on_new = True  # the new volume holds what the app wrote: kept, named in the journal
    run.discarding_writes = discarding_writes
    return run
