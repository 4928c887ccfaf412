"""``--plan``: what an upgrade would do (to ``--target``, or a component's with ``--component``), read
from the same data the upgrade and the rollback run on (the operation's stages in
``runbook.components.OPERATIONS``, ``runbook.backout``, ``runbook.rollback.TIERS`` and a component
rollback's own steps), so the plan cannot say one thing while the run does another. Building it
changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import docker
import psycopg

from runbook import aegis_rules, backout, gitrepo
from runbook.components import OPERATIONS
from runbook.profile import Profile
from runbook.targets import Target


@dataclass(frozen=True)
class PlannedStage:
    name: str
    title: str
    effect: str  # what it changes
    backout: str  # the rollback that applies if it failed here, in one line
    undo: list[str]  # that tier's actions, in order

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "changes": self.effect, "if_it_fails": self.backout,
                "rollback_actions": self.undo}


@dataclass(frozen=True)
class Plan:
    install_dir: str
    installed: str  # version and commit
    target: str  # name, kind and commit
    revision: str  # the Alembic revision a rollback would return to
    checks: list[tuple[str, str]]  # pre-flight check name, what it checks
    stages: list[PlannedStage]
    component: str | None = None  # --component; None for the release upgrade

    def lines(self) -> list[str]:
        what = f"the {self.component} component of {self.install_dir}" if self.component else self.install_dir
        out = [f"PLAN (nothing was changed): upgrade {what} from {self.installed} to {self.target}",
               f"pre-flight checks ({len(self.checks)}), each must pass before anything changes:"]
        out += [f"  - {name}: {what}" if what else f"  - {name}" for name, what in self.checks]
        out.append(f"stages ({len(self.stages)}), in order; after a failure the rest are skipped:")
        for index, stage in enumerate(self.stages, 1):
            out.append(f"  {index:2}. {stage.name}: {stage.title}")
            out.append(f"      changes: {stage.effect}")
            out.append(f"      if it fails: {stage.backout.split(' fails -> ', 1)[-1]}")
            if stage.undo:
                out.append(f"      rollback actions: {'; '.join(stage.undo)}")
        return out

    def to_json(self) -> dict:
        return {"install_dir": self.install_dir, "component": self.component, "installed": self.installed,
                "target": self.target,
                "revision": self.revision, "checks": [{"name": name, "checks": what} for name, what in self.checks],
                "stages": [stage.to_json() for stage in self.stages]}


def build(install_dir: str, installed: str, target: str, revision: str, checks: list[tuple[str, str]],
          component: str | None = None) -> Plan:
    """The plan of the operation ``component`` names (None: the release upgrade); ``revision`` is the
    database's now, which a rollback would return to."""
    return Plan(install_dir, installed, target, revision, checks, planned_stages(component, revision), component)


def planned_stages(component: str | None, revision: str) -> list[PlannedStage]:
    """Each stage of the operation, what it changes, and the rollback a failure there sets off. A stage
    the run does not roll back (rolled_back False: the new version is verified) is planned so too, as
    plugins/rollback.py skips it."""
    operation = OPERATIONS[component]
    release_tiers = {step.stage: step for step in backout.plan(operation.stages)} if operation.planned is None else {}
    stages = []
    for stage in operation.stages:
        if not stage.rolled_back:
            line, undo = f"{stage.name} ({stage.title}) fails -> {backout.NOT_ROLLED_BACK}", []
        elif operation.planned is None:  # the release's tiers, chosen per stage
            step = release_tiers[stage.name]
            line, undo = step.line(), backout.tier_actions(step.tier, revision)
        else:  # the component's own rollback
            planned = operation.planned(stage, revision)
            line, undo = planned.line(stage), planned.steps
        stages.append(PlannedStage(stage.name, stage.title, stage.effect, line, undo))
    return stages


def endpoints(component: str | None, profile: Profile, client: docker.DockerClient, conn: psycopg.Connection,
              target: Target | None, image: str | None) -> tuple[str, str]:
    """What the plan's header says the operation goes from and to, read from the installation (reads
    only): the release, the PostgreSQL or Redis image, or the rule bundle's commit."""
    def running_image(service: str) -> str:
        return client.containers.get(profile.container(service)).attrs["Config"]["Image"]

    if component == "postgres":
        return f"PostgreSQL {conn.execute('SHOW server_version').fetchone()[0]} ({running_image('database')})", image
    if component == "redis":
        return (running_image("redis") if "redis" in profile.services else "no Redis service"), image
    to = f"{target.name} ({target.kind} {target.commit[:12]})"
    if component == "aegis":
        bundle = profile.install_dir / aegis_rules.BUNDLE_DIR
        return f"rule bundle {gitrepo.head_ref(bundle)} ({gitrepo.head_commit(bundle)[:12]})", to
    return f"{profile.version} ({gitrepo.head_commit(profile.install_dir)[:12]})", to


def first_line(doc: str | None) -> str:
    """A check's docstring, first sentence line, for the plan's list."""
    return next((line.strip() for line in (doc or "").splitlines() if line.strip()), "")
