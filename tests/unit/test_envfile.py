"""``.env`` parsing agrees with Docker Compose, and unreadable lines are named without their value."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from runbook.envfile import check_syntax, parse_env, unset_secrets
from runbook.errors import OperatorError
from runbook.redaction import Secret

READABLE = [
    ("POSTGRES_PASSWORD=plain", "plain"),
    ('POSTGRES_PASSWORD="dq # not a comment"', "dq # not a comment"),
    ("POSTGRES_PASSWORD='sq \"inner\"'", 'sq "inner"'),
    ("export POSTGRES_PASSWORD=exported", "exported"),
    ("POSTGRES_PASSWORD=value # comment", "value"),
    ('POSTGRES_PASSWORD = "spaced out" # c', "spaced out"),
    ("POSTGRES_PASSWORD: yaml-style", "yaml-style"),
    ('POSTGRES_PASSWORD=a"b', 'a"b'),
    ("POSTGRES_PASSWORD=", ""),
]

UNREADABLE = [
    ('POSTGRES_PASSWORD="s3cretvalue', 'opens a " quote for POSTGRES_PASSWORD that is never closed'),
    ("POSTGRES_PASSWORD='s3cretvalue\"", "opens a ' quote for POSTGRES_PASSWORD that is never closed"),
    ("POSTGRES PASSWORD=s3cretvalue", "characters other than letters"),
    ("s3cretvalue", "is not KEY=value (no '=')"),
    ("=s3cretvalue", "has no variable name"),
    ('POSTGRES_PASSWORD="s3cretvalue" trailing', "has text after the closing quote"),
]


@pytest.mark.parametrize(("line", "value"), READABLE)
def test_values_read_as_compose_reads_them(line: str, value: str, tmp_path: Path) -> None:
    parsed = parse_env(f"# comment\n\n{line}\n")["POSTGRES_PASSWORD"]
    assert isinstance(parsed, Secret) and parsed.reveal() == value
    assert _compose_value(tmp_path, line) == value


@pytest.mark.parametrize(("line", "problem"), UNREADABLE)
def test_unreadable_line_is_named_without_its_value(line: str, problem: str) -> None:
    with pytest.raises(OperatorError) as raised:
        check_syntax(f"COMPOSE_PROJECT_NAME=openwatch\n{line}\n", ".env")
    message = str(raised.value)
    assert message.startswith("line 2 of .env ") and problem in message and "fix it" in message
    assert "s3cretvalue" not in message and "\n" not in message


def test_required_secrets_are_the_example_values_that_are_not_empty() -> None:
    example = "POSTGRES_PASSWORD=change-me\nJWT_SECRET_KEY=change-me\nSMTP_PASSWORD=\nBACKEND_PORT=8000\n"
    assert unset_secrets(parse_env("POSTGRES_PASSWORD=\nBACKEND_PORT=\n"), example) == [
        "POSTGRES_PASSWORD (empty)", "JWT_SECRET_KEY (missing)"]
    assert unset_secrets(parse_env("POSTGRES_PASSWORD=x\nJWT_SECRET_KEY='y'\n"), example) == []


def _compose_value(tmp_path: Path, line: str) -> str | None:
    """What ``docker compose config`` makes of the same line (skipped when no engine answers)."""
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  probe:\n    image: none\n    environment:\n      VALUE: ${POSTGRES_PASSWORD}\n")
    (tmp_path / ".env").write_text(f"{line}\n")
    try:
        result = subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "config", "--format",
                                 "json"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("docker compose is not installed")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]["probe"]["environment"]["VALUE"]
