"""The real compose-era OpenWatch, as test input: a git bundle kept outside the project
(``../shared/openwatch-real/``, never copied in), cloned at test time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbook.shell import run
from sandbox.real import releases as real_releases

# Three snapshots of upstream main, each one commit on the one before (see the bundle's README).
TAGS = tuple(release.tag for release in real_releases.RELEASES)
GIT_IDENTITY = ("-c", "user.name=openwatch-suite-tests", "-c", "user.email=tests@example.invalid")


def bundle() -> Path:
    """Where ``sandbox/real/releases.py`` finds the bundle; the tests that need it skip without it."""
    try:
        return real_releases.bundle_path()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


def origin_and_clone(root: Path, at: str) -> tuple[Path, Path]:
    """A bare origin made from the bundle (tags, ``main``) and an installation cloned from it, detached at ``at``."""
    origin, install = root / "origin.git", root / "install"
    run(["git", "clone", "--quiet", "--bare", str(bundle()), str(origin)])
    run(["git", "clone", "--quiet", str(origin), str(install)])
    run(["git", "-C", str(install), "checkout", "--quiet", "--detach", at])
    return origin, install


def commit_on(origin: Path, base: str, branch: str, files: dict[str, str | None], message: str) -> str:
    """A commit on ``base`` that writes (or, for None, deletes) ``files``, made in the bare origin as
    its branch ``branch`` (plumbing on a scratch index: no clone or work tree of the big real tree)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(origin / "scratch-index"), "GIT_AUTHOR_NAME": "upstream",
           "GIT_AUTHOR_EMAIL": "upstream@example.invalid", "GIT_COMMITTER_NAME": "upstream",
           "GIT_COMMITTER_EMAIL": "upstream@example.invalid"}

    def git(*args: str, stdin: str | None = None) -> str:
        return run(["git", "--git-dir", str(origin), *args], env=env, stdin=stdin).stdout.strip()

    git("read-tree", base)
    # --index-info needs no work tree; mode 0 removes the entry.
    entries = [f"0 {'0' * 40}\t{path}" if text is None else
               f"100644 {git('hash-object', '-w', '--stdin', stdin=text)}\t{path}" for path, text in files.items()]
    git("update-index", "--index-info", stdin="\n".join(entries) + "\n")
    commit = git("commit-tree", git("write-tree"), "-p", f"{base}^{{commit}}", "-m", message)
    git("update-ref", f"refs/heads/{branch}", commit)
    (origin / "scratch-index").unlink()
    return commit
