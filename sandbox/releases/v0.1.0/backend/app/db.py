"""Database and Redis handles shared by the API and the worker."""

import redis
from sqlalchemy import create_engine, text

from app import config

engine = create_engine(
    config.database_url(), pool_pre_ping=True, pool_size=5, connect_args={"connect_timeout": 3}
)


def database_ok() -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def redis_ok() -> bool:
    try:
        return bool(redis.Redis.from_url(config.redis_url(), socket_timeout=2).ping())
    except Exception:
        return False
