"""Read-only git facts about an installation directory (a clone of OpenWatch)."""

from __future__ import annotations

from pathlib import Path

from runbook.shell import CommandError, run


def git(install_dir: Path, *args: str, timeout: float = 60) -> str:
    return run(["git", "-C", str(install_dir), *args], timeout=timeout).stdout


def head_ref(install_dir: Path) -> str:
    """The exact tag checked out when there is one, else the commit id."""
    try:
        return git(install_dir, "describe", "--tags", "--exact-match", "HEAD").strip()
    except CommandError:
        return git(install_dir, "rev-parse", "HEAD").strip()


def remote_tags(install_dir: Path, remote: str = "origin") -> list[str]:
    """Tags the remote has, without changing any local ref."""
    output = git(install_dir, "ls-remote", "--tags", "--refs", remote, timeout=120)
    return [line.split("refs/tags/", 1)[1] for line in output.splitlines() if "refs/tags/" in line]


def file_at_tag(install_dir: Path, tag: str, path: str, remote: str = "origin") -> str:
    """A file's content at a remote tag: fetched into FETCH_HEAD only, no ref is moved."""
    local = run(["git", "-C", str(install_dir), "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"], check=False)
    ref = f"refs/tags/{tag}" if local.returncode == 0 else None
    if ref is None:
        git(install_dir, "fetch", "--quiet", "--no-tags", remote, f"refs/tags/{tag}", timeout=300)
        ref = "FETCH_HEAD"
    return git(install_dir, "show", f"{ref}:{path}")


def modified_tracked_files(install_dir: Path) -> list[str]:
    """Tracked files changed locally: a checkout of another release would clobber or refuse them."""
    output = git(install_dir, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in output.splitlines() if line.strip()]
