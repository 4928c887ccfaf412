"""Certificate paths in ``.env`` are container paths (as in OpenWatch's own ``.env.example``): the
pre-flight maps them through the backend's mounts before looking for them on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook import host_checks, profile as profiles
from runbook.errors import Problem

# The backend's volumes as OpenWatch's docker-compose.yml (compose era) declares them.
COMPOSE = """\
services:
  backend:
    image: none
    volumes:
      - app_data:/openwatch/data
      - ./security/certs:/openwatch/security/certs:ro
      - ./security/keys:/openwatch/security/keys
      - ssh_known_hosts:/openwatch/security/known_hosts
volumes:
  app_data:
  ssh_known_hosts:
"""
ENV = """\
TLS_CERT_FILE=/openwatch/security/certs/server.crt
TLS_KEY_FILE=/openwatch/security/keys/server.key
KNOWN_HOSTS_CA=/openwatch/security/known_hosts/ca.pem
REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
"""


@pytest.fixture
def install(tmp_path: Path) -> Path:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / "VERSION").write_text("0.1.0-alpha.1\n")
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "alembic.ini").write_text("[alembic]\n")
    (tmp_path / ".env").write_text(ENV)
    for folder, name in (("certs", "server.crt"), ("keys", "server.key")):
        (tmp_path / "security" / folder).mkdir(parents=True)
        (tmp_path / "security" / folder / name).write_text("-----BEGIN-----\n")
    return tmp_path


def test_container_paths_are_checked_where_the_bind_mounts_put_them(install: Path) -> None:
    certificates = host_checks.env_and_certs_readable(profiles.load(install))
    assert install / "security" / "certs" / "server.crt" in certificates.checked
    assert install / "security" / "keys" / "server.key" in certificates.checked
    assert certificates.not_on_host == [
        "KNOWN_HOSTS_CA=/openwatch/security/known_hosts/ca.pem is in the backend's volume ssh_known_hosts, "
        "not on the host: not checked",
        "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt is under no mount of the backend service "
        "(inside its image, if anywhere): not checked from the host"]


def test_a_missing_certificate_is_named_by_its_host_path(install: Path) -> None:
    (install / "security" / "keys" / "server.key").unlink()
    with pytest.raises(Problem) as missing:
        host_checks.env_and_certs_readable(profiles.load(install))
    assert str(missing.value) == (f"certificate files missing or unreadable: {install}/security/keys/server.key; "
                                  "restore them before upgrading")
