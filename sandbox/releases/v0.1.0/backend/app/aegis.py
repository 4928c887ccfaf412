"""The Aegis compliance rule bundle (``rules.json``): its health and its reference listing."""

import json
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.auth import current_user

router = APIRouter(prefix="/api", dependencies=[Depends(current_user)])
RULES: list[dict] = json.loads((Path(__file__).parent / "rules.json").read_text())


@router.get("/scans/aegis/health")
def aegis_health() -> JSONResponse:
    healthy = bool(RULES)
    body = {"status": "healthy" if healthy else "unhealthy", "rules_loaded": len(RULES)}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/rules/reference/")
def rules_reference() -> dict:
    return {"total": len(RULES), "rules": RULES}
