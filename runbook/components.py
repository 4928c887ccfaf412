"""The operations the upgrade suite runs, each an ordered tuple of stages (one stage model, as
data): the code upgrade (``--target``) and the component upgrades (``--component``). The suite
parametrizes its stage test with :func:`stages_for`; the rollback plugin asks :func:`rollback_for`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import docker

from runbook import (aegis_rules, app_component, backout, pg_major, pg_major_rollback, redis_image, redis_image_rollback,
                     upgrade as code_upgrade)
from runbook.journal import Journal
from runbook.profile import Profile
from runbook.rollback import Rollback
from runbook.upgrade import Settings, Stage, Upgrade


@dataclass(frozen=True)
class Operation:
    stages: tuple[Stage, ...]
    # What its own rollback does after a failure in a stage (stage, recorded revision -> Backout), as
    # that rollback's module states it; None: the release's tiers (runbook.backout.plan) roll it back.
    planned: Callable[[Stage, str], backout.Backout] | None = None


OPERATIONS: dict[str | None, Operation] = {
    None: Operation(code_upgrade.STAGES),  # --target: the release upgrade
    # --component postgres --image IMAGE: a PostgreSQL major upgrade
    "postgres": Operation(pg_major.STAGES, pg_major_rollback.planned),
    "backend": Operation(app_component.STAGES),  # --component backend --target REF: backend, worker and beat only
    "frontend": Operation(app_component.STAGES),  # --component frontend --target REF: the frontend only
    # --component redis --image IMAGE: a newer Redis on the same volume
    "redis": Operation(redis_image.STAGES, redis_image_rollback.planned),
    "aegis": Operation(aegis_rules.STAGES, aegis_rules.planned),  # --component aegis --rules REF: backend/aegis
}
COMPONENTS = tuple(name for name in OPERATIONS if name)


def stages_for(component: str | None) -> tuple[Stage, ...]:
    return OPERATIONS[component].stages


def rollback_for(run: Upgrade):
    """The rollback of ``run``'s operation: its own when it has one, else the code upgrade's tiers."""
    make = getattr(run, "make_rollback", None)
    return make() if make is not None else Rollback(run)


def operation(component: str, image: str | None, going_back: bool, discarding_writes: bool, profile: Profile,
              client: docker.DockerClient, settings: Settings) -> Upgrade:
    """The run ``--component`` asks for: backend or frontend only to ``settings.target``, a PostgreSQL
    major upgrade or a Redis image upgrade to ``image``, or (``going_back``) the return to the old
    volume the last PostgreSQL major upgrade kept."""
    if component == "aegis":  # settings.target is the bundle's commit --rules resolved to
        return aegis_rules.start(profile, client, settings)
    if going_back:
        return pg_major_rollback.from_journal(profile, client, settings, discarding_writes)
    if component in app_component.SERVICES:
        target = settings.target
        journal = Journal.start(profile.install_dir, target.name, settings.ticket, target.commit, target.kind)
        return app_component.AppComponentUpgrade(profile, client, settings, journal, component=component)
    journal = Journal.start(profile.install_dir, f"{component} {image}", settings.ticket)
    if component == "redis":
        return redis_image.RedisImageUpgrade(profile, client, settings, journal, image)
    return pg_major.PgMajorUpgrade(profile, client, settings, journal, image)
