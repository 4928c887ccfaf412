"""``--target`` against real git: a tag, a branch of origin or a commit of the real compose-era
OpenWatch (never tagged, ``VERSION`` 0.1.0-alpha.1 throughout) resolves to one commit, and is an
upgrade only when it contains the installed commit and its migrations know the database's revision.
Repositories are built at test time: clones of the real bundle, and small ones with diverged lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook import alembic_scripts, gitrepo, targets
from runbook.errors import OperatorError, Problem
from runbook.journal import Journal
from runbook.rollback_to import finished_upgrade
from runbook.shell import run
from runbook.state import InstallState
from tests.real_openwatch import GIT_IDENTITY, TAGS, bundle, commit_on, origin_and_clone

FEB, APR, JUN = TAGS
VERSION = "0.1.0-alpha.1"


def git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args]).stdout.strip()


@pytest.fixture(scope="module")
def real_origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    origin = tmp_path_factory.mktemp("real") / "origin.git"
    run(["git", "clone", "--quiet", "--bare", str(bundle()), str(origin)])
    return origin


@pytest.fixture(scope="module")
def shared_install(real_origin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clone for the tests that only read origin; each moves HEAD where it needs it."""
    install = tmp_path_factory.mktemp("real") / "install"
    run(["git", "clone", "--quiet", str(real_origin), str(install)])
    return install


def at(install: Path, ref: str) -> Path:
    git(install, "checkout", "--quiet", "--detach", ref)
    return install


@pytest.fixture
def own_origin(real_origin: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the real origin this test may push to, and an installation cloned from it at Feb."""
    origin, install = tmp_path / "origin.git", tmp_path / "install"
    run(["git", "clone", "--quiet", "--bare", str(real_origin), str(origin)])
    run(["git", "clone", "--quiet", "--no-checkout", str(origin), str(install)])
    return origin, at(install, FEB)


def tag_commit(repo: Path, tag: str) -> str:
    return git(repo, "rev-parse", f"{tag}^{{commit}}")


# -- resolving the name ----------------------------------------------------------------------

def test_a_tag_resolves_to_its_commit_and_is_an_upgrade_though_version_is_equal(shared_install: Path) -> None:
    install = at(shared_install, FEB)
    target = targets.resolve(install, APR)
    assert (target.kind, target.commit) == ("tag", tag_commit(install, APR))  # the annotated tag, peeled
    assert target.label == f"{APR} ({target.commit[:12]})"
    assert (install / "VERSION").read_text().strip() == VERSION == git(install, "show", f"{APR}:VERSION")
    assert targets.judge(install, target, VERSION) == 1
    assert targets.version_notes(install, target, VERSION) == []  # equal VERSION is normal, not a note


def test_main_is_origins_main_not_a_stale_local_branch(own_origin: tuple[Path, Path]) -> None:
    origin, install = own_origin
    git(install, "branch", "--force", "main", FEB)  # the operator's own main, left at February
    newest = commit_on(origin, JUN, "main", {"NOTES.md": "after June\n"}, "upstream moves on")
    stale_tracking = git(install, "rev-parse", "refs/remotes/origin/main")
    assert newest != stale_tracking  # the clone has not fetched since: even origin/main is stale locally
    for name in ("main", "origin/main"):
        target = targets.resolve(install, name)
        assert (target.name, target.kind, target.commit) == (name, "branch", newest)
        assert targets.judge(install, target, VERSION) == 3  # Apr, Jun and the new one
    assert git(install, "rev-parse", "refs/heads/main") == tag_commit(install, FEB)  # no ref was moved
    assert git(install, "rev-parse", "refs/remotes/origin/main") == stale_tracking
    assert git(install, "rev-parse", "HEAD") == tag_commit(install, FEB)


def test_a_full_and_an_abbreviated_commit_id(shared_install: Path) -> None:
    install = at(shared_install, FEB)
    june = tag_commit(install, JUN)
    for name in (june, june[:7], june[:10].upper()):
        target = targets.resolve(install, name)
        assert (target.kind, target.commit, target.label) == ("commit", june, name)
        assert targets.judge(install, target, VERSION) == 2


def test_unknown_names_are_refused_naming_what_was_tried(shared_install: Path) -> None:
    install = at(shared_install, FEB)
    with pytest.raises(OperatorError) as near:
        targets.resolve(install, "compose-2026-04-15")
    assert str(near.value) == ("compose-2026-04-15 is not a tag, branch or commit of origin (nearest: compose-2026-04-14, "
                               "compose-2026-02-17, compose-2026-06-04); pass one of origin's tags, a branch (main or "
                               "origin/main) or a commit id origin has")
    with pytest.raises(OperatorError) as unknown_id:
        targets.resolve(install, "deadbeef")
    assert str(unknown_id.value).startswith("deadbeef is not a tag, branch or commit of origin")
    assert "an abbreviated id must be unique in this clone" in str(unknown_id.value)
    for hostile in ("--upload-pack=touch /tmp/owned", "v0.2.0;rm -rf /", "../../etc/passwd", "origin/nosuch"):
        with pytest.raises(OperatorError, match="is not a tag, branch or commit of origin"):
            targets.resolve(install, hostile)


def test_a_commit_only_this_clone_has_is_not_a_target(shared_install: Path) -> None:
    """The checkout stage fetches origin: a local commit (here on top of June) is no release of it."""
    install = at(shared_install, JUN)
    git(install, *GIT_IDENTITY, "commit", "--quiet", "--allow-empty", "-m", "local only")
    local = git(install, "rev-parse", "HEAD")
    at(install, FEB)
    with pytest.raises(OperatorError, match=f"^{local[:9]} is not a tag, branch or commit of origin"):
        targets.resolve(install, local[:9])


def test_origin_that_cannot_be_reached_is_one_line(shared_install: Path, tmp_path: Path) -> None:
    install = tmp_path / "install"
    run(["git", "clone", "--quiet", "--no-checkout", str(shared_install), str(install)])
    git(install, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    with pytest.raises(OperatorError) as refused:
        targets.resolve(install, "main")
    assert str(refused.value).startswith("cannot list the refs of origin (")
    assert str(refused.value).endswith("; check the network and `git remote -v`") and "\n" not in str(refused.value)


# -- judging the move ------------------------------------------------------------------------

def test_already_at_the_target(shared_install: Path) -> None:
    install = at(shared_install, APR)
    for name in (APR, tag_commit(install, APR)[:8]):
        with pytest.raises(Problem) as same:
            targets.judge(install, targets.resolve(install, name), VERSION)
        assert str(same.value) == f"the installation is already at {VERSION} ({name}); there is nothing to upgrade"


def test_a_downgrade_is_refused_with_the_rollback_to_use(shared_install: Path) -> None:
    install = at(shared_install, JUN)
    target = targets.resolve(install, FEB)
    with pytest.raises(Problem) as older:
        targets.judge(install, target, VERSION)
    june = tag_commit(install, JUN)
    assert str(older.value) == (f"a downgrade: {FEB} ({target.commit[:12]}) is 2 commits behind the installed {JUN} "
                                f"({june[:12]}); going back is a rollback of the upgrade that left it: "
                                f"`pytest suites/upgrade --rollback-to {FEB}`")


def test_a_branch_behind_is_a_downgrade_to_its_commit(own_origin: tuple[Path, Path]) -> None:
    """A branch moves, so the way back names the commit, which --rollback-to accepts abbreviated."""
    origin, install = own_origin
    at(install, JUN)
    run(["git", "--git-dir", str(origin), "update-ref", "refs/heads/stable", f"{APR}^{{commit}}"])
    target = targets.resolve(install, "stable")
    with pytest.raises(Problem) as older:
        targets.judge(install, target, VERSION)
    assert str(older.value).startswith(f"a downgrade: stable ({target.commit[:12]}) is 1 commit behind the installed ")
    assert str(older.value).endswith(f"`pytest suites/upgrade --rollback-to {target.commit[:12]}`")


def test_rollback_to_takes_the_recorded_commit_abbreviated(tmp_path: Path) -> None:
    """An untagged installation's recorded ref is its commit id; --rollback-to finds it by 7 digits or more."""
    started_at = "80c783a" + "0" * 33
    journal = Journal.start(tmp_path, "main", "CHG-1", "b40ae7a" + "0" * 33, "branch")
    journal.take_over()
    journal.set("before", InstallState(VERSION, started_at, started_at, "035_merge_alerts", {}, {}).to_json())
    journal.finish("UPGRADED")
    for name in (started_at, started_at[:7], started_at[:12].upper(), VERSION):
        assert finished_upgrade(tmp_path, name).data["target_commit"].startswith("b40ae7a")
    for name in (started_at[:6], "b40ae7a", "main"):
        with pytest.raises(OperatorError, match=f"^the last upgrade started from {started_at} "):
            finished_upgrade(tmp_path, name)


@pytest.fixture
def diverged(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A small origin: base -> main (2 commits) and base -> release-1.x (1 commit); installed at release-1.x."""
    work, origin, install = tmp_path / "work", tmp_path / "origin.git", tmp_path / "install"
    run(["git", "init", "--quiet", "--initial-branch=main", str(work)])
    commits: dict[str, str] = {}

    def commit(name: str) -> None:
        (work / "VERSION").write_text("1.0.0\n")
        (work / f"{name}.txt").write_text(name)
        git(work, "add", ".")
        git(work, *GIT_IDENTITY, "commit", "--quiet", "-m", name)
        commits[name] = git(work, "rev-parse", "HEAD")

    commit("base")
    git(work, "checkout", "--quiet", "-b", "release-1.x")
    commit("hotfix")
    git(work, "checkout", "--quiet", "main")
    commit("feature-a")
    commit("feature-b")
    run(["git", "clone", "--quiet", "--bare", str(work), str(origin)])
    run(["git", "clone", "--quiet", "--branch", "release-1.x", str(origin), str(install)])
    return install, commits


def test_a_diverged_branch_is_refused_naming_the_merge_base(diverged: tuple[Path, dict[str, str]]) -> None:
    install, commits = diverged
    target = targets.resolve(install, "origin/main")
    with pytest.raises(Problem) as refused:
        targets.judge(install, target, "1.0.0")
    assert str(refused.value) == (
        f"origin/main ({commits['feature-b'][:12]}) does not descend from the installed {commits['hotfix'][:12]}: "
        f"they diverged at {commits['base'][:12]} (2 commits only in the target, 1 only in the installed code); "
        "pass a target that contains the installed commit")


def test_unrelated_history_says_so(diverged: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    install, _ = diverged
    other = tmp_path / "other"
    run(["git", "init", "--quiet", str(other)])
    git(other, *GIT_IDENTITY, "commit", "--quiet", "--allow-empty", "-m", "another project")
    run(["git", "-C", str(other), "push", "--quiet", str(tmp_path / "origin.git"), "HEAD:refs/heads/orphan"])
    with pytest.raises(Problem, match=r"does not descend from the installed \w+: they share no history; pass a target"):
        targets.judge(install, targets.resolve(install, "orphan"), "1.0.0")


# -- the target's Alembic graph ----------------------------------------------------------------

def test_real_migrations_continue_from_the_database_revision(shared_install: Path) -> None:
    install = at(shared_install, FEB)
    assert targets.migrations_continue(install, targets.resolve(install, APR), ["035_merge_alerts"]) \
        == "054_seed_recurring_jobs"
    assert targets.migrations_continue(install, targets.resolve(install, JUN), ["045_add_host_liveness"]) \
        == "054_seed_recurring_jobs"


def test_a_target_whose_migrations_lack_the_database_revision(own_origin: tuple[Path, Path]) -> None:
    """A descendant of April that squashed 045-054 into one new revision: it contains the installed
    commit, but a database at 054 has no path in it."""
    origin, install = own_origin
    at(install, APR)
    versions = alembic_scripts.VERSIONS_DIR.as_posix()
    squashed = [line for line in git(install, "ls-tree", "--name-only", "HEAD", f"{versions}/").splitlines()
                if line.rsplit("/", 1)[1][14:17].isdigit() and 45 <= int(line.rsplit("/", 1)[1][14:17]) <= 54]
    assert len(squashed) == 10
    files: dict[str, str | None] = {path: None for path in squashed}
    files[f"{versions}/20260601_0000_045_squashed.py"] = (
        'revision = "045_squashed"\ndown_revision = "044_add_transactions_table"\n')
    commit_on(origin, APR, "squash", files, "squash 045-054")
    target = targets.resolve(install, "squash")
    assert targets.judge(install, target, VERSION) == 1
    with pytest.raises(Problem) as refused:
        targets.migrations_continue(install, target, ["054_seed_recurring_jobs"])
    assert str(refused.value) == (
        f"the target's migrations do not know revision 054_seed_recurring_jobs the database is at: squash "
        f"({target.commit[:12]}) (head 045_squashed) has no path from it; the database was migrated by code the "
        "target does not contain")
    # An installation still at February (database at 035) can take it: 035 is in the squashed graph.
    assert targets.migrations_continue(install, target, ["035_merge_alerts"]) == "045_squashed"


def test_a_target_with_two_alembic_heads_is_refused(own_origin: tuple[Path, Path]) -> None:
    origin, install = own_origin
    versions = alembic_scripts.VERSIONS_DIR.as_posix()
    commit_on(origin, APR, "two-heads",
              {f"{versions}/20260501_0000_side.py": 'revision = "side"\ndown_revision = "044_add_transactions_table"\n'},
              "a side branch of migrations")
    with pytest.raises(Problem, match=r"^two-heads \(\w{12}\) has 2 Alembic heads \(054_seed_recurring_jobs, side\); "
                                      r"its `alembic upgrade head` would refuse to run"):
        targets.migrations_continue(install, targets.resolve(install, "two-heads"), ["035_merge_alerts"])


@pytest.mark.parametrize(("tag", "files", "head"), [(FEB, 46, "035_merge_alerts"), (APR, 65, "054_seed_recurring_jobs"),
                                                    (JUN, 65, "054_seed_recurring_jobs")])
def test_the_real_alembic_graph_parses_at_every_tag(shared_install: Path, tag: str, files: int, head: str) -> None:
    install = at(shared_install, tag)
    from_git = alembic_scripts.scripts_at(install, git(install, "rev-parse", "HEAD"))
    from_files = alembic_scripts.scripts(install)
    assert len(from_git) == files == len(list((install / alembic_scripts.VERSIONS_DIR).glob("*.py")))
    assert {r: s.down_revisions for r, s in from_git.items()} == {r: s.down_revisions for r, s in from_files.items()}
    assert alembic_scripts.heads(from_git) == [head]
    assert [r for r, s in from_git.items() if not s.down_revisions] == ["001"]
    assert {down for s in from_git.values() for down in s.down_revisions} <= set(from_git)  # nothing dangles
    merges = {r: s.down_revisions for r, s in from_git.items() if len(s.down_revisions) > 1}
    assert merges == {"20260128_merge_heads": ("20251115_baseline_drift", "20251128_platform_identifier", "20250101_1200"),
                      "035_merge_alerts": ("034_remove_scap_fields", "033b_alerts_full")}
    # Two files share the number 033 (and 031, 032): ids, not file names, make the graph.
    assert from_git["033b_alerts_full"].down_revisions == ("032_host_metrics",)


# -- what VERSION still tells ------------------------------------------------------------------

@pytest.mark.parametrize(("installed", "target", "note"), [
    ("0.2.1", "1.0.0", "v1.0.0 ({commit}) is a major release (0.2.1 -> 1.0.0): read its release notes for breaking changes"),
    ("0.2.1", "0.2.0", "v0.2.0 ({commit}) contains the installed commit, yet its VERSION 0.2.0 is lower than the "
                       "installed 0.2.1; check that it is the release you mean"),
    ("0.2.0", "0.2.1", None), ("0.1.0-alpha.1", "0.1.0-alpha.1", None), ("0.1.0-rc2", "0.1.0-rc10", None),
])
def test_version_notes(tmp_path: Path, installed: str, target: str, note: str | None) -> None:
    origin, install = tmp_path / "origin.git", tmp_path / "install"
    run(["git", "init", "--quiet", "--bare", str(origin)])
    run(["git", "init", "--quiet", str(install)])
    for version in (installed, target):
        (install / "VERSION").write_text(version + "\n")
        git(install, "add", "VERSION")
        git(install, *GIT_IDENTITY, "commit", "--quiet", "--allow-empty", "-m", version)
    git(install, "tag", f"v{target}")
    git(install, "push", "--quiet", str(origin), "--tags")
    git(install, "remote", "add", "origin", str(origin))
    git(install, "checkout", "--quiet", "HEAD~1")
    resolved = targets.resolve(install, f"v{target}")
    assert targets.judge(install, resolved, installed) == 1
    expected = [note.format(commit=resolved.commit[:12])] if note else []
    assert targets.version_notes(install, resolved, installed) == expected
    assert gitrepo.head_commit(install) != resolved.commit


def test_the_real_migration_whose_downgrade_does_nothing_is_named(tmp_path: Path) -> None:
    """February -> April: 041 adds an enum value and its downgrade is ``pass`` (PostgreSQL cannot drop
    one); merge revisions, empty both ways, are not counted."""
    _, install = origin_and_clone(tmp_path, TAGS[1])
    graph = alembic_scripts.scripts(install)
    assert alembic_scripts.irreversible_between(graph, "035_merge_alerts", "054_seed_recurring_jobs") == [
        "041_add_manual_remediation_status"]
    assert not graph["035_merge_alerts"].irreversible and graph["041_add_manual_remediation_status"].irreversible
    assert alembic_scripts.irreversible_between(graph, "054_seed_recurring_jobs", "054_seed_recurring_jobs") == []
