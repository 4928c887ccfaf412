"""The Aegis compliance rule bundle: its health and its reference listing.

The rules come from ``backend/aegis/rules.json`` when the installation has the bundle's own git
repository there (as OpenWatch ships it: the procedure updates it with ``git pull`` and a rebuild);
without it, from the copy the release carries (``app/rules.json``)."""

import json
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.auth import current_user

router = APIRouter(prefix="/api", dependencies=[Depends(current_user)])
BUNDLE = Path(__file__).parent.parent / "aegis" / "rules.json"
BUILT_IN = Path(__file__).parent / "rules.json"
RULES: list[dict] = json.loads((BUNDLE if BUNDLE.exists() else BUILT_IN).read_text())


@router.get("/scans/aegis/health")
def aegis_health() -> JSONResponse:
    healthy = bool(RULES)
    body = {"status": "healthy" if healthy else "unhealthy", "rules_loaded": len(RULES)}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/rules/reference/")
def rules_reference() -> dict:
    return {"total": len(RULES), "rules": RULES}
