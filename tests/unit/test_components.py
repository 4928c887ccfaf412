"""The component upgrades' plain logic: PostgreSQL versions and cluster facts, the globals script
for a new cluster, the compose pointer in .env, when a component migrates, the stage model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from plugins import keys, outcome
from plugins.runmode import RunMode
from runbook import app_component, components, pg_cluster, pg_major, pg_pointer, resume
from runbook.upgrade import STAGES as RELEASE_STAGES


@pytest.mark.parametrize(("said", "major"), [
    ("postgres (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)", 17),
    ("15.14 (Debian 15.14-0+deb12u1)", 15),
    ("pg_dump (PostgreSQL) 17.6", 17),
    ("18beta1", 18),
])
def test_major_of_reads_server_and_tool_versions(said: str, major: int) -> None:
    assert pg_cluster.major_of(said) == major


@pytest.mark.parametrize(("image", "major"), [
    ("openwatch-sandbox/postgres:17", 17), ("postgres:17.6-alpine", 17), ("registry:5000/postgres:16", 16),
    ("postgres:latest", None), ("postgres", None),
])
def test_major_in_tag(image: str, major: int | None) -> None:
    assert pg_cluster.major_in_tag(image) == major


def test_globals_drop_only_the_create_of_roles_the_new_cluster_has() -> None:
    dumped = ('CREATE ROLE openwatch;\nALTER ROLE openwatch WITH SUPERUSER LOGIN PASSWORD \'SCRAM-SHA-256$x\';\n'
              'CREATE ROLE "read""only";\nALTER ROLE "read""only" WITH LOGIN;\nCREATE ROLE auditor;\n')
    script = pg_cluster.globals_for_new_cluster(dumped, {"openwatch", 'read"only'})
    assert "CREATE ROLE openwatch;" not in script and 'CREATE ROLE "read""only";' not in script
    assert "ALTER ROLE openwatch WITH SUPERUSER" in script and "CREATE ROLE auditor;" in script


def facts(**changes: object) -> pg_cluster.ClusterFacts:
    base = dict(server_version="15.14", data_checksums=False,
                databases={"openwatch": {"encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8", "owner": "openwatch"}},
                roles={"openwatch": {"rolsuper": True, "password_digest": "abc", "member_of": []}},
                extensions={"openwatch": {"plpgsql": "1.0"}},
                owners={"openwatch": {"table public.hosts": "openwatch"}})
    return pg_cluster.ClusterFacts(**{**base, **changes})


def test_differences_name_what_did_not_carry_over_and_ignore_the_version() -> None:
    assert pg_cluster.differences(facts(), facts(server_version="17.12",
                                                 extensions={"openwatch": {"plpgsql": "1.1"}})) == []
    found = pg_cluster.differences(facts(), facts(
        data_checksums=True, roles={"openwatch": {"rolsuper": True, "password_digest": "other", "member_of": []}},
        extensions={"openwatch": {}}, owners={"openwatch": {"table public.hosts": "postgres"}},
        databases={"openwatch": {"encoding": "SQL_ASCII", "collate": "C.UTF-8", "ctype": "C.UTF-8", "owner": "openwatch"}}))
    assert found == ["data checksums on, recorded off",
                     "database openwatch: encoding 'SQL_ASCII' (recorded 'UTF8')",
                     "role openwatch: password verifier changed",
                     "database openwatch: extension plpgsql is missing",
                     "database openwatch: owner of table public.hosts: 'postgres' (recorded 'openwatch')"]


def test_unsupported_names_an_older_major_a_missing_extension_and_locale() -> None:
    recorded = facts(extensions={"openwatch": {"plpgsql": "1.0", "pg_trgm": "1.6"}},
                     databases={"openwatch": {"encoding": "UTF8", "collate": "de_DE.UTF-8", "ctype": "C.UTF-8",
                                              "owner": "openwatch"}})
    assert pg_cluster.unsupported(recorded, 15, {"plpgsql"}, {"C.utf8", "POSIX"}) == [
        "the new image runs PostgreSQL 15, not newer than the installed 15",
        "extension pg_trgm is not in the new image",
        "locale de_DE.UTF-8 (a database's collation) is not in the new image"]
    assert pg_cluster.unsupported(recorded, 17, {"plpgsql", "pg_trgm"}, {"de_DE.utf8"}) == []
    assert pg_cluster.unsupported(recorded, 17, {"plpgsql", "pg_trgm"}, None) == []  # no `locale`: not checked


def install_dir(tmp_path: Path, env: str) -> Path:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / ".env").write_text(env)
    (tmp_path / ".env").chmod(0o600)
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("")
    return tmp_path


def test_pointer_names_the_override_in_env_and_unpoint_restores_it(tmp_path: Path) -> None:
    directory = install_dir(tmp_path, "POSTGRES_PASSWORD=secret\n")
    (directory / "docker-compose.override.yml").write_text("services: {}\n")
    pointer = pg_pointer.Pointer(directory, (directory / "docker-compose.yml",), "pg:17")
    pointer.write_override(17)
    assert "postgres_data_pg17:/var/lib/postgresql/data" in pointer.override.read_text()
    assert pg_pointer.OVERRIDE in (directory / ".git" / "info" / "exclude").read_text()
    recorded = pointer.point()
    assert recorded == {"previous_compose_file_line": None, "compose_file":
                        f"docker-compose.yml:docker-compose.override.yml:{pg_pointer.OVERRIDE}"}
    assert (directory / ".env").stat().st_mode & 0o777 == 0o600
    pointer.unpoint(recorded["previous_compose_file_line"])
    assert (directory / ".env").read_text() == "POSTGRES_PASSWORD=secret\n"
    assert not pointer.override.exists()


def test_pointer_keeps_an_operators_compose_file_line(tmp_path: Path) -> None:
    directory = install_dir(tmp_path, "COMPOSE_FILE=docker-compose.yml:extra.yml\nX=1\n")
    (directory / "extra.yml").write_text("services: {}\n")
    pointer = pg_pointer.Pointer(directory, (), "pg:17")
    recorded = pointer.point()
    assert recorded["compose_file"] == f"docker-compose.yml:extra.yml:{pg_pointer.OVERRIDE}"
    pointer.unpoint(recorded["previous_compose_file_line"])
    assert (directory / ".env").read_text() == "X=1\nCOMPOSE_FILE=docker-compose.yml:extra.yml\n"


@pytest.mark.parametrize(("component", "revision", "heads", "migrates"), [
    ("backend", "0002_scan_indexes", ["0004_scan_failed_count"], True),
    ("backend", "0004_scan_failed_count", ["0004_scan_failed_count"], False),
    ("frontend", "0002_scan_indexes", ["0004_scan_failed_count"], False),
])
def test_only_the_backend_migrates_and_only_to_new_revisions(component: str, revision: str, heads: list[str],
                                                             migrates: bool) -> None:
    assert app_component.needs_migration(component, revision, heads) is migrates


def test_one_stage_model_for_every_operation() -> None:
    assert components.stages_for(None) == RELEASE_STAGES
    assert [s.name for s in components.stages_for("backend")] == [s.name for s in RELEASE_STAGES]
    postgres = [s.name for s in components.stages_for("postgres")]
    assert postgres[:2] == ["gate", "lock_and_record"] and postgres[-1] == "finish"
    assert components.stages_for("postgres") is pg_major.STAGES


@pytest.mark.parametrize(("recorded", "operation"), [
    ({}, None),
    ({"component": {"name": "backend"}}, "backend"),
    ({"component": {"name": "frontend"}}, "frontend"),
    ({"component": {"name": "aegis"}}, "aegis"),
    ({"pg_major": {"new_image": "openwatch-sandbox/postgres:17"}}, "postgres"),
    ({"redis": {"new_image": "openwatch-sandbox/redis:8"}}, "redis"),
])
def test_resume_settles_a_run_by_the_operation_its_journal_names(recorded: dict, operation: str | None) -> None:
    assert resume.operation_of({"outcome": "running", "stages": [], **recorded}) == operation
    assert "finish" in [stage.name for stage in components.stages_for(operation)]  # what a verified run completes


@pytest.mark.parametrize(("component", "failed", "said"), [
    ("postgres", "dump", "UPGRADE FAILED at stage dump; no rollback ran (--no-rollback)"),
    ("aegis", "finish", "UPGRADE FAILED at stage finish, after the new version was verified; not rolled back: run the "
                        "upgrade suite with --resume to complete it"),
])
def test_outcome_reads_the_operations_own_stages(component: str, failed: str, said: str) -> None:
    """A component's stage (dump is no release stage) failed and left as it is: one line, no KeyError."""
    upgrade = SimpleNamespace(journal=SimpleNamespace(data={"outcome": "running"}), before=None)
    config = SimpleNamespace(stash={keys.UPGRADE_KEY: upgrade, keys.RUN_MODE_KEY: RunMode("upgrade"),
                                    keys.FAILED_STAGE_KEY: failed},
                             getoption=lambda name, default=None: component if name == "component" else default)
    assert outcome.outcome(config) == said
