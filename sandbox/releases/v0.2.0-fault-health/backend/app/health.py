"""GET /health (FAULT: checks a scanner service that this release never ships, so it is always 503)."""

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import config, db

router = APIRouter()


@router.get("/health")
def health() -> JSONResponse:
    database, cache = db.database_ok(), db.redis_ok()
    scanner = False  # FAULT: the scanner sidecar this release expects does not exist
    healthy = database and cache and scanner
    body = {
        "status": "healthy" if healthy else "degraded",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "version": config.version(),
        "fips_mode": False,
        "database": "healthy" if database else "unhealthy",
        "redis": "healthy" if cache else "unhealthy",
        "scanner": "unreachable",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
