"""The Aegis rule bundle as its own git repository, as OpenWatch ships it in ``backend/aegis`` (the
procedure updates it with ``cd backend/aegis && git pull origin main`` and a rebuild of the backend
and worker): a bare origin with one annotated tag per rule release, and its clone in an installation.

The releases re-use the rule sets the sandbox's code releases carry, so their counts are known: the
baseline's 20 rules, v0.2.1's 25 (PAM added), and the empty bundle of v1.0.0-fault-downgrade (the
engine's health then answers 503). ``main`` is the newest good release; the empty one is a tag on
top of it, like the code releases' fault tags.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import progress, run
from sandbox import machine_lock
from sandbox.releases import RELEASES_DIR, _git_env

BUNDLE_DIR = Path("backend") / "aegis"  # inside the installation
DEFAULT_ORIGIN = Path(__file__).resolve().parent.parent / ".sandbox" / "aegis-origin.git"
DIGEST_FILE = "openwatch-sandbox-digest"


@dataclass(frozen=True)
class RuleRelease:
    tag: str
    rules_from: Path  # the rules.json this release ships
    summary: str
    on_main: bool = True

    @property
    def rule_count(self) -> int:
        return len(json.loads(self.rules_from.read_text()))


RULE_RELEASES: tuple[RuleRelease, ...] = (
    RuleRelease("aegis-2026.1", RELEASES_DIR / "v0.1.0/backend/app/rules.json", "SSH, audit, ... (20 rules)"),
    RuleRelease("aegis-2026.2", RELEASES_DIR / "v0.2.1/backend/app/rules.json", "PAM rules added (25 rules)"),
    RuleRelease("aegis-2026.3-empty", RELEASES_DIR / "v1.0.0-fault-downgrade/backend/app/rules.json",
                "FAULT: the bundle is empty; the engine's health answers 503", on_main=False),
)
BY_TAG = {release.tag: release for release in RULE_RELEASES}
OLDEST = RULE_RELEASES[0]


def _sources_digest() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for release in RULE_RELEASES:
        digest.update(release.rules_from.read_bytes())
    return digest.hexdigest()[:16]


def ensure_origin(origin: Path = DEFAULT_ORIGIN) -> Path:
    """Build (or reuse, when the rule sources are unchanged) the bare origin of the rule bundle."""
    with machine_lock.exclusive(f"aegis-origin-{hashlib.sha256(str(origin).encode()).hexdigest()[:12]}"):
        marker = origin / DIGEST_FILE
        digest = _sources_digest()
        if marker.exists() and marker.read_text().strip() == digest:
            return origin
        progress(f"building rule bundle origin {origin} ({len(RULE_RELEASES)} tags)")
        shutil.rmtree(origin, ignore_errors=True)
        origin.parent.mkdir(parents=True, exist_ok=True)
        env = _git_env()
        run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], env=env)
        with tempfile.TemporaryDirectory(prefix="openwatch-aegis-") as work:
            tree = Path(work)
            run(["git", "init", "--quiet", "--initial-branch=main", str(tree)], env=env)
            for release in RULE_RELEASES:
                shutil.copyfile(release.rules_from, tree / "rules.json")
                run(["git", "add", "rules.json"], cwd=tree, env=env)
                run(["git", "commit", "--quiet", "-m", f"Rules {release.tag}\n\n{release.summary}"], cwd=tree, env=env)
                run(["git", "tag", "-a", release.tag, "-m", release.summary], cwd=tree, env=env)
            newest_on_main = [release for release in RULE_RELEASES if release.on_main][-1]
            run(["git", "push", "--quiet", str(origin), f"{newest_on_main.tag}^{{commit}}:refs/heads/main"], cwd=tree,
                env=env)
            run(["git", "push", "--quiet", str(origin), "--tags"], cwd=tree, env=env)
        marker.write_text(digest + "\n")
        return origin


def install(install_dir: Path, tag: str = OLDEST.tag, origin: Path = DEFAULT_ORIGIN) -> Path:
    """Clone the bundle into ``install_dir``'s ``backend/aegis`` at ``tag``; the backend reads it once
    its image is rebuilt (``docker compose build backend worker``)."""
    if tag not in BY_TAG:
        raise ValueError(f"unknown rule release {tag!r}; known: {', '.join(BY_TAG)}")
    bundle = Path(install_dir) / BUNDLE_DIR
    run(["git", "clone", "--quiet", str(ensure_origin(origin)), str(bundle)])
    run(["git", "-C", str(bundle), "checkout", "--quiet", "--detach", tag])
    return bundle
