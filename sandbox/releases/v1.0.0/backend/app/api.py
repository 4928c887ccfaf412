"""Hosts and scans."""

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import text

from app import db
from app.auth import current_user

router = APIRouter(prefix="/api", dependencies=[Depends(current_user)])


@router.get("/hosts/")
def hosts() -> dict:
    with db.engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM hosts")).scalar_one()
    return {"total": total}


@router.get("/hosts/summary")
def hosts_summary() -> dict:
    """New in 0.2.0: hosts per operating-system family."""
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT os_family, count(*) AS n FROM hosts GROUP BY os_family ORDER BY os_family"))
        return {"by_os_family": {row.os_family: row.n for row in rows}}


@router.get("/scans/{scan_id}/results")
def scan_results(scan_id: int) -> dict:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT rule_id, status, severity_level FROM rule_results WHERE scan_id = :s ORDER BY id"),
            {"s": scan_id},
        ).mappings().all()
    if not rows:
        raise HTTPException(status_code=404, detail=f"scan {scan_id} has no results")
    return {"scan_id": scan_id, "results": [dict(row) for row in rows]}
