"""``--resume``: settle an upgrade run that died without finishing (SIGKILL, power loss, OOM killer).

The journal says how far it got. A run that had verified the new version is completed; any other
is rolled back with the tier its last stage needs, the same rollback a failure would have had,
including the checksum comparison and the escalation to the verified backup. Nothing new starts
on top of a half-finished run: the pre-flight refuses until it is settled.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from runbook import aegis_rules, app_component, components, pg_cluster, pg_major, redis_image, redis_state
from runbook.errors import OperatorError
from runbook.journal import Journal, now, refusal
from runbook.profile import Profile
from runbook.release_checks import holder_alive
from runbook.rollback import RollbackResult
from runbook.run_record import RunRecord
from runbook.upgrade import Settings, Upgrade


def unfinished_run(install_dir: Path) -> Journal:
    """The journal of a run that died mid-way; :class:`OperatorError` when there is none to settle."""
    journal = Journal.load(install_dir)
    if journal is None:
        raise OperatorError(f"no upgrade journal in {install_dir}; there is nothing to resume")
    data = journal.data
    refused = refusal(journal.path, data)
    if refused:
        raise OperatorError(refused)
    if data.get("outcome") != "running":
        raise OperatorError(f"the last upgrade run ended {data.get('outcome')!r}; there is nothing to resume")
    if data.get("host") != socket.gethostname():
        raise OperatorError(f"the unfinished run ran on {data.get('host')}, which this host cannot check; "
                            "resume it there")
    if holder_alive(data):
        raise OperatorError(f"the upgrade run (pid {data.get('pid')}, ticket {data.get('ticket')}) is still running; "
                            "wait for it to finish")
    return journal


def from_unfinished(profile: Profile, client, settings: Settings, journal: Journal) -> Upgrade:
    """The dead run, from its journal (see :func:`unfinished_run`), to be settled by this process: a
    code upgrade, or the component upgrade the journal names (``--resume`` needs no ``--component``)."""
    data = journal.data
    record = RunRecord.read(data)
    if data.get("pg_major"):
        recorded = data["pg_major"]
        run = pg_major.PgMajorUpgrade(profile, client, settings, journal, recorded["new_image"])
        run.adopt(record, new_profile=profile, image_names={"database": recorded["old_image"]})
        run.facts = pg_cluster.ClusterFacts.from_json(recorded["facts"])
        # Once the switch began the app may have written to the new volume: kept, never removed unasked.
        run.app_started_on_new = any(stage["name"] == "switch" for stage in data.get("stages") or [])
        return run
    if data.get("redis"):
        recorded = data["redis"]
        run = redis_image.RedisImageUpgrade(profile, client, settings, journal, recorded["new_image"])
        run.adopt(record, new_profile=profile)
        if recorded.get("at_stop"):
            run.redis_at_stop = redis_state.RedisState.from_json(recorded["at_stop"])
        return run
    if (data.get("component") or {}).get("name") == "aegis":  # a rule bundle update: the outer checkout never moved
        run = aegis_rules.AegisRulesUpgrade(profile, client, settings, journal)
        run.adopt(record, new_profile=profile)
        return run
    if data.get("component"):
        run = app_component.AppComponentUpgrade(profile, client, settings, journal,
                                                component=data["component"]["name"])
    else:
        run = Upgrade(profile, client, settings, journal)
    # The target is checked out and its images built once the checkout passed.
    run.adopt(record, new_profile=run.load_profile() if "checkout" in record.stages_passed else None)
    return run


def operation_of(data: dict) -> str | None:
    """Which of :data:`components.OPERATIONS` the journal's run was."""
    if data.get("pg_major"):
        return "postgres"
    return "redis" if data.get("redis") else (data.get("component") or {}).get("name")


def settle(upgrade: Upgrade) -> RollbackResult | None:
    """Complete a run that had verified the new version (returns None), else roll it back the way its
    own operation rolls back (a major upgrade: to the old volume)."""
    upgrade.lock.acquire(upgrade.settings.ticket)
    journal = upgrade.journal
    stage = journal.last_stage()
    journal.set("resumed", {"by_pid": os.getpid(), "at": now(), "stage": stage})
    upgrade.remove_leftovers()
    if "verify" in journal.completed():  # the new version was up and verified: only the finish is left
        stages = components.stages_for(operation_of(journal.data))
        upgrade.run_stage(next(known for known in stages if known.name == "finish"))
        return None
    return components.rollback_for(upgrade).run(stage)
