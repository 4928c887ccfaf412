"""Git facts about an installation directory (a clone of OpenWatch). Only the upgrade's checkout
moves a ref or the work tree; everything here reads, or fetches objects without naming them."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from runbook.shell import CommandError, run


def git(install_dir: Path, *args: str, timeout: float = 60) -> str:
    return run(["git", "-C", str(install_dir), *args], timeout=timeout).stdout


def head_ref(install_dir: Path) -> str:
    """The exact tag checked out when there is one, else the commit id."""
    try:
        return git(install_dir, "describe", "--tags", "--exact-match", "HEAD").strip()
    except CommandError:
        return head_commit(install_dir)


def head_commit(install_dir: Path) -> str:
    return git(install_dir, "rev-parse", "HEAD").strip()


def remote_refs(install_dir: Path, remote: str = "origin") -> dict[str, str]:
    """Every branch and tag the remote has (``refs/heads/...``, ``refs/tags/...``) with the object id it
    names (a tag's own id for an annotated tag), without changing any local ref."""
    output = git(install_dir, "ls-remote", "--refs", remote, timeout=120)
    refs = {}
    for line in output.splitlines():
        object_id, _, ref = line.partition("\t")
        if ref.startswith(("refs/heads/", "refs/tags/")):
            refs[ref] = object_id
    return refs


def fetch_objects(install_dir: Path, refs: list[str], remote: str = "origin") -> None:
    """The remote's commits behind ``refs``, into the object store only: no ref moves, not even the
    remote-tracking one git would update on the side (the empty ``--refmap``), nor FETCH_HEAD."""
    if refs:
        git(install_dir, "fetch", "--quiet", "--no-tags", "--refmap=", "--no-write-fetch-head", remote, *refs,
            timeout=600)


def error_line(stderr: str) -> str:
    """The line of git's stderr that says what failed (``fatal: ...``), for a one-line message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("fatal:")), lines[0] if lines else "no output")[:200]


def commit_of(install_dir: Path, revision: str) -> str | None:
    """The full id of the commit ``revision`` names (a peeled tag, an abbreviated id), or None."""
    found = run(["git", "-C", str(install_dir), "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{revision}^{{commit}}"], check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def is_ancestor(install_dir: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``descendant`` contains ``ancestor`` (a commit is its own ancestor)."""
    result = run(["git", "-C", str(install_dir), "merge-base", "--is-ancestor", ancestor, descendant], check=False)
    if result.returncode not in (0, 1):
        raise CommandError(["git", "merge-base", "--is-ancestor", ancestor, descendant], result.returncode,
                           result.stderr)
    return result.returncode == 0


def merge_base(install_dir: Path, first: str, second: str) -> str | None:
    """The best common ancestor of two commits, or None when they share no history."""
    found = run(["git", "-C", str(install_dir), "merge-base", first, second], check=False)
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


def commits_between(install_dir: Path, older: str, newer: str) -> int:
    """How many commits ``newer`` has that ``older`` has not."""
    return int(git(install_dir, "rev-list", "--count", f"{older}..{newer}").strip())


def reachable_from_any(install_dir: Path, commit: str, tips: list[str]) -> bool:
    """Whether ``commit`` is contained in one of ``tips`` (one walk, not one per tip)."""
    outside = git(install_dir, "rev-list", "--max-count=1", commit, "--not", *tips, timeout=120)
    return not outside.strip()


def is_shallow(install_dir: Path) -> bool:
    return git(install_dir, "rev-parse", "--is-shallow-repository").strip() == "true"


def file_at(install_dir: Path, commit: str, path: str) -> str:
    """A file's content at ``commit`` (whose objects are local), without a checkout."""
    return git(install_dir, "show", f"{commit}:{path}")


def files_at(install_dir: Path, commit: str, folder: str, suffix: str) -> list[tuple[PurePosixPath, str]]:
    """Path and content of each file directly in ``folder`` at ``commit`` whose name ends with ``suffix``:
    one ``git archive`` into a scratch file (a ``git show`` per file costs a process each)."""
    listing = git(install_dir, "ls-tree", "--name-only", commit, f"{folder.rstrip('/')}/")
    paths = [line for line in listing.splitlines() if line.endswith(suffix)]
    if not paths:
        return []
    with tempfile.TemporaryDirectory(prefix="openwatch-suite-") as scratch:
        archive = Path(scratch) / "files.tar"
        git(install_dir, "archive", "--format=tar", f"--output={archive}", commit, "--", *paths, timeout=120)
        with tarfile.open(archive) as tar:
            return [(PurePosixPath(path), tar.extractfile(path).read().decode()) for path in paths]


def modified_tracked_files(install_dir: Path) -> list[str]:
    """Tracked files changed locally: a checkout of another release would clobber or refuse them."""
    output = git(install_dir, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in output.splitlines() if line.strip()]
