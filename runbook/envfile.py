"""``.env`` files read the way Docker Compose reads them, and checked before anything uses them.

Compose and the suite must agree on every value (a password the suite reads differently from the
containers is a confusing failure later), and a malformed line must be named without echoing its
value: a wrapped line can be the second half of a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from runbook.errors import OperatorError
from runbook.redaction import Secret, is_secret_name

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what ``$NAME`` and ``${NAME}`` may name
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
# ${NAME<operator>word}: default (-), required (?), alternative (+); with ':' an empty value counts as unset.
OPERATORS = (":-", "-", ":?", "?", ":+", "+")

Lookup = Callable[[str], str | None]  # a variable's value, None when unset


class TemplateError(Exception):
    """A ``$`` expression Compose refuses. Its text is never shown: even a variable name in it can be
    part of a password that happens to contain ``${``. ``problem(key)`` says what is wrong."""

    def __init__(self, required: str | None = None, empty_too: bool = False) -> None:
        super().__init__("a $ expression Compose cannot read")
        self.required, self.empty_too = required, empty_too

    def problem(self, key: str) -> str:
        if self.required is None:
            return (f"has a ${{ in {key}'s value that is not ${{NAME}}, ${{NAME:-default}} or the like "
                    "(write $$ for a literal $)")
        # The name is worth showing, except inside a secret's value, where it may be a piece of it.
        variable = "a variable" if is_secret_name(key) else self.required
        return (f"requires {variable} (a ${{...{':' if self.empty_too else ''}?...}} in {key}'s value) to be set"
                f"{' and not empty' if self.empty_too else ''}, and it is not")


@dataclass(frozen=True)
class EnvLine:
    number: int
    key: str | None
    value: str | None
    problem: str | None  # why the line cannot be read, without its value


def _quoted(rest: str, quote: str) -> tuple[str | None, str]:
    """The text inside ``quote``, escapes still in it, and what follows the closing quote
    (``None`` when unterminated)."""
    index = 1
    while index < len(rest):
        char = rest[index]
        if char == quote:
            return rest[1:index], rest[index + 1:]
        index += 2 if quote == '"' and char == "\\" else 1
    return None, ""


def expand(text: str, lookup: Lookup | None, escapes: bool = False) -> str:
    """``text`` as Compose reads a value: ``$$`` is a ``$``, ``$NAME`` and ``${NAME...}`` are
    replaced, a ``$`` before anything else stays; with ``escapes`` (double quotes) backslash
    escapes too, ``\\$`` a literal ``$``. Without ``lookup`` only the escapes are read."""
    out, index = [], 0
    while index < len(text):
        char, following = text[index], text[index + 1:index + 2]
        if escapes and char == "\\" and following:
            out.append(ESCAPES.get(following, char + following))
            index += 2
        elif char != "$" or lookup is None:
            out.append(char)
            index += 1
        elif following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            value, index = _braced(text, index + 2, lookup, escapes)
            out.append(value)
        elif name := NAME.match(text, index + 1):
            out.append(lookup(name.group()) or "")
            index = name.end()
        else:
            out.append("$")
            index += 1
    return "".join(out)


def _braced(text: str, start: int, lookup: Lookup, escapes: bool) -> tuple[str, int]:
    """The value of the ``${...}`` whose name starts at ``start``, and the index after its ``}``."""
    name = NAME.match(text, start)
    if name is None:
        raise TemplateError()
    index = name.end()
    operator = next((op for op in OPERATORS if text.startswith(op, index)), "")
    if not operator and text[index:index + 1] != "}":
        raise TemplateError()
    close = _closing_brace(text, index + len(operator))
    value = lookup(name.group())
    if not operator:
        return value or "", close + 1
    word = text[index + len(operator):close]
    present = bool(value) if operator.startswith(":") else value is not None
    if operator.endswith("?"):
        if not present:
            raise TemplateError(required=name.group(), empty_too=operator == ":?")
        return value, close + 1
    if operator.endswith("-"):
        return (value if present else expand(word, lookup, escapes)), close + 1
    return (expand(word, lookup, escapes) if present else ""), close + 1


def _closing_brace(text: str, index: int) -> int:
    depth = 0
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    raise TemplateError()


def parse_line(number: int, raw: str, lookup: Lookup | None = None) -> EnvLine | None:
    """One line; ``lookup`` resolves its ``$`` expressions (``None``: values as written, for files
    Compose never reads, such as ``.env.example``)."""
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
    try:
        if rest[:1] in ("'", '"'):
            value, after = _quoted(rest, rest[0])
            if value is None:
                return EnvLine(number, key, None, f"opens a {rest[0]} quote for {key} that is never closed on that line")
            if after.strip() and not after.strip().startswith("#"):
                return EnvLine(number, key, None, f"has text after the closing quote of {key}'s value")
            return EnvLine(number, key, value if rest[0] == "'" else expand(value, lookup, escapes=True), None)
        value = re.split(r"\s#", rest, maxsplit=1)[0].strip()  # an unquoted value ends at " #"
        return EnvLine(number, key, expand(value, lookup), None)
    except TemplateError as error:
        return EnvLine(number, key, None, error.problem(key))


def read_lines(text: str, interpolate: bool = True) -> Iterator[EnvLine]:
    """Every ``KEY=value`` line in order, each ``$`` expression resolved as Compose resolves it:
    from the process environment first, then from the lines above."""
    resolved: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return os.environ.get(name, resolved.get(name))

    for number, raw in enumerate(text.splitlines(), 1):
        parsed = parse_line(number, raw, lookup if interpolate else None)
        if parsed is not None:
            if parsed.problem is None:
                resolved[parsed.key] = parsed.value
            yield parsed


def parse_env(text: str, interpolate: bool = True) -> dict[str, str | Secret]:
    """``KEY=value`` lines as Compose reads them; values of secret-looking names are wrapped.
    Unreadable lines are left out (:func:`check_syntax` names them). ``interpolate=False`` reads
    values as written (``.env.example``: Compose never reads it, only its names and whether a
    value is given matter)."""
    return {parsed.key: Secret(parsed.value) if is_secret_name(parsed.key) else parsed.value
            for parsed in read_lines(text, interpolate) if parsed.problem is None}


def check_syntax(text: str, name: str = ".env") -> None:
    """:class:`OperatorError` naming the first line Compose would not read as this module does."""
    for parsed in read_lines(text):
        if parsed.problem:
            raise OperatorError(f"line {parsed.number} of {name} {parsed.problem}; fix it (Docker Compose reads the "
                                "same file) and run again")


def unset_secrets(values: dict[str, str | Secret], example: str) -> list[str]:
    """Secrets the release's ``.env.example`` requires (a non-empty example value) that ``values``
    lacks or leaves empty, each as "NAME (missing|empty)"."""
    required = [key for key, value in parse_env(example, interpolate=False).items()
                if is_secret_name(key) and _clear(value)]
    return [f"{key} ({'empty' if key in values else 'missing'})" for key in required if not _clear(values.get(key, ""))]


def _clear(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value
