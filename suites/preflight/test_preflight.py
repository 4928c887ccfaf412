"""Pre-flight: is this installation ready to be upgraded? Read-only, safe to run any time.

Every item of the procedure's pre-upgrade checklist, plus what it forgets. ``--target`` itself
(a tag, branch or commit of origin that contains the installed commit) is judged before any test
runs; whether its migrations continue from the database's revision needs the database, so it is a check.
"""

from __future__ import annotations

import warnings

import pytest

from runbook import (celery_checks, dbstate, host_checks, job_queue_checks, release_checks, schema_checks,
                     service_checks, targets, versions)
from runbook.errors import NotApplicable, Problem

pytestmark = pytest.mark.preflight


def test_backend_reports_healthy(http, options, profile) -> None:
    service_checks.backend_health(http, options.base_url, profile.health_dependencies)


def test_every_container_running_and_healthy(docker_client, profile) -> None:
    service_checks.containers_healthy(docker_client, profile)


def test_version_file_readable(profile) -> None:
    if versions.parse(profile.version) is None:
        raise Problem(f"VERSION holds {profile.version!r}, not a version; restore it from git (`git checkout VERSION`)")


def test_database_at_the_single_head_of_current_code(profile, db) -> None:
    schema_checks.at_code_head(profile.install_dir, db)


def test_target_migrations_continue_from_the_database_revision(profile, options, db, record_property) -> None:
    target = options.resolved_target
    if target is None:
        raise NotApplicable("no --target given; pass --target to check its migrations against the database")
    record_property("target", f"{target.label}, a {target.kind}")
    record_property("target_alembic_head", targets.migrations_continue(profile.install_dir, target,
                                                                       dbstate.alembic_revisions(db)))
    for note in targets.version_notes(profile.install_dir, target, profile.version):
        warnings.warn(note, stacklevel=1)


def test_install_dir_has_free_space(profile, space_needed) -> None:
    host_checks.free_space(profile.install_dir, space_needed, "the install dir's filesystem at")


def test_install_dir_writable(profile) -> None:
    host_checks.install_dir_writable(profile.install_dir)


def test_backup_dir_has_free_space(options, space_needed) -> None:
    host_checks.free_space(options.backup_dir, space_needed, "the backup folder's filesystem at")


def test_backup_dir_writable(options) -> None:
    host_checks.backup_dir_writable(options.backup_dir)


def test_env_and_certificates_readable(profile, record_property) -> None:
    certificates = host_checks.env_and_certs_readable(profile)
    record_property("certificates_checked", ", ".join(str(path) for path in certificates.checked) or "none")
    for line in certificates.not_on_host:
        warnings.warn(line, stacklevel=1)


def test_env_has_every_variable_the_target_expects(profile, options) -> None:
    release_checks.env_drift(profile, options.resolved_target)


def test_no_local_changes_a_checkout_would_clobber(profile) -> None:
    release_checks.no_local_changes(profile.install_dir)


def test_no_other_upgrade_in_progress(profile, options, record_property) -> None:
    taken_over = release_checks.no_upgrade_running(profile.install_dir, options.break_lock)
    if taken_over:
        record_property("stale_lock_taken_over", taken_over)


def test_celery_has_no_running_tasks(worker, queued, record_property) -> None:
    record_property("celery_queued", sum(queued.values()))
    celery_checks.drained(worker, queued)


def test_job_queue_has_no_running_jobs(job_queue, record_property) -> None:
    record_property("jobs_running", job_queue.running)
    job_queue_checks.idle(job_queue)


def test_docker_engine_and_compose_v2(docker_client, record_property) -> None:
    engine, compose = host_checks.engine_and_compose(docker_client)
    record_property("docker_engine", engine)
    record_property("docker_compose", compose)
