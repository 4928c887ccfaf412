"""The real OpenWatch's offline adaptations: patches of its Dockerfiles and the compose override.

Read from the real tags (the bundle in shared/openwatch-real, cloned to a bare origin); Compose's own
``config`` merges the override, no Docker engine involved.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.real import override, patches, releases

TAGS = [release.tag for release in releases.RELEASES]


@pytest.fixture(scope="module")
def origin() -> Path:
    try:
        return releases.ensure_origin()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def instructions(dockerfile: str) -> str:
    """The Dockerfile without its comments (the real ones talk about UBI9 and dnf at length)."""
    return "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))


def show(origin: Path, tag: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(origin), "show", f"{tag}:{path}"], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("tag", TAGS)
def test_backend_patch_swaps_only_what_is_offline(origin: Path, tag: str) -> None:
    real = show(origin, tag, "docker/Dockerfile.backend")
    patched = instructions(patches.backend_dockerfile(real))
    assert "registry.access.redhat.com" not in patched and "dnf " not in patched
    assert [line for line in patched.splitlines() if line.startswith("FROM ")] == [f"FROM {patches.BASE_IMAGE}"]
    assert "--mount=type=secret,id=host_ca" in patched and "ca-certificates.crt" not in patched
    # Everything from the user on is the real file's: same USER, ENTRYPOINT, CMD, HEALTHCHECK.
    for line in ("USER openwatch", 'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]', "HEALTHCHECK --interval=30s",
                 'CMD ["python3.12", "-m", "uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]'):
        assert line in real and line in patched


@pytest.mark.parametrize("tag", TAGS)
def test_frontend_patch_keeps_the_npm_build(origin: Path, tag: str) -> None:
    patched = instructions(patches.frontend_dockerfile(show(origin, tag, "docker/Dockerfile.frontend")))
    assert "alpine" not in patched and "apk " not in patched and "adduser -D" not in patched
    assert [line for line in patched.splitlines() if line.startswith("FROM ")] == [
        f"FROM {patches.NODE_IMAGE} AS builder", f"FROM {patches.NGINX_IMAGE}"]
    assert "NPM_CONFIG_CAFILE=/run/secrets/host_ca npm install" in patched
    assert "RUN npm run build" in patched and "COPY --from=builder /app/build /usr/share/nginx/html" in patched


def test_a_changed_dockerfile_is_refused_naming_the_line() -> None:
    with pytest.raises(patches.PatchError, match=r"Dockerfile.backend: no line matches .*ubi9"):
        patches.backend_dockerfile("FROM registry.example/ubi10:1\nRUN dnf install -y python3.13\n")


@pytest.mark.parametrize("tag", TAGS)
def test_override_replaces_ports_and_subnet_and_follows_checkouts(origin: Path, tag: str, tmp_path: Path) -> None:
    install = tmp_path / "install"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(install)], check=True)
    settings = override.Settings(postgres_port=20002, backend_port=20000, frontend_port=20001, subnet="10.212.9.0/24")
    override.install(install, settings)
    subprocess.run(["git", "-C", str(install), "checkout", "--quiet", "--detach", tag], check=True)
    (install / ".env").write_text("POSTGRES_PASSWORD=x\nREDIS_PASSWORD=x\n")
    config = json.loads(subprocess.run(["docker", "compose", "--project-directory", str(install), "config",
                                        "--format", "json"], capture_output=True, text=True, check=True).stdout)
    published = {name: [(port["host_ip"], port["published"], port["target"]) for port in spec.get("ports", [])]
                 for name, spec in config["services"].items() if spec.get("ports")}
    assert published == {"database": [("127.0.0.1", "20002", 5432)], "backend": [("127.0.0.1", "20000", 8000)],
                         "frontend": [("127.0.0.1", "20001", 80)]}
    assert config["networks"]["openwatch-network"]["ipam"]["config"] == [{"subnet": "10.212.9.0/24"}]
    assert config["services"]["database"]["image"] == "openwatch-sandbox/postgres:15"
    assert ("redis" in config["services"]) == (releases.BY_TAG[tag].queue == "celery")
    assert subprocess.run(["git", "-C", str(install), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""
