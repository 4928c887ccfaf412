"""GET /health: 200 and "healthy" when every dependency answers, else 503 "degraded"."""

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import config, db

router = APIRouter()


@router.get("/health")
def health() -> JSONResponse:
    database, cache = db.database_ok(), db.redis_ok()
    healthy = database and cache
    body = {
        "status": "healthy" if healthy else "degraded",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "version": config.version(),
        "fips_mode": False,
        "database": "healthy" if database else "unhealthy",
        "redis": "healthy" if cache else "unhealthy",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
