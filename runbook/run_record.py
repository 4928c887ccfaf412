"""What an upgrade run records for the runs that act on it later: the rollback in the same run,
``--resume`` after it died, ``--rollback-to`` once it finished. Written whole to the journal as the
stages go (:meth:`to_json`, layout journal-1, ``schemas/journal-1.schema.json``) and read back from
it (:meth:`read`) here, in one place, by both later runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook.backup import BackupRecord
from runbook.delta_backup import DeltaRecord
from runbook.state import InstallState


@dataclass(frozen=True)
class RunRecord:
    before: InstallState | None = None  # as recorded before anything changed
    at_stop: InstallState | None = None  # the database once every app container was stopped
    after: InstallState | None = None  # as verified once the new version (or component) was up
    backup: BackupRecord | None = None
    backup_verification: dict | None = None  # how the backup was proven restorable, once it was
    delta_backup: DeltaRecord | None = None  # rows the app wrote after the backup
    image_names: dict[str, str] = field(default_factory=dict)  # service -> image name the old release tagged
    alembic_ini: str | None = None  # the new image's, once it was built
    stages_passed: tuple[str, ...] = ()

    @classmethod
    def read(cls, data: dict) -> RunRecord:
        """From a journal's content (any journal-1: a field a run did not get to is absent or null)."""
        def state(key: str) -> InstallState | None:
            return InstallState.from_json(data[key]) if data.get(key) else None

        backup = data.get("backup")
        delta = data.get("delta_backup")
        return cls(
            before=state("before"), at_stop=state("at_stop"), after=state("after"),
            backup=BackupRecord(**{k: v for k, v in backup.items() if k != "verification"}) if backup else None,
            backup_verification=(backup or {}).get("verification"),
            delta_backup=DeltaRecord(**delta) if delta else None,
            image_names=data.get("image_names") or {}, alembic_ini=data.get("alembic_ini"),
            stages_passed=tuple(stage["name"] for stage in data.get("stages") or [] if stage.get("status") == "passed"))

    def to_json(self) -> dict:
        """The journal's fields for what is recorded so far; a field not reached yet is left out."""
        backup = self.backup.to_json() if self.backup else None
        if backup is not None and self.backup_verification is not None:
            backup["verification"] = self.backup_verification
        fields = {
            "before": self.before.to_json() if self.before else None,
            "at_stop": self.at_stop.to_json() if self.at_stop else None,
            "after": self.after.to_json() if self.after else None,
            "backup": backup,
            "delta_backup": self.delta_backup.to_json() if self.delta_backup else None,
            "image_names": self.image_names or None,
            "alembic_ini": self.alembic_ini,
        }
        return {name: value for name, value in fields.items() if value is not None}
