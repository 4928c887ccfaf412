"""Backend only, frontend only (the procedure's "Backend Only" / "Frontend Only"): the release's
stages, limited to the component's services. Only they are built, stopped and started (``compose up
--no-deps``); the others keep running and the verification proves they were not restarted (their
containers' start times are as recorded); the migration runs only for the backend, and only when
the target's migrations have a head the database is not at."""

from __future__ import annotations

import docker.errors
import requests

from runbook import alembic_scripts, drain, schema_checks, service_checks, startup
from runbook.compose import Compose, stop_containers
from runbook.errors import Problem
from runbook.rollback import Rollback
from runbook.shell import progress
from runbook.upgrade import STAGES as RELEASE_STAGES, Stage, Upgrade

# The backend image runs the backend, the Celery worker and beat: "Backend Only" rebuilds all three.
SERVICES = {"backend": ("celery-beat", "backend", "worker"), "frontend": ("frontend",)}
TITLES = {
    "build": "the component's images built while the old version serves",
    "drain_and_stop": "the component's containers stopped (queued work drained first)",
    "migrate": "database migrated, when the target has new revisions",
    "start": "the component started (--no-deps) and healthy",
    "verify": "post-flight checks; the other containers not restarted",
}
# What those stages change, in --plan's words (the others change what the release's do).
EFFECTS = {
    "build": "builds the component's images only (the old version keeps serving)",
    "drain_and_stop": "stops the component's containers only (the database and the other services keep running); "
                      "backend: beat first, the queues drained, the worker before the backend when the target reads "
                      "the same queue (last otherwise), then the rows written since the backup dumped",
    "migrate": "backend only, and only when the target has revisions the database is not at: runs alembic upgrade "
               "head with the new image",
    "start": "starts the component's services with compose up --no-deps (the others are not restarted)",
    "verify": "nothing: reads health, the API, containers, the revision and every table, and the other containers' "
              "start times",
}


def needs_migration(component: str, revision: str | None, heads: list[str]) -> bool:
    """Only the backend migrates, and only when the database is not at the target's single head."""
    return component == "backend" and heads != [revision]


class AppComponentUpgrade(Upgrade):
    def __init__(self, *args, component: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.component = component

    def own_services(self) -> tuple[str, ...]:
        """The services this upgrade rebuilds and restarts; every other one must keep running."""
        return SERVICES[self.component]

    def services(self, profile) -> list[str]:
        return [service for service in self.own_services() if service in profile.services]

    def containers(self, profile) -> list[str]:
        return [profile.container(service) for service in self.services(profile)]

    def make_rollback(self) -> ComponentRollback:
        return ComponentRollback(self)

    def started_at(self) -> dict[str, str]:
        """When each container outside the component started (a restart changes it)."""
        found = {}
        for service, spec in self.profile.services.items():
            if service in self.own_services():
                continue
            try:
                found[spec.container] = self.client.containers.get(spec.container).attrs["State"]["StartedAt"]
            except docker.errors.NotFound:
                continue
        return found

    def stage_lock_and_record(self) -> None:
        super().stage_lock_and_record()
        self.journal.set("component", {"name": self.component, "services": self.services(self.profile),
                                       "others_started_at": self.started_at()})

    def stage_build(self) -> None:
        compose = Compose.of(self.new_profile)
        compose("build", "--quiet", *self.services(self.new_profile), timeout=3600)
        if self.component == "backend":
            self.remember(alembic_ini=compose.alembic_ini(self.client))

    def stage_drain_and_stop(self) -> None:
        old = self.profile
        if self.component == "frontend":  # the backend keeps serving and writing: no quiet state to record
            stop_containers(self.client, self.containers(old))
            return
        drain.stop_old(self.client, old, self.new_profile, self.settings.drain_deadline_s,
                       [old.container("celery-beat")], [old.container("backend")], old.container("worker"))
        self.record_at_stop()

    def stage_migrate(self) -> None:
        heads = alembic_scripts.heads(alembic_scripts.scripts(self.new_profile.install_dir))
        if not needs_migration(self.component, self.before.revision, heads):
            why = "the frontend has no migrations" if self.component == "frontend" else \
                f"the database is at the target's head {self.before.revision}"
            self.journal.set("component", {**self.journal.data["component"], "migration": f"skipped: {why}"})
            progress(f"no migration: {why}")
            return
        super().stage_migrate()
        self.journal.set("component", {**self.journal.data["component"], "migration": f"to {', '.join(heads)}"})

    def stage_start(self) -> None:
        Compose.of(self.new_profile).up("--no-deps", *self.services(self.new_profile),
                                        timeout=self.settings.start_deadline_s, wait=False)
        startup.watch(self.client, self.new_profile, self.settings.base_url,
                      startup.Rule(deadline_s=self.settings.start_deadline_s))

    def stage_verify(self) -> None:
        new = self.new_profile
        with requests.Session() as http:
            # Frontend only: the backend still runs the old code, whatever VERSION says now.
            expected = new.version if self.component == "backend" else None
            service_checks.backend_health(http, self.settings.base_url, new.health_dependencies,
                                          expected_version=expected, install_dir=new.install_dir)
            paths = service_checks.api_paths(http, self.settings.base_url)
            service_checks.frontend_proxies_api(
                http, self.settings.frontend_url,
                service_checks.served_path(paths, service_checks.RULES_PATHS, "rule reference"))
        service_checks.containers_healthy(self.client, new)
        if self.component == "backend":
            with self.connect() as conn:
                schema_checks.at_code_head(new.install_dir, conn)
        self.others_not_restarted()
        self.remember(after=self.capture(new))

    def others_not_restarted(self) -> None:
        recorded = self.journal.data["component"]["others_started_at"]
        restarted = sorted(name for name, at in self.started_at().items() if recorded.get(name) != at)
        if restarted:
            raise Problem(f"{', '.join(restarted)} restarted during a {self.component}-only upgrade; only "
                          f"{', '.join(self.services(self.new_profile or self.profile))} may")


class ComponentRollback(Rollback):
    """The release rollback's tiers, stopping and starting only the component's services."""

    upgrade: AppComponentUpgrade

    def stop_app(self) -> None:
        stop_containers(self.upgrade.client, self.upgrade.containers(self.current_profile()))

    def start_old(self) -> None:
        current = self.current_profile()
        deadline = self.upgrade.settings.start_deadline_s
        Compose.of(current).up("--no-deps", *self.upgrade.services(current), timeout=deadline, wait=False)
        startup.watch(self.upgrade.client, current, self.upgrade.settings.base_url, startup.Rule(deadline_s=deadline))


# The release upgrade's stages, same names and meaning (the rollback's tier choice reads them), titled
# for a component and calling this class's methods where it has its own.
STAGES: tuple[Stage, ...] = tuple(
    Stage(s.name, TITLES.get(s.name, s.title), s.changes, getattr(AppComponentUpgrade, s.run.__name__),
          EFFECTS.get(s.name, s.effect), s.rolled_back)
    for s in RELEASE_STAGES)
