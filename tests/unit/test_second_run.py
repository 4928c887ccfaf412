"""A second upgrade run while one is at work: the live holder is named first, before --target is
judged (the first run may already have checked the target out); an installation already at the
target is told so, and never sent to a rollback to the version it has."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.errors import Problem
from runbook import targets
from runbook.release_checks import LOCK_FILE
from runbook.shell import run
from tests.lock_holder import holding_the_lock
from tests.suite_runner import run_suite


@pytest.fixture
def first_run(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """An installation whose VERSION already says the target, as the first run's checkout left it."""
    install = tmp_path / "install"
    install.mkdir()
    (install / "VERSION").write_text("0.2.1\n")
    with holding_the_lock(install, "v0.2.1", "CHG-FIRST", "checkout") as holder:
        yield install, holder


def test_a_live_holder_is_named_before_the_target_is_judged(pytester: pytest.Pytester,
                                                            first_run: tuple[Path, subprocess.Popen]) -> None:
    install, holder = first_run
    lock_before = (install / LOCK_FILE).read_text()
    journal_before = (install / ".openwatch-upgrade" / "journal.json").read_text()
    second = run_suite(pytester, "upgrade", "--install-dir", str(install), "--target", "v0.2.1", "--ticket", "CHG-2")
    assert second.ret == pytest.ExitCode.USAGE_ERROR and not second.outcomes
    errors = [line for line in second.output.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"ERROR: another upgrade run holds {install / LOCK_FILE} (pid {holder.pid}, host {socket.gethostname()}, "
        "ticket CHG-FIRST, stage checkout, since "), second.output
    assert errors[0].endswith("); wait for it to finish")
    assert (install / LOCK_FILE).read_text() == lock_before
    assert (install / ".openwatch-upgrade" / "journal.json").read_text() == journal_before
    for mode in (["--resume"], ["--rollback-to", "v0.1.0"]):  # the other runs of the suite are told the same
        other = run_suite(pytester, "upgrade", "--install-dir", str(install), *mode)
        assert f"ERROR: another upgrade run holds {install / LOCK_FILE} (pid {holder.pid}," in other.output


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of an origin with the tags v0.1.0 and v0.2.1, and main at v0.2.1 (checked out)."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)])
    run(["git", "init", "--quiet", str(work)])
    for tag in ("v0.1.0", "v0.2.1"):
        (work / "VERSION").write_text(tag[1:] + "\n")
        run(["git", "-C", str(work), "add", "VERSION"])
        run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet",
             "-m", tag])
        run(["git", "-C", str(work), "tag", tag])
    run(["git", "-C", str(work), "push", "--quiet", "--tags", str(origin), "HEAD:refs/heads/main"])
    install = tmp_path / "install"
    run(["git", "clone", "--quiet", str(origin), str(install)])
    return install


def test_target_at_the_installed_commit_is_already_at(clone: Path) -> None:
    """Judged by commit, not VERSION: an installation whose VERSION is stale still is where it is."""
    with pytest.raises(Problem) as same:
        targets.judge(clone, targets.resolve(clone, "v0.2.1"), "0.2.1")
    assert str(same.value) == "the installation is already at 0.2.1 (v0.2.1); there is nothing to upgrade"
    older = targets.resolve(clone, "v0.1.0")
    with pytest.raises(Problem) as downgrade:
        targets.judge(clone, older, "0.2.1")
    installed = run(["git", "-C", str(clone), "rev-parse", "HEAD"]).stdout.strip()
    assert str(downgrade.value) == (f"a downgrade: v0.1.0 ({older.commit[:12]}) is 1 commit behind the installed v0.2.1 "
                                    f"({installed[:12]}); going back is a rollback of the upgrade that left it: "
                                    "`pytest suites/upgrade --rollback-to v0.1.0`")
    run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", "v0.1.0"])
    assert targets.judge(clone, targets.resolve(clone, "v0.2.1"), "0.1.0") == 1
