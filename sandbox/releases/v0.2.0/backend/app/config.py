"""Settings from the environment; compose passes .env through ``env_file``."""

import os
from pathlib import Path
from urllib.parse import quote

# Variables the backend refuses to start without (checked at start-up, not at import,
# so that alembic can run with only the database settings).
REQUIRED_ENV = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "OPENWATCH_SECRET_KEY", "JWT_SECRET_KEY", "OPENWATCH_ENCRYPTION_KEY")


def require_env() -> None:
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise SystemExit("OpenWatch cannot start: missing required settings: " + ", ".join(missing))


def version() -> str:
    return Path(os.environ.get("OPENWATCH_VERSION_FILE", "/app/VERSION")).read_text().strip()


def database_url() -> str:
    user = os.environ.get("POSTGRES_USER", "openwatch")
    password = quote(os.environ["POSTGRES_PASSWORD"], safe="")
    host = os.environ.get("POSTGRES_HOST", "database")
    db = os.environ.get("POSTGRES_DB", "openwatch")
    return f"postgresql+psycopg2://{user}:{password}@{host}:5432/{db}"


def redis_url() -> str:
    password = quote(os.environ["REDIS_PASSWORD"], safe="")
    return f"redis://:{password}@{os.environ.get('REDIS_HOST', 'redis')}:6379/0"


def jwt_secret() -> str:
    return os.environ["JWT_SECRET_KEY"]
