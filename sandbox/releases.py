"""The sandbox OpenWatch's release history, as data, and the git origin built from it.

Each release is its parent's tree plus the files in ``releases/<tag>/`` (and minus ``removes``).
The origin is a bare repository with one annotated tag per release; commits use fixed dates so
the same sources always give the same commit ids.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox import machine_lock
from sandbox.images import folder_digest
from runbook.shell import progress, run

RELEASES_DIR = Path(__file__).parent / "releases"
DEFAULT_ORIGIN = Path(__file__).resolve().parent.parent / ".sandbox" / "origin.git"
DIGEST_FILE = "openwatch-sandbox-digest"


@dataclass(frozen=True)
class Release:
    tag: str
    parent: str | None
    summary: str
    head: str  # the alembic head revision of this release's code
    removes: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return self.tag.removeprefix("v").split("-fault-")[0]

    @property
    def is_fault(self) -> bool:
        return "-fault-" in self.tag


RELEASES: tuple[Release, ...] = (
    Release("v0.1.0", None, "Baseline: users, hosts, scans, scan_results; Celery worker and beat.",
            head="0002_scan_indexes"),
    Release("v0.2.0", "v0.1.0",
            "Minor: hosts.os_family (backfilled, NOT NULL), scans.failed_count (backfilled); "
            "OPENWATCH_ENCRYPTION_KEY required; GET /api/hosts/summary.",
            head="0004_scan_failed_count"),
    Release("v0.2.1", "v0.2.0", "Patch: PAM rules added to the Aegis bundle; code only, no migration.",
            head="0004_scan_failed_count"),
    Release("v1.0.0", "v0.2.1",
            "Major: scan_results renamed rule_results, severity text -> severity_level smallint "
            "(working downgrade); Celery beat removed.",
            head="0005_rule_results"),
    Release("v0.2.0-fault-migration", "v0.2.0",
            "FAULT: a third migration fails half-way (duplicate IPs violate a new unique constraint); "
            "PostgreSQL rolls the whole run back.",
            head="0005_hosts_unique_ip"),
    Release("v0.2.0-fault-partial-migration", "v0.2.0",
            "FAULT: a third migration builds an index concurrently (its autocommit block commits 0003 and "
            "0004 first), creates an enum, then fails; the database is left at 0004 with both behind.",
            head="0005_scan_started_index"),
    Release("v0.2.0-fault-crashloop", "v0.2.0",
            "FAULT: the backend imports a module that was never committed and exits on start.",
            head="0004_scan_failed_count"),
    Release("v0.2.0-fault-health", "v0.2.0",
            "FAULT: the backend starts but /health always answers 503 degraded.",
            head="0004_scan_failed_count"),
    Release("v1.0.0-fault-downgrade", "v1.0.0",
            "FAULT: upgrade works, the Aegis rule bundle is empty (aegis health 503), "
            "and 0005's downgrade raises.",
            head="0005_rule_results"),
)
BY_TAG = {release.tag: release for release in RELEASES}
OLDEST = RELEASES[0]


def lineage(tag: str) -> list[Release]:
    """The release and its ancestors, oldest first."""
    chain: list[Release] = []
    current: str | None = tag
    while current is not None:
        release = BY_TAG[current]
        chain.append(release)
        current = release.parent
    return chain[::-1]


def _git_env() -> dict[str, str]:
    fixed = "2026-01-01T00:00:00+00:00"
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "OpenWatch Release Bot", "GIT_AUTHOR_EMAIL": "release@openwatch.invalid",
        "GIT_COMMITTER_NAME": "OpenWatch Release Bot", "GIT_COMMITTER_EMAIL": "release@openwatch.invalid",
        "GIT_AUTHOR_DATE": fixed, "GIT_COMMITTER_DATE": fixed,
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    }


def _apply_overlay(release: Release, tree: Path) -> None:
    overlay = RELEASES_DIR / release.tag
    for source in sorted(p for p in overlay.rglob("*") if p.is_file()):
        destination = tree / source.relative_to(overlay)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    for relative in release.removes:
        (tree / relative).unlink()


def _sources_digest() -> str:
    """Changes with the release sources and with this module (the table and how it is built)."""
    return hashlib.sha256(Path(__file__).read_bytes() + folder_digest(RELEASES_DIR).encode()).hexdigest()[:16]


def ensure_origin(origin: Path = DEFAULT_ORIGIN) -> Path:
    """Build (or reuse, when the release sources are unchanged) the bare origin repository."""
    with machine_lock.exclusive(f"origin-{hashlib.sha256(str(origin).encode()).hexdigest()[:12]}"):
        return _ensure_origin(origin)


def _ensure_origin(origin: Path) -> Path:
    digest = _sources_digest()
    marker = origin / DIGEST_FILE
    if marker.exists() and marker.read_text().strip() == digest:
        return origin
    progress(f"building release origin {origin} ({len(RELEASES)} tags)")
    shutil.rmtree(origin, ignore_errors=True)
    origin.parent.mkdir(parents=True, exist_ok=True)
    env = _git_env()
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], env=env)
    with tempfile.TemporaryDirectory(prefix="openwatch-release-") as work:
        tree = Path(work)
        run(["git", "init", "--quiet", "--initial-branch=main", str(tree)], env=env)
        for release in RELEASES:
            if release.parent is None:
                run(["git", "checkout", "--quiet", "--orphan", "release-build"], cwd=tree, env=env)
            else:
                run(["git", "checkout", "--quiet", "--detach", release.parent], cwd=tree, env=env)
            _apply_overlay(release, tree)
            # A fresh index makes git hash every file: overlay copies can keep size and
            # timestamp-second, which the stat cache would take for "unchanged".
            (tree / ".git" / "index").unlink(missing_ok=True)
            run(["git", "add", "--all"], cwd=tree, env=env)
            run(["git", "commit", "--quiet", "-m", f"Release {release.tag}\n\n{release.summary}"], cwd=tree, env=env)
            run(["git", "tag", "-a", release.tag, "-m", release.summary], cwd=tree, env=env)
        newest_regular = [r for r in RELEASES if not r.is_fault][-1]
        run(["git", "push", "--quiet", str(origin), f"{newest_regular.tag}^{{commit}}:refs/heads/main"], cwd=tree, env=env)
        run(["git", "push", "--quiet", str(origin), "--tags"], cwd=tree, env=env)
    marker.write_text(digest + "\n")
    return origin
