"""Release tags and their order (``v1.2.3`` with an optional ``-suffix`` pre-release)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int
    # A release sorts after its pre-releases (semver): (1, "") > (0, "rc1").
    final: int
    suffix: str

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return base if self.final else f"{base}-{self.suffix}"


def parse(text: str) -> Version | None:
    match = TAG.match(text.strip())
    if not match:
        return None
    major, minor, patch, suffix = match.groups()
    return Version(int(major), int(minor), int(patch), 0 if suffix else 1, suffix or "")


def nearest(tag: str, known: list[str], count: int = 3) -> list[str]:
    return difflib.get_close_matches(tag, known, n=count, cutoff=0.3)
