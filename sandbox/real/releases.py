"""The three compose-era snapshots of the real OpenWatch, as data, and the test origin made from the bundle.

The origin is a bare clone of ``shared/openwatch-real/openwatch-compose-era.bundle`` (tags and ``main``,
commit ids as upstream's snapshots have them), made at run time: the project keeps no OpenWatch code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import progress, run
from sandbox import machine_lock

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_ENV = "OPENWATCH_REAL_BUNDLE"
BUNDLE_NAME = "openwatch-compose-era.bundle"
DEFAULT_ORIGIN = PROJECT_ROOT / ".sandbox" / "real-origin.git"
DIGEST_FILE = "openwatch-real-bundle-digest"


@dataclass(frozen=True)
class RealRelease:
    tag: str
    head: str  # the single Alembic head of the tag's migrations
    queue: str  # "celery" (Redis, Celery worker and beat) or "job_queue" (PostgreSQL job queue worker)
    summary: str

    @property
    def services(self) -> tuple[str, ...]:
        if self.queue == "celery":
            return ("database", "redis", "backend", "worker", "celery-beat", "frontend")
        return ("database", "backend", "worker", "frontend")


RELEASES: tuple[RealRelease, ...] = (
    RealRelease("compose-2026-02-17", "035_merge_alerts", "celery",
                "Feb 2026: Redis, Celery worker and beat; 46 migration files."),
    RealRelease("compose-2026-04-14", "054_seed_recurring_jobs", "job_queue",
                "Apr 2026: PostgreSQL job queue replaces Redis and Celery; 65 migration files."),
    RealRelease("compose-2026-06-04", "054_seed_recurring_jobs", "job_queue",
                "Jun 2026: the last compose-era main; same services and migrations as Apr."),
)
BY_TAG = {release.tag: release for release in RELEASES}


def bundle_path() -> Path:
    """``$OPENWATCH_REAL_BUNDLE``, else ``shared/openwatch-real/`` beside the checkout (as CI lays it out),
    else the machine's ``/work/shared`` copy."""
    if os.environ.get(BUNDLE_ENV):
        candidates = [Path(os.environ[BUNDLE_ENV])]
    else:
        candidates = [PROJECT_ROOT.parent / "shared" / "openwatch-real" / BUNDLE_NAME,
                      PROJECT_ROOT.parents[1] / "shared" / "openwatch-real" / BUNDLE_NAME,
                      Path("/work/shared/openwatch-real") / BUNDLE_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"the real OpenWatch bundle is not at {', '.join(map(str, candidates))}; "
                            f"set {BUNDLE_ENV} to its path")


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def ensure_origin(origin: Path = DEFAULT_ORIGIN) -> Path:
    """The bare origin (tags and ``main``) cloned from the bundle; reused while the bundle is unchanged."""
    with machine_lock.exclusive(f"real-origin-{hashlib.sha256(str(origin).encode()).hexdigest()[:12]}"):
        return _ensure_origin(origin)


def _ensure_origin(origin: Path) -> Path:
    bundle = bundle_path()
    digest = _digest(bundle)
    marker = origin / DIGEST_FILE
    if marker.exists() and marker.read_text().strip() == digest:
        return origin
    progress(f"building the real OpenWatch origin {origin} from {bundle}")
    shutil.rmtree(origin, ignore_errors=True)
    origin.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "--quiet", "--bare", str(bundle), str(origin)], timeout=300)
    marker.write_text(digest + "\n")
    return origin
