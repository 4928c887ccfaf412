"""Where the stand-in's rules are, and its version, under the names the OpenWatch backend imports."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RULES = Path(__file__).resolve().parent / "rules"


def get_rules_path(subpath: str = "") -> Path:
    """The stand-in's rule folder (one YAML file per rule, grouped by category, as Kensa lays them out)."""
    return RULES / subpath if subpath else RULES


def get_mappings_path(subpath: str = "") -> Path:
    """The stand-in has no framework mapping files; callers find the folder empty."""
    mappings = RULES.parent / "mappings"
    return mappings / subpath if subpath else mappings


def get_version() -> str:
    """The installed distribution's version, which names it a stand-in (``0+offline.standin``)."""
    try:
        return version("kensa")
    except PackageNotFoundError:
        return "dev"
