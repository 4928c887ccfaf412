"""The pre-flight gate and the post-flight audit against the real sandbox: all green when healthy,
and for each breakage made for real, exactly the expected checks fail with their clear message."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.containers import RESTART_LOOP_COUNT
from sandbox.installation import Installation
from tests import browser
from tests.suite_runner import JOB_QUEUE_CHECKS, ROOT, SuiteRun, run_suite

PREFLIGHT = {
    "test_backend_reports_healthy", "test_every_container_running_and_healthy", "test_version_file_readable",
    "test_database_at_the_single_head_of_current_code", "test_target_migrations_continue_from_the_database_revision",
    "test_install_dir_has_free_space", "test_install_dir_writable",
    "test_backup_dir_has_free_space", "test_backup_dir_writable", "test_env_and_certificates_readable",
    "test_env_has_every_variable_the_target_expects", "test_no_local_changes_a_checkout_would_clobber",
    "test_no_other_upgrade_in_progress", "test_celery_has_no_running_tasks", "test_job_queue_has_no_running_jobs",
    "test_docker_engine_and_compose_v2",
}
POSTFLIGHT = {
    "test_health_reports_the_installed_version", "test_every_container_running_and_healthy",
    "test_backend_logs_free_of_errors", "test_database_answers", "test_database_at_the_code_head",
    "test_celery_worker_answers", "test_celery_queues_consumed", "test_job_queue_keeps_up", "test_no_job_stuck_running",
    "test_recurring_jobs_scheduled", "test_work_flows_through_the_queue", "test_redis_requires_and_accepts_the_password",
    "test_frontend_serves_its_page", "test_frontend_proxies_api_to_backend", "test_audit_user_can_log_in",
    "test_rule_engine_health_with_token", "test_rules_reference_with_token", "test_api_docs_served",
    "test_newest_backup_is_recent", "test_secrets_and_backups_private_to_their_owner", "test_no_backup_kept_past_retention",
    "test_no_container_restarted_during_the_audit",
}
TARGET = "v0.2.0"


def preflight(pytester: pytest.Pytester, install: Installation) -> SuiteRun:
    return run_suite(pytester, "preflight", "--install-dir", str(install.directory), "--target", TARGET)


def postflight(pytester: pytest.Pytester, install: Installation) -> SuiteRun:
    return run_suite(pytester, "postflight", "--install-dir", str(install.directory))


def assert_only_failed(run: SuiteRun, everything: set[str], expected: set[str], either: set[str] = frozenset()) -> None:
    """``expected`` failed (or errored), every other check passed; ``either`` depends on timing."""
    assert set(run.outcomes) == everything, run.output
    broken = run.named("failed") | run.named("error")
    assert broken - either == expected, {name: run.messages[name] for name in broken}
    not_applicable = everything & JOB_QUEUE_CHECKS
    assert run.named("skipped") - either == not_applicable
    assert all("this installation runs Celery" in run.messages[name] for name in not_applicable)
    assert run.named("passed") | either >= everything - expected - not_applicable
    for name in expected:
        assert run.messages[name] and "Traceback" not in run.messages[name], run.messages[name]


def test_healthy_installation_passes_both_suites(pytester: pytest.Pytester, ready: Installation) -> None:
    started = time.monotonic()
    audit = postflight(pytester, ready)
    audit_seconds = time.monotonic() - started
    assert_only_failed(audit, POSTFLIGHT, set())
    assert audit.ret == 0 and audit.bundle["verdict"] == "HEALTHY"
    gate = preflight(pytester, ready)
    assert_only_failed(gate, PREFLIGHT, set())
    assert gate.ret == 0 and gate.bundle["verdict"] == "READY"
    print(f"post-flight audit wall time on a healthy sandbox: {audit_seconds:.2f}s")


@pytest.fixture
def restore(ready: Installation) -> Iterator[Installation]:
    env_before = (ready.directory / ".env").read_text()
    try:
        yield ready
    finally:
        (ready.directory / ".env").write_text(env_before)
        ready.up()


def test_stopped_redis(pytester: pytest.Pytester, restore: Installation) -> None:
    subprocess.run(["docker", "stop", "openwatch-redis"], check=True, capture_output=True)
    audit = postflight(pytester, restore)
    assert_only_failed(audit, POSTFLIGHT, {
        "test_health_reports_the_installed_version", "test_every_container_running_and_healthy",
        "test_celery_worker_answers", "test_celery_queues_consumed", "test_redis_requires_and_accepts_the_password",
        "test_work_flows_through_the_queue",
    })
    assert "unhealthy: redis" in audit.messages["test_health_reports_the_installed_version"]
    assert "openwatch-redis is exited" in audit.messages["test_every_container_running_and_healthy"]


def test_secrets_readable_by_every_user(pytester: pytest.Pytester, restore: Installation) -> None:
    env_file = restore.directory / ".env"
    env_file.chmod(0o644)
    try:
        audit = postflight(pytester, restore)
    finally:
        env_file.chmod(0o600)
    assert_only_failed(audit, POSTFLIGHT, {"test_secrets_and_backups_private_to_their_owner"})
    assert f"readable by every user of this machine: {env_file} (mode 644)" in \
        audit.messages["test_secrets_and_backups_private_to_their_owner"]


def assert_audit_card_in_a_real_browser(audit: SuiteRun) -> None:
    """UNHEALTHY on the first screen at 1280 px, the failing checks named before anything else, and
    on the first printed page."""
    assert audit.bundle["verdict"] == "UNHEALTHY"
    screenshot = ROOT / "reports" / "screenshot-unhealthy.png"
    screenshot.parent.mkdir(exist_ok=True)
    rendered, pages = browser.look_at(Path(audit.bundle["artifacts"]["html"]), screenshot, "bad")
    card = rendered.dom[rendered.dom.index('id="verdict"'):rendered.dom.index("</section>")]
    assert 'verdict__word">UNHEALTHY<' in card and "3 check(s) failed" in card
    assert card.index("test_celery_worker_answers") < card.index("OpenWatch version")
    assert "UNHEALTHY" in pages[0] and "test_celery_worker_answers" in pages[0]
    print(f"audit report: {Path(audit.bundle['artifacts']['html']).stat().st_size} bytes, first screen in "
          f"{rendered.seconds:.2f}s, {len(pages)} PDF pages")


def test_stopped_worker(pytester: pytest.Pytester, restore: Installation) -> None:
    subprocess.run(["docker", "stop", "openwatch-worker"], check=True, capture_output=True)
    audit = postflight(pytester, restore)
    assert_only_failed(audit, POSTFLIGHT, {"test_every_container_running_and_healthy", "test_celery_worker_answers",
                                           "test_work_flows_through_the_queue"})
    assert "docker compose up -d worker" in audit.messages["test_celery_worker_answers"]
    assert_audit_card_in_a_real_browser(audit)
    gate = preflight(pytester, restore)
    assert_only_failed(gate, PREFLIGHT, {"test_every_container_running_and_healthy", "test_celery_has_no_running_tasks"})


def restarted(container: str, times: int, deadline_s: float = 60) -> bool:
    """Poll Docker's restart count until ``times`` (the engine restarts a crashing container with a back-off)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = subprocess.run(["docker", "inspect", "--format", "{{.RestartCount}}", container],
                               capture_output=True, text=True, timeout=10)
        if found.returncode == 0 and int(found.stdout.strip() or 0) >= times:
            return True
        time.sleep(0.2)
    return False


def test_crash_looping_backend(pytester: pytest.Pytester, restore: Installation) -> None:
    env_file = restore.directory / ".env"
    env_file.write_text("".join(line + "\n" for line in env_file.read_text().splitlines()
                                if not line.startswith("JWT_SECRET_KEY=")))
    restore.up("backend", wait=False)
    # Polled until it restarted as often as the audit's own rule calls a loop, as the 3 s sleep meant to.
    assert restarted("openwatch-backend", RESTART_LOOP_COUNT), "the backend without JWT_SECRET_KEY did not crash-loop"
    audit = postflight(pytester, restore)
    assert_only_failed(audit, POSTFLIGHT, {
        "test_health_reports_the_installed_version", "test_every_container_running_and_healthy",
        "test_frontend_proxies_api_to_backend", "test_audit_user_can_log_in", "test_rule_engine_health_with_token",
        "test_rules_reference_with_token", "test_api_docs_served",
    # Open by nature: a crash-looping backend restarts during the audit unless Docker's back-off
    # happens to span the whole audit; the loop itself is what the named checks must catch.
    }, either={"test_no_container_restarted_during_the_audit"})
    assert "openwatch-backend is in a restart loop" in audit.messages["test_every_container_running_and_healthy"]


def test_database_at_a_revision_the_code_does_not_know(pytester: pytest.Pytester, restore: Installation) -> None:
    with restore.connect() as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    try:
        audit = postflight(pytester, restore)
        gate = preflight(pytester, restore)
    finally:
        with restore.connect() as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0002_scan_indexes'")
    assert_only_failed(audit, POSTFLIGHT, {"test_database_at_the_code_head"})
    assert_only_failed(gate, PREFLIGHT, {"test_database_at_the_single_head_of_current_code",
                                         "test_target_migrations_continue_from_the_database_revision"})
    assert "9999_from_the_future, which this code" in gate.messages["test_database_at_the_single_head_of_current_code"]
    assert ("the target's migrations do not know revision 9999_from_the_future the database is at: v0.2.0 ("
            in gate.messages["test_target_migrations_continue_from_the_database_revision"])


def test_second_alembic_head_in_the_code(pytester: pytest.Pytester, restore: Installation) -> None:
    side = restore.directory / "backend/alembic/versions/0099_side_branch.py"
    side.write_text('revision = "0099_side_branch"\ndown_revision = "0001_initial"\n')
    try:
        gate = preflight(pytester, restore)
    finally:
        side.unlink()
    assert_only_failed(gate, PREFLIGHT, {"test_database_at_the_single_head_of_current_code"})
    message = gate.messages["test_database_at_the_single_head_of_current_code"]
    assert "2 Alembic heads (0002_scan_indexes, 0099_side_branch)" in message and "merge heads" in message


def test_full_backup_filesystem(pytester: pytest.Pytester, restore: Installation, tmp_path: Path) -> None:
    backups = restore.directory / "backups" / "postgres"
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(backups)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mount.stderr.strip()}")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={backups / 'filler'}", "bs=1M", "count=16"], capture_output=True)
        gate = preflight(pytester, restore)
    finally:
        subprocess.run(["umount", str(backups)], check=True)
    assert_only_failed(gate, PREFLIGHT, {"test_backup_dir_has_free_space", "test_backup_dir_writable"})
    assert "No space left on device" in gate.messages["test_backup_dir_writable"]


def test_required_env_variable_removed(pytester: pytest.Pytester, restore: Installation) -> None:
    env_file = restore.directory / ".env"
    env_file.write_text("".join(line + "\n" for line in env_file.read_text().splitlines()
                                if not line.startswith("OPENWATCH_ENCRYPTION_KEY=")))
    gate = preflight(pytester, restore)
    assert_only_failed(gate, PREFLIGHT, {"test_env_has_every_variable_the_target_expects"})
    assert "OPENWATCH_ENCRYPTION_KEY" in gate.messages["test_env_has_every_variable_the_target_expects"]


def test_stale_lock_of_a_dead_run(pytester: pytest.Pytester, restore: Installation) -> None:
    lock = restore.directory / ".openwatch-upgrade.lock"
    lock.write_text(json.dumps({"pid": 4_194_305, "host": socket.gethostname(), "started": "2026-11-24T02:00:00Z",
                                "ticket": "CHG-DEAD"}))
    try:
        gate = preflight(pytester, restore)
        taken_over = run_suite(pytester, "preflight", "--install-dir", str(restore.directory), "--target", TARGET,
                               "--break-lock")
    finally:
        lock.unlink()
    assert_only_failed(gate, PREFLIGHT, {"test_no_other_upgrade_in_progress"})
    assert "ticket CHG-DEAD" in gate.messages["test_no_other_upgrade_in_progress"]
    assert "--break-lock" in gate.messages["test_no_other_upgrade_in_progress"]
    assert_only_failed(taken_over, PREFLIGHT, set())
    assert "CHG-DEAD" in taken_over.properties["test_no_other_upgrade_in_progress"]["stale_lock_taken_over"]


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "v0.2.0;rm -rf /"], "ERROR: --target: v0.2.0;rm -rf / is not a tag, branch or commit of origin (nearest: v0.2.0"),
    (["--target", "../../etc/passwd"], "ERROR: --target: ../../etc/passwd is not a tag, branch or commit of origin"),
    (["--target", "v0.1.0"], "ERROR: --target: the installation is already at 0.1.0 (v0.1.0); there is nothing to upgrade"),
    (["--target", "v0.2.7"], "ERROR: --target: v0.2.7 is not a tag, branch or commit of origin (nearest: v0.2.1, v0.2.0"),
    (["--target", "deadbeef"], "ERROR: --target: deadbeef is not a tag, branch or commit of origin; an abbreviated id "),
    (["--runtime", "podman"], "ERROR: --runtime podman is not supported yet; use --runtime docker"),
])
def test_bad_options_are_one_line_usage_errors(pytester: pytest.Pytester, ready: Installation,
                                               args: list[str], message: str) -> None:
    run = run_suite(pytester, "preflight", "--install-dir", str(ready.directory), *args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert message in run.output and "Traceback" not in run.output


def test_target_main_is_origins_main_resolved_to_one_commit(pytester: pytest.Pytester, ready: Installation) -> None:
    """The sandbox's main is v1.0.0's commit: an upgrade by ancestry, whose migrations continue from
    the database's 0002 to 0005, with the major-version jump told as a warning."""
    main = subprocess.run(["git", "-C", str(ready.directory), "ls-remote", "origin", "refs/heads/main"],
                          capture_output=True, text=True, check=True).stdout.split()[0]
    gate = run_suite(pytester, "preflight", "--install-dir", str(ready.directory), "--target", "main")
    assert_only_failed(gate, PREFLIGHT, set())
    checked = gate.properties["test_target_migrations_continue_from_the_database_revision"]
    assert checked == {"target": f"main ({main[:12]}), a branch", "target_alembic_head": "0005_rule_results"}
    assert f"main ({main[:12]}) is a major release (0.1.0 -> 1.0.0)" in gate.output
    assert (gate.bundle["target"], gate.bundle["target_commit"], gate.bundle["target_kind"]) == ("main", main, "branch")


def _replace_env_line(install: Installation, name: str, line: str) -> str:
    """Put ``line`` where ``name``'s line was; returns the value that line held."""
    env_file = install.directory / ".env"
    lines = env_file.read_text().splitlines()
    index = next(i for i, text in enumerate(lines) if text.startswith(f"{name}="))
    value = lines[index].split("=", 1)[1]
    lines[index] = line.format(value=value, half=value[: len(value) // 2], rest=value[len(value) // 2:])
    env_file.write_text("\n".join(lines) + "\n")
    return value


@pytest.mark.parametrize(("name", "line", "message"), [
    ("POSTGRES_PASSWORD", 'POSTGRES_PASSWORD="{value}',
     'opens a " quote for POSTGRES_PASSWORD that is never closed on that line; fix it'),
    ("JWT_SECRET_KEY", "JWT_SECRET_KEY={half}\n{rest}", "is not KEY=value (no '=')"),
    ("REDIS_PASSWORD", "REDIS_PASSWORD=\"{value}\" and more", "has text after the closing quote of REDIS_PASSWORD"),
    ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD=", "leaves required secrets unset: POSTGRES_PASSWORD (empty); set them"),
    ("OPENWATCH_SECRET_KEY", "# OPENWATCH_SECRET_KEY removed",
     "leaves required secrets unset: OPENWATCH_SECRET_KEY (missing)"),
])
def test_broken_env_file_is_refused_before_anything_runs(pytester: pytest.Pytester, restore: Installation,
                                                         name: str, line: str, message: str) -> None:
    containers = _containers()
    secret = _replace_env_line(restore, name, line)
    run = run_suite(pytester, "upgrade", "--install-dir", str(restore.directory), "--target", TARGET)
    assert run.ret == pytest.ExitCode.USAGE_ERROR and not run.outcomes
    error = next(line for line in run.output.splitlines() if line.startswith("ERROR: "))
    assert message in error and "Traceback" not in run.output
    assert secret[:8] not in run.output and secret[-8:] not in run.output
    assert not (restore.directory / ".openwatch-upgrade").exists()
    assert not (restore.directory / ".openwatch-upgrade.lock").exists()
    assert _containers() == containers


def _containers() -> str:
    """Without compose, which cannot read a broken .env (and would print the value it chokes on)."""
    return subprocess.run(["docker", "ps", "-a", "--filter", "name=^openwatch-", "--format", "{{.ID}} {{.State}}"],
                          capture_output=True, text=True, check=True).stdout


def test_compose_file_with_a_service_openwatch_does_not_have(pytester: pytest.Pytester, ready: Installation,
                                                             tmp_path: Path) -> None:
    extra = tmp_path / "docker-compose.extra.yml"
    extra.write_text("services:\n  mystery:\n    image: openwatch-sandbox/bookworm:base\n    command: [sleep, infinity]\n")
    run = run_suite(pytester, "upgrade", "--install-dir", str(ready.directory), "--target", TARGET,
                    "--compose-file", str(extra))
    assert run.ret == pytest.ExitCode.USAGE_ERROR and not run.outcomes
    assert ("ERROR: the compose files (docker-compose.yml, docker-compose.extra.yml) define services OpenWatch does "
            "not have: mystery; the suite would start and stop them without knowing them") in run.output
    assert "Traceback" not in run.output and not (ready.directory / ".openwatch-upgrade").exists()
    assert "mystery" not in subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                                           text=True, check=True).stdout
