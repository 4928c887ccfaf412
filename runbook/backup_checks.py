"""Backups in ``backups/postgres``: a recent one exists, and none is kept past retention."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from shlex import quote

from runbook.backup import is_delta
from runbook.errors import Problem
from runbook.profile import Profile

DUMP_PATTERNS = ("*.dump", "*.sql", "*.sql.gz")


@dataclass(frozen=True)
class BackupFile:
    path: Path
    age_hours: float
    size: int


def backups(folder: Path) -> list[BackupFile]:
    now = time.time()
    found = {p for pattern in DUMP_PATTERNS for p in folder.glob(pattern) if p.is_file() and not is_delta(p)}
    files = [BackupFile(p, (now - p.stat().st_mtime) / 3600, p.stat().st_size) for p in found]
    return sorted(files, key=lambda backup: backup.age_hours)


def newest_recent(folder: Path, max_age_hours: float, profile: Profile) -> BackupFile:
    found = backups(folder)
    if not found:
        container = profile.container("database")
        user, database = profile.setting("POSTGRES_USER", "openwatch"), profile.setting("POSTGRES_DB", "openwatch")
        raise Problem(f"no database backup in {folder}; take one now "
                      f"(`docker exec {container} pg_dump -U {quote(user)} -d {quote(database)} -Fc > <file>.dump`)")
    newest = found[0]
    if newest.age_hours > max_age_hours:
        raise Problem(f"the newest backup {newest.path.name} is {newest.age_hours:.0f} h old (limit {max_age_hours:.0f} h); "
                      "check the backup schedule")
    if newest.size == 0:
        raise Problem(f"the newest backup {newest.path.name} is empty; the backup job is failing")
    return newest


def none_past_retention(folder: Path, retention_days: float) -> None:
    old = [b for b in backups(folder) if b.age_hours > retention_days * 24]
    if old:
        names = ", ".join(b.path.name for b in old[:5]) + (" ..." if len(old) > 5 else "")
        raise Problem(f"{len(old)} backups are older than the {retention_days:g}-day retention ({names}); "
                      "delete them once a newer backup is verified")
