"""Post-flight: a health audit of a running installation. Read-only; runs alone, on a schedule,
or as the last stage of an upgrade. Pick with marks, e.g. ``-m "not slow"`` or ``-m api``."""

from __future__ import annotations

import pytest

from runbook import (backup_checks, celery_checks, host_checks, job_queue_checks, schema_checks, service_checks,
                     work_probe)

pytestmark = pytest.mark.postflight


def test_health_reports_the_installed_version(http, options, profile) -> None:
    service_checks.backend_health(http, options.base_url, profile.health_dependencies,
                                  expected_version=profile.version, install_dir=profile.install_dir)


def test_every_container_running_and_healthy(docker_client, profile) -> None:
    service_checks.containers_healthy(docker_client, profile)


def test_backend_logs_free_of_errors(docker_client, profile, options) -> None:
    service_checks.logs_clean(docker_client, profile.container("backend"), options.log_window_minutes,
                              profile.redactor)


def test_database_answers(db) -> None:
    schema_checks.select_one(db)


def test_database_at_the_code_head(profile, db) -> None:
    schema_checks.at_code_head(profile.install_dir, db)


@pytest.mark.slow
def test_celery_worker_answers(worker) -> None:
    assert worker.answered, "inspect_worker raises when no worker answers"


def test_celery_queues_consumed(queued, options, record_property) -> None:
    record_property("celery_queued", sum(queued.values()))
    celery_checks.consumed(queued, options.queue_backlog_limit)


def test_job_queue_keeps_up(job_queue, options, record_property) -> None:
    record_property("jobs_running", job_queue.running)
    job_queue_checks.consumed(job_queue, options.queue_backlog_limit)


def test_no_job_stuck_running(job_queue) -> None:
    job_queue_checks.none_stuck(job_queue)


def test_recurring_jobs_scheduled(job_queue, record_property) -> None:
    record_property("recurring_jobs_enabled", job_queue.recurring_enabled)
    job_queue_checks.recurring_present(job_queue)


@pytest.mark.slow
def test_work_flows_through_the_queue(docker_client, profile, db, record_property) -> None:
    """A harmless task goes through the installation's own queue and is seen answered (runbook/work_probe.py)."""
    if profile.task_queue == "celery":
        seconds = work_probe.celery_round_trip(docker_client, profile)
    else:
        job_queue_checks.require_job_queue(profile)
        seconds = work_probe.job_queue_round_trip(db)
    record_property("work_round_trip_s", round(seconds, 2))


def test_redis_requires_and_accepts_the_password(profile) -> None:
    service_checks.redis_answers(profile)


def test_frontend_serves_its_page(http, options) -> None:
    service_checks.frontend_page(http, options.frontend_url)


def test_frontend_proxies_api_to_backend(http, options, api_paths) -> None:
    service_checks.frontend_proxies_api(
        http, options.frontend_url, service_checks.served_path(api_paths, service_checks.RULES_PATHS, "rule reference"))


@pytest.mark.api
def test_audit_user_can_log_in(audit_token) -> None:
    assert audit_token


@pytest.mark.api
def test_rule_engine_health_with_token(http, options, audit_token, api_paths, record_property) -> None:
    record_property("rule_engine_health", service_checks.engine_healthy(http, options.base_url, audit_token, api_paths))


@pytest.mark.api
def test_rules_reference_with_token(http, options, audit_token, api_paths, record_property) -> None:
    record_property("rules_listed", service_checks.rules_listed(http, options.base_url, audit_token, api_paths))


@pytest.mark.api
def test_api_docs_served(http, options) -> None:
    service_checks.docs_served(http, options.base_url)


def test_newest_backup_is_recent(options, profile, record_property) -> None:
    newest = backup_checks.newest_recent(options.backup_dir, options.backup_max_age_hours, profile)
    record_property("newest_backup_age_hours", round(newest.age_hours, 1))


def test_secrets_and_backups_private_to_their_owner(host, profile, options, record_property) -> None:
    dumps = [backup.path for backup in backup_checks.backups(options.backup_dir)]
    checked = host_checks.private_to_the_owner(host, [profile.install_dir / ".env", *dumps],
                                               [options.backup_dir, options.backup_dir.parent / "config"])
    record_property("paths_checked", checked)


def test_no_backup_kept_past_retention(options) -> None:
    backup_checks.none_past_retention(options.backup_dir, options.backup_retention_days)


def test_no_container_restarted_during_the_audit(docker_client, profile, states_at_start) -> None:
    service_checks.restart_counts_stable(states_at_start, service_checks.container_states(docker_client, profile))
