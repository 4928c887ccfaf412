"""Alembic revision graph read from ``backend/alembic/versions``: of the checked-out code (the files)
or of any commit (its blobs), without a container or Alembic itself."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from runbook import gitrepo

VERSIONS_DIR = Path("backend/alembic/versions")


@dataclass(frozen=True)
class Script:
    revision: str
    down_revisions: tuple[str, ...]  # more than one for a merge revision
    path: PurePath
    # Its upgrade() changes something and its downgrade() does nothing (only a docstring, ``pass``
    # or ``...``) or raises: the full rollback tier cannot undo it (the real
    # 041_add_manual_remediation_status adds an enum value and leaves it: PostgreSQL cannot drop one).
    irreversible: bool = False


def _does_nothing(tree: ast.Module, name: str) -> bool:
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name), None)
    if function is None:
        return True
    body = [node for node in function.body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]  # docstrings, ``...``
    return all(isinstance(node, (ast.Pass, ast.Raise)) for node in body)


def _literal(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    return None


def parse(sources: Iterable[tuple[PurePath, str]]) -> dict[str, Script]:
    """Revision -> script, from (path, source) pairs; files without a string ``revision`` are not scripts."""
    found: dict[str, Script] = {}
    for path, source in sources:
        tree = ast.parse(source, filename=str(path))
        revision = _literal(tree, "revision")
        if not isinstance(revision, str):
            continue
        down = _literal(tree, "down_revision")
        downs = tuple(down) if isinstance(down, (tuple, list)) else (down,) if isinstance(down, str) else ()
        irreversible = _does_nothing(tree, "downgrade") and not _does_nothing(tree, "upgrade")
        found[revision] = Script(revision, downs, path, irreversible=irreversible)
    return found


def scripts(install_dir: Path) -> dict[str, Script]:
    """The graph of the checked-out code."""
    return parse((path, path.read_text()) for path in sorted((install_dir / VERSIONS_DIR).glob("*.py")))


def scripts_at(install_dir: Path, commit: str) -> dict[str, Script]:
    """The graph of ``commit`` (its objects must be local), read from git without a checkout."""
    return parse(gitrepo.files_at(install_dir, commit, VERSIONS_DIR.as_posix(), ".py"))


def heads(graph: dict[str, Script]) -> list[str]:
    """Revisions no other revision builds on."""
    referenced = {down for script in graph.values() for down in script.down_revisions}
    return sorted(set(graph) - referenced)


def ancestry(graph: dict[str, Script], revision: str) -> set[str]:
    """``revision`` and every revision it builds on."""
    seen, todo = set(), [revision]
    while todo:
        current = todo.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        todo.extend(graph[current].down_revisions)
    return seen


def irreversible_between(graph: dict[str, Script], base: str, head: str) -> list[str]:
    """The revisions from ``base`` (exclusive) to ``head`` whose downgrade does nothing."""
    return sorted(name for name in ancestry(graph, head) - ancestry(graph, base) if graph[name].irreversible)
