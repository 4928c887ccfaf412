"""A directory that loads as an OpenWatch installation with no container behind it: enough for the
suites' collection, their options and every check that needs no running service."""

from __future__ import annotations

from pathlib import Path

SERVICES = ("database", "redis", "backend", "worker", "frontend")
# Nothing listens here; the checks that do run fail at once instead of reaching another installation.
NOWHERE = ("--base-url", "http://127.0.0.1:9", "--frontend-url", "http://127.0.0.1:9")


def fake_installation(root: Path) -> Path:
    install = root / "install"
    (install / "backend").mkdir(parents=True)
    (install / "backups" / "postgres").mkdir(parents=True)
    (install / "VERSION").write_text("0.1.0\n")
    (install / "backend" / "alembic.ini").write_text("[alembic]\n")
    (install / "docker-compose.yml").write_text("services:\n" + "".join(
        f"  {name}:\n    image: openwatch-sandbox/redis:7\n    container_name: fake-openwatch-{name}\n"
        for name in SERVICES))
    (install / ".env").write_text("POSTGRES_PASSWORD=fake-password-for-tests\nPOSTGRES_PORT=9\n")
    return install
