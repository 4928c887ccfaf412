"""Secrets from ``.env`` are wrapped so they never reach a report, log line or exception text."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "********"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$|MASTER_KEY|PRIVATE", re.IGNORECASE)
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words in logs
# Secrets recognised by their shape, whatever their value: bearer tokens and passwords in DSNs/URLs.
SHAPES = (
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?bearer\s+)[A-Za-z0-9._~+/=-]+"), 1),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), 1),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)"), 1),
)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Secret:
    """A secret value: ``str()``, ``repr()`` and f-strings show a mask; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Redactor:
    """Replaces every known secret value in a text with the mask."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        self._values.update(value for value in values if len(value) >= MIN_SECRET_LENGTH)
        ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        text = self._pattern.sub(MASK, text) if self._pattern else text
        for pattern, keep in SHAPES:
            text = pattern.sub(lambda match, keep=keep: match.group(keep) + MASK, text)
        return text

    def __bool__(self) -> bool:
        return bool(self._values)
