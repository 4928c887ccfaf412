"""The suite reads an installation's compose files as ``docker compose`` does without ``-f``."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.errors import OperatorError
from runbook.profile import default_compose_files


@pytest.fixture
def install(tmp_path: Path) -> Path:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    return tmp_path


def test_compose_file_alone(install: Path) -> None:
    assert default_compose_files(install, {}, environ={}) == [install / "docker-compose.yml"]


def test_override_file_is_read_when_present(install: Path) -> None:
    (install / "docker-compose.override.yml").write_text("services: {}\n")
    assert default_compose_files(install, {}, environ={}) == [install / "docker-compose.yml",
                                                              install / "docker-compose.override.yml"]


def test_compose_file_variable_from_env_file_replaces_the_defaults(install: Path) -> None:
    (install / "docker-compose.override.yml").write_text("services: {}\n")
    (install / "site.yml").write_text("services: {}\n")
    files = default_compose_files(install, {"COMPOSE_FILE": "docker-compose.yml:site.yml"}, environ={})
    assert files == [install / "docker-compose.yml", install / "site.yml"]


def test_environment_wins_over_env_file_and_separator_is_honoured(install: Path) -> None:
    (install / "a.yml").write_text("services: {}\n")
    (install / "b.yml").write_text("services: {}\n")
    files = default_compose_files(install, {"COMPOSE_FILE": "docker-compose.yml"},
                                  environ={"COMPOSE_FILE": "a.yml;b.yml", "COMPOSE_PATH_SEPARATOR": ";"})
    assert files == [install / "a.yml", install / "b.yml"]


def test_compose_file_naming_a_missing_file_is_one_line(install: Path) -> None:
    with pytest.raises(OperatorError, match=r"COMPOSE_FILE names .*gone\.yml, which does not exist"):
        default_compose_files(install, {"COMPOSE_FILE": "docker-compose.yml:gone.yml"}, environ={})
