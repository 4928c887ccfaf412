"""``.env`` files read the way Docker Compose reads them, and checked before anything uses them.

Compose and the suite must agree on every value (a password the suite reads differently from the
containers is a confusing failure later), and a malformed line must be named without echoing its
value: a wrapped line can be the second half of a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbook.errors import OperatorError
from runbook.redaction import Secret, is_secret_name

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


@dataclass(frozen=True)
class EnvLine:
    number: int
    key: str | None
    value: str | None
    problem: str | None  # why the line cannot be read, without its value


def _quoted(rest: str, quote: str) -> tuple[str | None, str]:
    """The value inside ``quote`` and what follows the closing quote (``None`` when unterminated)."""
    value, index = [], 1
    while index < len(rest):
        char = rest[index]
        if char == quote:
            return "".join(value), rest[index + 1:]
        if quote == '"' and char == "\\" and index + 1 < len(rest):
            value.append(ESCAPES.get(rest[index + 1], "\\" + rest[index + 1]))
            index += 2
            continue
        value.append(char)
        index += 1
    return None, ""


def parse_line(number: int, raw: str) -> EnvLine | None:
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith("export "):
        line = line[len("export "):].lstrip()
    match = re.match(r"([^=:]*)[=:]", line)
    if match is None:
        return EnvLine(number, None, None, "is not KEY=value (no '=')")
    key = match.group(1).strip()
    if not key:
        return EnvLine(number, None, None, "has no variable name before '='")
    if not KEY.fullmatch(key):
        return EnvLine(number, None, None, "has a variable name with characters other than letters, digits and _ . -")
    rest = line[match.end():].lstrip()
    if rest[:1] in ("'", '"'):
        value, after = _quoted(rest, rest[0])
        if value is None:
            return EnvLine(number, key, None, f"opens a {rest[0]} quote for {key} that is never closed on that line")
        if after.strip() and not after.strip().startswith("#"):
            return EnvLine(number, key, None, f"has text after the closing quote of {key}'s value")
        return EnvLine(number, key, value, None)
    value = re.split(r"\s#", rest, maxsplit=1)[0].strip()  # an unquoted value ends at " #"
    return EnvLine(number, key, value, None)


def parse_env(text: str) -> dict[str, str | Secret]:
    """``KEY=value`` lines as Compose reads them; values of secret-looking names are wrapped.
    Unreadable lines are left out (:func:`check` names them)."""
    values: dict[str, str | Secret] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        parsed = parse_line(number, raw)
        if parsed is not None and parsed.problem is None:
            values[parsed.key] = Secret(parsed.value) if is_secret_name(parsed.key) else parsed.value
    return values


def check_syntax(text: str, name: str = ".env") -> None:
    """:class:`OperatorError` naming the first line Compose would not read as this module does."""
    for number, raw in enumerate(text.splitlines(), 1):
        parsed = parse_line(number, raw)
        if parsed is not None and parsed.problem:
            raise OperatorError(f"line {number} of {name} {parsed.problem}; fix it (Docker Compose reads the same "
                                "file) and run again")


def unset_secrets(values: dict[str, str | Secret], example: str) -> list[str]:
    """Secrets the release's ``.env.example`` requires (a non-empty example value) that ``values``
    lacks or leaves empty, each as "NAME (missing|empty)"."""
    required = [key for key, value in parse_env(example).items() if is_secret_name(key) and _clear(value)]
    return [f"{key} ({'empty' if key in values else 'missing'})" for key in required if not _clear(values.get(key, ""))]


def _clear(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value
