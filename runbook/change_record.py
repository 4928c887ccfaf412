"""The run as a change record: what moved from what to what, why it stopped, and the data proof.

Read from the journal only (plain data), so the HTML card, the JSON summary and the exports say the
same thing. "After" is the installation as the run left it: the upgraded state after an upgrade,
the restored state after a rollback (``restored``, captured by the rollback's own verification).
"""

from __future__ import annotations

from dataclasses import dataclass

ROLLED_BACK = "ROLLED BACK"
MANUAL = "FAILED - MANUAL ACTION"


@dataclass(frozen=True)
class Move:
    what: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class TableProof:
    table: str
    rows_before: int | None
    rows_after: int | None
    checksum_equal: bool
    note: str  # "identical", or why a difference is expected, or "UNEXPECTED ..."

    @property
    def expected(self) -> bool:
        return not self.note.startswith("UNEXPECTED")

    def to_json(self) -> dict:
        return {"table": self.table, "rows_before": self.rows_before, "rows_after": self.rows_after,
                "checksum_equal": self.checksum_equal, "expected": self.expected, "note": self.note}


def final_state(journal: dict) -> dict | None:
    """The installation as the run left it: restored by a rollback, else upgraded, else untouched."""
    if journal.get("rollback") is not None or str(journal.get("outcome", "")).startswith(ROLLED_BACK):
        return journal.get("restored")
    if journal.get("after"):
        return journal["after"]
    if journal.get("outcome") == "NOT STARTED":
        return journal.get("before")
    return None


def moves(journal: dict) -> list[Move]:
    before, after = journal.get("before") or {}, final_state(journal) or {}
    return [Move(label, before.get(key), after.get(key)) for label, key in (
        ("OpenWatch version", "version"), ("git ref", "git_ref"), ("git commit", "git_commit"),
        ("Alembic revision", "revision"))]


def failed_stage(journal: dict) -> dict | None:
    """The stage that failed (or was running when the run was interrupted) and its one-line reason."""
    for stage in reversed(journal.get("stages") or []):
        if stage.get("status") in ("failed", "running"):
            reason = (stage.get("detail") or "interrupted").strip().splitlines()
            return {"name": stage["name"], "reason": reason[0] if reason else "interrupted"}
    return None


def data_integrity(journal: dict) -> list[TableProof]:
    """Every table, rows and checksum before and after. After a rollback any difference is
    unexpected; after an upgrade a table the migrations rewrote (same rows, other checksum) or
    renamed (a new table with exactly its rows) is expected, a lost row never is."""
    # A live app writes while it serves: the proof compares the database as it was once the app
    # stopped with what the migration or the rollback left before anything started again.
    before = (journal.get("at_stop") or journal.get("before") or {}).get("tables") or {}
    after_state = final_state(journal)
    if journal.get("outcome") == "UPGRADED" and journal.get("migrated"):
        after_state = journal["migrated"]
    if not before or after_state is None:
        return []
    after = after_state.get("tables") or {}
    migrated = journal.get("outcome") == "UPGRADED" and (journal.get("before") or {}).get("revision") != \
        after_state.get("revision")
    new_tables = {name: info["rows"] for name, info in after.items() if name not in before}
    proofs = []
    for name, info in sorted(before.items()):
        now = after.get(name)
        if now is None:
            renamed = next((new for new, rows in new_tables.items() if rows == info["rows"]), None) if migrated else None
            if renamed:
                proofs.append(TableProof(name, info["rows"], new_tables.pop(renamed), False,
                                         f"renamed by the migrations to {renamed} (rows equal)"))
            else:
                proofs.append(TableProof(name, info["rows"], None, False, "UNEXPECTED: table is gone"))
            continue
        equal = now["checksum"] == info["checksum"]
        if equal and now["rows"] == info["rows"]:
            note = "identical"
        elif now["rows"] == info["rows"] and migrated:
            note = "content rewritten by the migrations (rows equal)"
        else:
            note = f"UNEXPECTED: {'rows' if now['rows'] != info['rows'] else 'checksum'} differ"
        proofs.append(TableProof(name, info["rows"], now["rows"], equal, note))
    for name, rows in sorted(new_tables.items()):
        proofs.append(TableProof(name, None, rows, False, "new table created by the migrations" if migrated
                                 else "UNEXPECTED: table was not there before"))
    return proofs
