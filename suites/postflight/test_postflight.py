"""Post-flight: a health audit of a running installation. Read-only; runs alone, on a schedule,
or as the last stage of an upgrade. Pick with marks, e.g. ``-m "not slow"`` or ``-m api``."""

from __future__ import annotations

import pytest

from runbook import backup_checks, celery_checks, schema_checks, service_checks

pytestmark = pytest.mark.postflight


def test_health_reports_the_installed_version(http, options, profile) -> None:
    service_checks.backend_health(http, options.base_url, expected_version=profile.version)


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


def test_redis_requires_and_accepts_the_password(profile) -> None:
    service_checks.redis_answers(profile)


def test_frontend_serves_its_page(http, options) -> None:
    service_checks.frontend_page(http, options.frontend_url)


def test_frontend_proxies_api_to_backend(http, options) -> None:
    service_checks.frontend_proxies_api(http, options.frontend_url)


@pytest.mark.api
def test_audit_user_can_log_in(audit_token) -> None:
    assert audit_token


@pytest.mark.api
def test_aegis_health_with_token(http, options, audit_token) -> None:
    service_checks.aegis_healthy(http, options.base_url, audit_token)


@pytest.mark.api
def test_rules_reference_with_token(http, options, audit_token) -> None:
    service_checks.rules_listed(http, options.base_url, audit_token)


@pytest.mark.api
def test_api_docs_served(http, options) -> None:
    service_checks.docs_served(http, options.base_url)


def test_newest_backup_is_recent(options, profile, record_property) -> None:
    newest = backup_checks.newest_recent(options.backup_dir, options.backup_max_age_hours, profile)
    record_property("newest_backup_age_hours", round(newest.age_hours, 1))


def test_no_backup_kept_past_retention(options) -> None:
    backup_checks.none_past_retention(options.backup_dir, options.backup_retention_days)


def test_no_container_restarted_during_the_audit(docker_client, profile, states_at_start) -> None:
    service_checks.restart_counts_stable(states_at_start, service_checks.container_states(docker_client, profile))
