"""Build the sandbox's images offline: a debootstrapped Debian base and the infrastructure
images (PostgreSQL 15, Redis 7, nginx) that releases refer to by name; the backend image installs
its own runtime from Debian packages, as OpenWatch's Dockerfile does with pip.

No registry is reachable, so every image is built here; each build is skipped when the image
already exists with the same Dockerfile content (its hash is an image label).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runbook.shell import CommandError, progress, run

IMAGES_DIR = Path(__file__).parent / "images"
BASE_IMAGE = "openwatch-sandbox/bookworm:base"
CONTENT_LABEL = "org.openwatch-sandbox.content"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
BASE_TARBALL = Path("/var/cache/openwatch-sandbox/bookworm-minbase.tar")
APT_GUARDED = Path(__file__).parent / "apt-guarded.sh"


@dataclass(frozen=True)
class InfraImage:
    """An image the release compose files name, built from ``sandbox/images/<folder>``."""

    folder: str
    tag: str


INFRA_IMAGES: tuple[InfraImage, ...] = (
    InfraImage("postgres", "openwatch-sandbox/postgres:15"),
    InfraImage("redis", "openwatch-sandbox/redis:7"),
    InfraImage("nginx", "openwatch-sandbox/nginx:1.22"),
)


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def image_label(tag: str, label: str) -> str | None:
    proc = run(["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', tag], check=False)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value not in ("", "<no value>") else None


def debian_mirror(sources: Path = DEBIAN_SOURCES) -> str:
    """The Debian mirror this machine already uses (deb822 ``URIs:``), never a hard-coded host."""
    for line in sources.read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    raise RuntimeError(f"no 'URIs:' line in {sources}; cannot pick a Debian mirror")


def ensure_base() -> None:
    """Import a minbase bookworm (with python3) as the base image, once per engine.

    The root file system is debootstrapped once per machine and kept as a tarball, so a second engine
    (the tests' private one beside the host's) imports it in seconds instead of bootstrapping again.
    """
    if image_exists(BASE_IMAGE):
        return
    started = time.monotonic()
    if not BASE_TARBALL.exists():
        bootstrap_base_tarball()
    with BASE_TARBALL.open("rb") as tarball:
        imported = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tarball, capture_output=True,
                                  text=True, timeout=600)
    if imported.returncode != 0:
        raise CommandError(["docker", "import", "-", BASE_IMAGE], imported.returncode, imported.stderr)
    progress(f"{BASE_IMAGE} ready in {time.monotonic() - started:.0f}s")


def bootstrap_base_tarball() -> None:
    if shutil.which("debootstrap") is None:
        run(["bash", str(APT_GUARDED), "debootstrap"], timeout=600)
    progress(f"debootstrap bookworm -> {BASE_TARBALL} (about a minute)")
    BASE_TARBALL.parent.mkdir(parents=True, exist_ok=True)
    partial = BASE_TARBALL.with_suffix(".partial")
    with tempfile.TemporaryDirectory(prefix="openwatch-base-") as root:
        run(
            ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", root, debian_mirror()],
            timeout=1200,
        )
        run(["tar", "-C", root, "-c", "-f", str(partial), "."], timeout=600)
    partial.rename(BASE_TARBALL)


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_infra_image(image: InfraImage) -> None:
    folder = IMAGES_DIR / image.folder
    content = folder_digest(folder)
    if image_label(image.tag, CONTENT_LABEL) == content:
        return
    started = time.monotonic()
    progress(f"building {image.tag}")
    run(
        [
            "docker", "build", "--quiet",
            "--build-arg", f"BASE={BASE_IMAGE}",
            "--label", f"{CONTENT_LABEL}={content}",
            "--tag", image.tag, str(folder),
        ],
        timeout=1800,
    )
    progress(f"{image.tag} built in {time.monotonic() - started:.0f}s")


def ensure_all() -> None:
    """Everything a release's compose file needs before ``docker compose build`` can run."""
    ensure_base()
    for image in INFRA_IMAGES:
        ensure_infra_image(image)
