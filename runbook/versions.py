"""Release tags and their order (``v1.2.3`` with an optional ``-suffix`` pre-release)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int
    # A release sorts after its pre-releases (semver): (1, ...) > (0, ...).
    final: int
    pre_release: tuple[tuple[tuple[int, int | str], ...], ...]  # the suffix as :func:`pre_release_key` orders it
    suffix: str = field(compare=False)

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return base if self.final else f"{base}-{self.suffix}"


def pre_release_key(suffix: str) -> tuple[tuple[tuple[int, int | str], ...], ...]:
    """Semver's order of dot-separated identifiers (numbers before words, a longer list after its
    prefix), with digit runs inside an identifier compared as numbers: rc2 < rc10, as people mean it."""
    return tuple(tuple((0, int(run)) if run.isdigit() else (1, run) for run in re.findall(r"\d+|\D+", identifier))
                 for identifier in suffix.split("."))


def parse(text: str) -> Version | None:
    match = TAG.match(text.strip())
    if not match:
        return None
    major, minor, patch, suffix = match.groups()
    return Version(int(major), int(minor), int(patch), 0 if suffix else 1, pre_release_key(suffix or ""), suffix or "")


def nearest(tag: str, known: list[str], count: int = 3) -> list[str]:
    return difflib.get_close_matches(tag, known, n=count, cutoff=0.3)
