"""What ``--target`` names, and whether moving there is an upgrade.

A target is a tag, a branch of origin (``main``, ``origin/main``) or a commit id, full or abbreviated,
resolved once against origin to one commit, so ``main`` means the same commit for the whole run.
Newer means git ancestry, not ``VERSION``: compose-era OpenWatch kept ``0.1.0-alpha.1`` for months
while operators followed ``main``. The target must contain the installed commit, and its Alembic
graph the revision the database is at. Tags of a release line descend from each other (the
sandbox's v0.1.0 -> v0.2.0 -> v0.2.1 -> v1.0.0), so the old "newer than VERSION" rule is one case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runbook import alembic_scripts, gitrepo, versions
from runbook.errors import OperatorError, Problem
from runbook.shell import CommandError

COMMIT_ID = re.compile(r"^[0-9a-fA-F]{4,40}$")
WHAT_TO_PASS = "pass one of origin's tags, a branch (main or origin/main) or a commit id origin has"


@dataclass(frozen=True)
class Target:
    name: str  # as the operator gave it
    commit: str  # the full commit id it resolved to
    kind: str  # tag, branch or commit

    @property
    def label(self) -> str:
        """The name, with the commit unless the name is one: ``main (e539442ab12c)``."""
        return self.name if self.kind == "commit" else f"{self.name} ({self.commit[:12]})"


def recorded_label(journal: dict) -> str:
    """A journal's target as :attr:`Target.label` shows it (a journal older than this has no commit)."""
    name, commit, kind = journal.get("target"), journal.get("target_commit"), journal.get("target_kind")
    return Target(name, commit, kind).label if name and commit and kind else str(name)


def resolve(install_dir: Path, name: str) -> Target:
    """The commit ``name`` means in origin (:class:`OperatorError` when origin has none); fetches its
    objects without moving a ref, so the checks can read it and the checkout stage check it out."""
    try:
        refs = gitrepo.remote_refs(install_dir)
    except CommandError as error:
        raise OperatorError(f"cannot list the refs of origin ({gitrepo.error_line(error.stderr)}); "
                            "check the network and `git remote -v`") from None
    ref = next((candidate for candidate in _ref_names(name) if candidate in refs), None)
    abbreviated = ref is None and COMMIT_ID.match(name) is not None
    try:  # a commit id can be in any of origin's branches or tags
        gitrepo.fetch_objects(install_dir, [ref] if ref else sorted(refs) if abbreviated else [])
    except CommandError as error:
        raise OperatorError(f"cannot fetch {ref or 'the branches and tags'} from origin "
                            f"({gitrepo.error_line(error.stderr)}); check the network and `git remote -v`") from None
    if ref is not None:
        commit = gitrepo.commit_of(install_dir, refs[ref])
        if commit is None:
            raise OperatorError(f"{name} ({ref} in origin) does not name a commit; {WHAT_TO_PASS}")
        return Target(name, commit, "tag" if ref.startswith("refs/tags/") else "branch")
    if abbreviated:
        commit = gitrepo.commit_of(install_dir, name.lower())
        in_origin = commit is not None and gitrepo.reachable_from_any(install_dir, commit, list(refs.values()))
        if in_origin and commit.startswith(name.lower()):
            return Target(name, commit, "commit")
    near = versions.nearest(name, [ref.split("/", 2)[2] for ref in refs])
    raise OperatorError(f"{name} is not a tag, branch or commit of origin"
                        + (f" (nearest: {', '.join(near)})" if near else "")
                        + ("; an abbreviated id must be unique in this clone" if abbreviated else "")
                        + f"; {WHAT_TO_PASS}")


def _ref_names(name: str) -> list[str]:
    """Origin's refs ``name`` can mean, tags first (as git resolves them); ``origin/x`` is origin's
    branch x, never a local branch of that name."""
    if name.startswith(("refs/tags/", "refs/heads/")):
        return [name]
    names = [f"refs/tags/{name}", f"refs/heads/{name}"]
    if name.startswith("origin/"):
        names.append(f"refs/heads/{name.removeprefix('origin/')}")
    return names


def installed_label(install_dir: Path, commit: str) -> str:
    ref = gitrepo.head_ref(install_dir)
    return f"{ref} ({commit[:12]})" if ref != commit else commit[:12]


def judge(install_dir: Path, target: Target, installed_version: str) -> int:
    """How many commits the target adds to the installed commit; :class:`Problem` when it is the
    installed commit, behind it (a downgrade) or on another line (diverged)."""
    installed = gitrepo.head_commit(install_dir)
    if target.commit == installed:
        raise Problem(f"the installation is already at {installed_version} ({target.name}); there is nothing to upgrade")
    here = installed_label(install_dir, installed)
    if gitrepo.is_ancestor(install_dir, target.commit, installed):
        behind = gitrepo.commits_between(install_dir, target.commit, installed)
        back = target.commit[:12] if target.kind == "branch" else target.name  # a branch moves on; its commit stays
        raise Problem(f"a downgrade: {target.label} is {behind} commit{'s' * (behind != 1)} behind the installed {here}; "
                      f"going back is a rollback of the upgrade that left it: `pytest suites/upgrade --rollback-to "
                      f"{back}`")
    if not gitrepo.is_ancestor(install_dir, installed, target.commit):
        base = gitrepo.merge_base(install_dir, installed, target.commit)
        if base is None:
            shallow = " (this clone is shallow: `git fetch --unshallow` first)" if gitrepo.is_shallow(install_dir) else ""
            raise Problem(f"{target.label} does not descend from the installed {here}: they share no history{shallow}; "
                          "pass a target that contains the installed commit")
        only_target = gitrepo.commits_between(install_dir, installed, target.commit)
        only_installed = gitrepo.commits_between(install_dir, target.commit, installed)
        raise Problem(f"{target.label} does not descend from the installed {here}: they diverged at {base[:12]} "
                      f"({only_target} commits only in the target, {only_installed} only in the installed code); "
                      "pass a target that contains the installed commit")
    return gitrepo.commits_between(install_dir, installed, target.commit)


def migrations_continue(install_dir: Path, target: Target, database_revisions: list[str]) -> str:
    """The target's single Alembic head, when its graph holds every revision the database is at
    (``alembic upgrade head`` then has a path); else :class:`Problem`."""
    graph = alembic_scripts.scripts_at(install_dir, target.commit)
    heads = alembic_scripts.heads(graph)
    if len(heads) != 1:
        raise Problem(f"{target.label} has {len(heads)} Alembic heads ({', '.join(heads) or 'none'}); its "
                      "`alembic upgrade head` would refuse to run: pick a target whose migrations are merged")
    if not database_revisions:
        raise Problem("the database carries no Alembic revision, so no migration path can be judged; "
                      "inspect it with `alembic current` before upgrading")
    unknown = [revision for revision in database_revisions if revision not in graph]
    if unknown:
        raise Problem(f"the target's migrations do not know revision {', '.join(unknown)} the database is at: "
                      f"{target.label} (head {heads[0]}) has no path from it; the database was migrated by code the "
                      "target does not contain")
    return heads[0]


def version_notes(install_dir: Path, target: Target, installed_version: str) -> list[str]:
    """What VERSION still tells once ancestry has decided: a major jump, or a VERSION that goes back."""
    try:
        target_version = gitrepo.file_at(install_dir, target.commit, "VERSION").strip()
    except CommandError:
        return []
    now, then = versions.parse(installed_version), versions.parse(target_version)
    if now is None or then is None:
        return []
    if then < now:
        return [f"{target.label} contains the installed commit, yet its VERSION {then} is lower than the installed "
                f"{now}; check that it is the release you mean"]
    if then.major > now.major:
        return [f"{target.label} is a major release ({now} -> {then}): read its release notes for breaking changes"]
    return []
