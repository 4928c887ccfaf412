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
    # $ forms: interpolated unquoted and in double quotes, from lines above (UNSET_OW_* is never set)
    ("POSTGRES_PASSWORD=ab$cd", "ab"),
    ("POSTGRES_PASSWORD=ab$$cd", "ab$cd"),
    ('POSTGRES_PASSWORD="ab$$cd"', "ab$cd"),
    ("POSTGRES_PASSWORD='ab$cd${UNSET_OW_X}$$'", "ab$cd${UNSET_OW_X}$$"),
    ('POSTGRES_PASSWORD="esc\\$cd"', "esc$cd"),
    ("POSTGRES_PASSWORD=un\\$cd", "un\\"),
    ("PART=x1\nPOSTGRES_PASSWORD=a${PART}b$PART", "ax1bx1"),
    ('PART=x1\nPOSTGRES_PASSWORD="${PART}-q"', "x1-q"),
    ("PART='$PART'\nPOSTGRES_PASSWORD=${PART}", "$PART"),
    ("POSTGRES_PASSWORD=${UNSET_OW_X:-fall back}", "fall back"),
    ("PART=1\nPOSTGRES_PASSWORD=${UNSET_OW_X:-${PART}}${UNSET_OW_X:-$$}", "1$"),
    ("EMPTY=\nPOSTGRES_PASSWORD=${EMPTY-kept}${EMPTY:-d}", "d"),
    ("EMPTY=\nPOSTGRES_PASSWORD=${EMPTY:+no}${EMPTY+yes}${UNSET_OW_X+no}", "yes"),
    ("POSTGRES_PASSWORD=a$-b$1$", "a$-b$1$"),
    ("POSTGRES_PASSWORD=${UNSET_OW_X:-a}b}", "ab}"),
    ("POSTGRES_PASSWORD=x\nPOSTGRES_PASSWORD=${POSTGRES_PASSWORD}2", "x2"),
]

UNREADABLE = [
    ('POSTGRES_PASSWORD="s3cretvalue', 'opens a " quote for POSTGRES_PASSWORD that is never closed'),
    ("POSTGRES_PASSWORD='s3cretvalue\"", "opens a ' quote for POSTGRES_PASSWORD that is never closed"),
    ("POSTGRES PASSWORD=s3cretvalue", "characters other than letters"),
    ("s3cretvalue", "is not KEY=value (no '=')"),
    ("=s3cretvalue", "has no variable name"),
    ('POSTGRES_PASSWORD="s3cretvalue" trailing', "has text after the closing quote"),
    ("POSTGRES_PASSWORD=s3cretvalue${s3cretvalue", "has a ${ in POSTGRES_PASSWORD's value that is not ${NAME}"),
    ("POSTGRES_PASSWORD=${A.s3cretvalue}", "has a ${ in POSTGRES_PASSWORD's value that is not ${NAME}"),
    ('POSTGRES_PASSWORD="s3cretvalue${s3cretvalue:1}"', "has a ${ in POSTGRES_PASSWORD's value that is not"),
    ("POSTGRES_PASSWORD=s3cretvalue${s3cretvalue:?s3cretvalue}",
     "requires a variable (a ${...:?...} in POSTGRES_PASSWORD's value) to be set and not empty"),
]
# Refused by Compose too (its own message echoes the value; the suite's comes first).
COMPOSE_REFUSES = [line for line, _ in UNREADABLE if "$" in line]


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


@pytest.mark.parametrize("line", COMPOSE_REFUSES)
def test_compose_refuses_the_same_dollar_expressions(line: str, tmp_path: Path) -> None:
    assert _compose_value(tmp_path, line, expect_refusal=True) is None


def test_a_required_variable_outside_a_secret_is_named() -> None:
    with pytest.raises(OperatorError, match=r"line 1 of .env requires UNSET_OW_X \(a \$\{...\?...\} in BACKEND_URL"):
        check_syntax("BACKEND_URL=${UNSET_OW_X?set it}\n")


def test_the_process_environment_comes_before_the_lines_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OW_FROM_ENV", "from-env")
    line = "OW_FROM_ENV=from-file\nPOSTGRES_PASSWORD=${OW_FROM_ENV}"
    assert parse_env(line)["POSTGRES_PASSWORD"].reveal() == "from-env" == _compose_value(tmp_path, line)


def test_example_values_are_read_as_written() -> None:
    example = parse_env("JWT_SECRET_KEY=${UNSET_OW_X:?}\nBACKEND_URL=$UNSET_OW_X\n", interpolate=False)
    assert example["JWT_SECRET_KEY"].reveal() == "${UNSET_OW_X:?}" and example["BACKEND_URL"] == "$UNSET_OW_X"


def test_required_secrets_are_the_example_values_that_are_not_empty() -> None:
    example = "POSTGRES_PASSWORD=change-me\nJWT_SECRET_KEY=change-me\nSMTP_PASSWORD=\nBACKEND_PORT=8000\n"
    assert unset_secrets(parse_env("POSTGRES_PASSWORD=\nBACKEND_PORT=\n"), example) == [
        "POSTGRES_PASSWORD (empty)", "JWT_SECRET_KEY (missing)"]
    assert unset_secrets(parse_env("POSTGRES_PASSWORD=x\nJWT_SECRET_KEY='y'\n"), example) == []


def _compose_value(tmp_path: Path, line: str, expect_refusal: bool = False) -> str | None:
    """What ``docker compose config`` makes of the same lines (the CLI alone, no engine); ``None``
    when it refuses them, as ``expect_refusal`` says it must."""
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  probe:\n    image: none\n    environment:\n      VALUE: ${POSTGRES_PASSWORD}\n")
    (tmp_path / ".env").write_text(f"{line}\n")
    try:
        result = subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "config", "--format",
                                 "json"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("docker compose is not installed")
    assert (result.returncode != 0) == expect_refusal, result.stderr
    if expect_refusal:
        return None
    # config prints a file Compose would read again, so every literal $ in a value comes out as $$
    return json.loads(result.stdout)["services"]["probe"]["environment"]["VALUE"].replace("$$", "$")
