"""PostgreSQL 15 -> 17 by the suite (``--component postgres --image openwatch-sandbox/postgres:17``),
for real on the sandbox: the upgrade, the installation's own ``docker compose`` afterwards, a
backup by the new server's pg_dump, ``--pg-rollback``; and each fault (the new image never starts,
the restore fails halfway, SIGINT during the restore, the disk fills during the dump, the run killed
during the restore and settled by ``--resume``) ending on the old image and the old volume with every
table's rows and checksum as recorded."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook import pg_major, pg_major_rollback, pg_pointer
from sandbox import images, releases
from sandbox.installation import Installation
from tests.e2e.test_crash_safety import wait_for_stage
from tests.sessions import kill_session
from tests.sandbox_state import contents, engine_and_files, forget_runs, journal, snapshot
from tests.suite_runner import ROOT, run_suite

pytestmark = [pytest.mark.component, pytest.mark.slow]
NEW_IMAGE = "openwatch-sandbox/postgres:17"
OLD_VOLUME = "openwatch_postgres_data"
NEW_VOLUME = pg_pointer.volume_name("openwatch", 17)


def volumes() -> set[str]:
    return set(subprocess.run(["docker", "volume", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              check=True).stdout.split())


def server_version(install: Installation) -> str:
    with install.connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def db_mount(install: Installation) -> str:
    return subprocess.run(["docker", "inspect", "openwatch-db", "--format",
                           '{{range .Mounts}}{{if eq .Destination "/var/lib/postgresql/data"}}{{.Name}}{{end}}{{end}}'],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def component_images(sandbox_ready: Path) -> None:
    images.ensure_component_images()


@pytest.fixture
def on_pg15(sandbox: Installation, baseline_dump: Path, component_images: None) -> Iterator[Installation]:
    """The sandbox on PostgreSQL 15 and its old volume; put back so after the test whatever it left."""
    assert server_version(sandbox).startswith("15.")
    try:
        yield sandbox
    finally:
        pg_pointer.Pointer(sandbox.directory, (), NEW_IMAGE).unpoint(None)
        sandbox.compose("up", "--detach", "--no-deps", "database")
        subprocess.run(["docker", "volume", "rm", NEW_VOLUME], capture_output=True)
        forget_runs(sandbox.directory)
        sandbox.reset(releases.OLDEST.tag, baseline_dump)


def upgrade_args(install: Installation, image: str = NEW_IMAGE) -> list[str]:
    return ["--install-dir", str(install.directory), "--component", "postgres", "--image", image,
            "--ignore-maintenance"]


def assert_back_on_pg15(install: Installation, before: dict) -> None:
    assert snapshot(install) == before  # revision, version, every table's rows and checksums, pg_dump's schema
    assert server_version(install).startswith("15.")
    assert db_mount(install) == OLD_VOLUME
    assert install.health().json()["status"] == "healthy"
    assert not (install.directory / pg_pointer.OVERRIDE).exists()
    assert "COMPOSE_FILE" not in install.env
    assert not (install.directory / ".openwatch-upgrade.lock").exists()


def test_major_upgrade_keeps_everything_and_goes_back(pytester: pytest.Pytester, on_pg15: Installation) -> None:
    install = on_pg15
    before = snapshot(install)
    upgraded = run_suite(pytester, "upgrade", *upgrade_args(install))
    assert upgraded.ret == 0, upgraded.output[-3000:]
    assert not upgraded.named("failed") and not upgraded.named("error"), upgraded.messages
    data = journal(install)
    assert data["outcome"] == "UPGRADED"
    assert server_version(install).startswith("17.")
    assert db_mount(install) == NEW_VOLUME
    assert {OLD_VOLUME, NEW_VOLUME} <= volumes()  # the old volume is kept
    assert data["pg_major"]["old_volume"] == OLD_VOLUME and data["pg_major"]["old_volume_kept_until"]
    with install.connect() as conn:
        after = contents(conn)
    assert after == before["contents"]  # counted and hashed another way than the suite's own comparison
    assert data["pg_major"]["compared_tables"] == len(before["tables"])
    assert data["pg_major"]["backup_after_verification"]["restored"] is True
    assert data["pg_major"]["pg_dump"].split()[2].startswith("17.")
    # The operator's own `docker compose up -d` keeps the new version (COMPOSE_FILE in .env).
    install.compose("up", "--detach", "--wait", "--no-build")
    assert server_version(install).startswith("17.") and db_mount(install) == NEW_VOLUME

    back = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--component", "postgres",
                     "--pg-rollback", "--pg-rollback-discarding-writes", "--ignore-maintenance")
    assert back.ret == 0, back.output[-3000:]
    assert journal(install)["outcome"] == "ROLLED BACK (old-volume)"
    assert_back_on_pg15(install, before)
    assert NEW_VOLUME in volumes()  # what the app wrote on 17 is kept until the operator removes it


def test_plan_describes_the_major_upgrade_and_changes_nothing(pytester: pytest.Pytester,
                                                              on_pg15: Installation) -> None:
    install = on_pg15
    before, around = snapshot(install), engine_and_files(install)
    run = run_suite(pytester, "upgrade", *upgrade_args(install), "--plan")
    assert run.ret == 0, run.output[-3000:]
    assert run.outcomes == {"test_plan": "passed"}, run.outcomes
    [header] = [line for line in run.output.splitlines() if "PLAN (nothing was changed)" in line]
    assert (f"PLAN (nothing was changed): upgrade the postgres component of {install.directory} from PostgreSQL 15."
            in header and f" to {NEW_IMAGE}" in header), header
    assert re.findall(r"^\s+\d+\. (\w+): ", run.output, re.MULTILINE) == [stage.name for stage in pg_major.STAGES]
    assert "      changes: roles and every database dumped from the old server and verified" in run.output
    assert "      if it fails: rollback tier old-volume: the old image on the old volume" in run.output
    never_ran_on_new = "; ".join(pg_major_rollback.steps(app_started_on_new=False))
    assert run.output.count(f"      rollback actions: {never_ran_on_new}\n") == 5  # drain_and_stop to compare
    plan = json.loads(run.properties["test_plan"]["plan"])
    assert plan["component"] == "postgres" and plan["target"] == NEW_IMAGE
    assert [stage["name"] for stage in plan["stages"]] == [stage.name for stage in pg_major.STAGES]
    html = Path(run.bundle["artifacts"]["html"]).read_text()
    assert 'id="plan"' in html and "start_new" in html and pg_major_rollback.REMOVE_NEW_VOLUME in html
    # Nothing changed: data, schema, version, ref; no container created, recreated or restarted, no volume,
    # no file (no journal, lock, dump folder, compose override); still PostgreSQL 15 on the old volume.
    assert snapshot(install) == before
    assert engine_and_files(install) == around
    assert not (install.directory / ".openwatch-upgrade.lock").exists()
    assert not (install.directory / pg_pointer.OVERRIDE).exists() and "COMPOSE_FILE" not in install.env
    assert server_version(install).startswith("15.") and db_mount(install) == OLD_VOLUME


@pytest.mark.parametrize(("fault", "args", "failed_stage"), [
    ("the new image never starts", ["--image", "openwatch-sandbox/postgres:17-fault-nostart"], "start_new"),
    ("the restore fails halfway", ["-p", "tests.component_faults", "--inject-truncated-dump"], "restore"),
    ("the disk fills during the dump", ["-p", "tests.component_faults", "--inject-full-dump-disk"], "dump"),
])
def test_fault_ends_on_the_old_volume_as_recorded(pytester: pytest.Pytester, on_pg15: Installation, fault: str,
                                                  args: list[str], failed_stage: str) -> None:
    install = on_pg15
    before = snapshot(install)
    image = args[1] if args[0] == "--image" else NEW_IMAGE
    extra = [] if args[0] == "--image" else args
    result = run_suite(pytester, "upgrade", *upgrade_args(install, image), *extra)
    assert result.outcomes[f"test_stage[{failed_stage}]"] == "failed", (fault, result.outcomes)
    data = journal(install)
    assert data["outcome"] == "ROLLED BACK (old-volume)", data["rollback"]
    assert data["rollback"]["ok"] is True
    assert_back_on_pg15(install, before)
    assert NEW_VOLUME not in volumes()  # the app never ran on it: removed


def test_sigint_during_the_restore_ends_on_the_old_volume(on_pg15: Installation, tmp_path: Path) -> None:
    install = on_pg15
    before = snapshot(install)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), *upgrade_args(install),
                             f"--reports-dir={tmp_path}", "-p", "no:cacheprovider", "-o", "log_cli=false"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert wait_for_stage(install, proc, "restore"), proc.communicate()[0]
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, output
    data = journal(install)
    assert data["outcome"] == "ROLLED BACK (old-volume)", output[-3000:]
    assert_back_on_pg15(install, before)


def test_killed_during_the_restore_resume_ends_on_the_old_volume(pytester: pytest.Pytester, on_pg15: Installation,
                                                                tmp_path: Path) -> None:
    install = on_pg15
    before = snapshot(install)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "suites" / "upgrade"), *upgrade_args(install),
                             f"--reports-dir={tmp_path}", "-p", "no:cacheprovider", "-o", "log_cli=false"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert wait_for_stage(install, proc, "restore"), proc.communicate()[0]
    kill_session(proc.pid)  # power loss for the suite's process tree: no rollback in that run
    proc.communicate(timeout=60)
    dead = journal(install)
    assert dead["outcome"] == "running" and dead["stages"][-1]["name"] == "restore"
    assert server_version(install).startswith("17.")  # the new cluster was left serving, half restored

    # `--resume` alone: the journal says it was a PostgreSQL major upgrade, and it goes back its own way.
    resumed = run_suite(pytester, "upgrade", "--install-dir", str(install.directory), "--resume",
                        "--ignore-maintenance")
    assert resumed.ret == 0, resumed.output[-3000:]
    assert set(resumed.outcomes) == {"test_resume_unfinished_run"}
    settled = journal(install)
    assert settled["run_id"] == dead["run_id"] and settled["resumed"]["stage"] == "restore"
    assert settled["outcome"] == "ROLLED BACK (old-volume)" and settled["rollback"]["ok"], settled["rollback"]
    assert_back_on_pg15(install, before)
    assert NEW_VOLUME not in volumes()  # the app never ran on it: removed
