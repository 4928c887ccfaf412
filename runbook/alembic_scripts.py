"""Alembic revision graph of the checked-out code, read from ``backend/alembic/versions`` (no container)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

VERSIONS_DIR = Path("backend/alembic/versions")


@dataclass(frozen=True)
class Script:
    revision: str
    down_revisions: tuple[str, ...]
    path: Path


def _literal(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    return None


def scripts(install_dir: Path) -> dict[str, Script]:
    found: dict[str, Script] = {}
    for path in sorted((install_dir / VERSIONS_DIR).glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        revision = _literal(tree, "revision")
        if not isinstance(revision, str):
            continue
        down = _literal(tree, "down_revision")
        downs = tuple(down) if isinstance(down, (tuple, list)) else (down,) if isinstance(down, str) else ()
        found[revision] = Script(revision, downs, path)
    return found


def heads(install_dir: Path) -> list[str]:
    """Revisions no other revision builds on."""
    graph = scripts(install_dir)
    referenced = {down for script in graph.values() for down in script.down_revisions}
    return sorted(set(graph) - referenced)


def is_ancestor(install_dir: Path, ancestor: str, of: str) -> bool:
    graph = scripts(install_dir)
    pending, seen = [of], set()
    while pending:
        current = pending.pop()
        if current == ancestor:
            return True
        if current in seen or current not in graph:
            continue
        seen.add(current)
        pending.extend(graph[current].down_revisions)
    return False
