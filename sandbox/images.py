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
from sandbox import machine_lock

IMAGES_DIR = Path(__file__).parent / "images"
BASE_IMAGE = "openwatch-sandbox/bookworm:base"
# Debian 13: Node.js 20.19 (the real frontend's Vite 7 needs >= 20.19; bookworm has 18).
TRIXIE_IMAGE = "openwatch-sandbox/trixie:base"
CONTENT_LABEL = "org.openwatch-sandbox.content"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
BASE_TARBALL = Path("/var/cache/openwatch-sandbox/bookworm-minbase.tar")
TRIXIE_TARBALL = Path("/var/cache/openwatch-sandbox/trixie-minbase.tar")
APT_GUARDED = Path(__file__).parent / "apt-guarded.sh"


@dataclass(frozen=True)
class InfraImage:
    """An image the release compose files name, built from ``sandbox/images/<folder>``."""

    folder: str
    tag: str
    base: str = BASE_IMAGE


INFRA_IMAGES: tuple[InfraImage, ...] = (
    InfraImage("postgres", "openwatch-sandbox/postgres:15"),
    InfraImage("redis", "openwatch-sandbox/redis:7"),
    InfraImage("nginx", "openwatch-sandbox/nginx:1.22"),
)
# For the real OpenWatch's frontend build only (sandbox/real), built when that flavour is used.
NODE_IMAGE = InfraImage("node", "openwatch-sandbox/node:20", base=TRIXIE_IMAGE)
# Targets of the component upgrades (suites/upgrade --component): PostgreSQL 17 from Debian 13's
# packages on the trixie base, and a fault image of it whose server never starts; Redis 8 likewise
# (Debian has no Redis between bookworm's 7.0 and trixie's 8.0) and a fault image of it that
# crash-loops on the installation's data. In build order.
POSTGRES_17 = InfraImage("postgres17", "openwatch-sandbox/postgres:17", base=TRIXIE_IMAGE)
REDIS_8 = InfraImage("redis8", "openwatch-sandbox/redis:8", base=TRIXIE_IMAGE)
COMPONENT_IMAGES: tuple[InfraImage, ...] = (
    POSTGRES_17,
    InfraImage("postgres17-nostart", "openwatch-sandbox/postgres:17-fault-nostart", base=POSTGRES_17.tag),
    REDIS_8,
    InfraImage("redis8-crashloop", "openwatch-sandbox/redis:8-fault-crashloop", base=REDIS_8.tag),
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


def ensure_base(image: str = BASE_IMAGE, tarball: Path = BASE_TARBALL, suite: str = "bookworm") -> None:
    """Import a minbase Debian ``suite`` (with python3) as ``image``, once per engine.

    The root file system is debootstrapped once per machine and kept as a tarball, so a second engine
    (the tests' private one beside the host's) imports it in seconds instead of bootstrapping again.
    """
    if image_exists(image):
        return
    started = time.monotonic()
    with machine_lock.exclusive(tarball.stem):
        if not tarball.exists():
            bootstrap_base_tarball(tarball, suite)
    with tarball.open("rb") as source:
        imported = subprocess.run(["docker", "import", "-", image], stdin=source, capture_output=True,
                                  text=True, timeout=600)
    if imported.returncode != 0:
        raise CommandError(["docker", "import", "-", image], imported.returncode, imported.stderr)
    progress(f"{image} ready in {time.monotonic() - started:.0f}s")


def bootstrap_base_tarball(tarball: Path = BASE_TARBALL, suite: str = "bookworm") -> None:
    if shutil.which("debootstrap") is None:
        run(["bash", str(APT_GUARDED), "debootstrap"], timeout=600)
    progress(f"debootstrap {suite} -> {tarball} (about a minute)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    with tempfile.TemporaryDirectory(prefix="openwatch-base-") as root:
        run(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, root, debian_mirror()],
            timeout=1200,
        )
        run(["tar", "-C", root, "-c", "-f", str(partial), "."], timeout=600)
    partial.rename(tarball)


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
            "--build-arg", f"BASE={image.base}",
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


def ensure_component_images() -> None:
    """The component upgrades' target images (and the trixie base they are built on)."""
    ensure_all()
    ensure_base(TRIXIE_IMAGE, TRIXIE_TARBALL, "trixie")
    for image in COMPONENT_IMAGES:
        ensure_infra_image(image)
