"""What the control node copies to every host: the suite as a source archive (the project's files
as git knows them, with their working-tree content) and a wheelhouse of its dependencies, so a
host installs it with ``pip install --no-index`` and needs no index of its own.

An archive of the sources, not a wheel: the operator suites run as ``pytest suites/<suite>`` from
the project folder (its pytest.ini, conftest.py and plugins/), which a wheel does not lay out.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

from runbook.shell import run

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_PREFIX = "openwatch-upgrade-suite"


def project_files(root: Path = ROOT) -> list[str]:
    """Tracked and new, not ignored, files (the sandbox's build output and reports stay out)."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root).stdout
    return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})


def content_digest(root: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()[:12]


def build_archive(out_dir: Path, root: Path = ROOT) -> Path:
    """``<out_dir>/openwatch-upgrade-suite-<digest>.tar.gz``, kept when the same content was packed before."""
    names = project_files(root)
    archive = out_dir / f"{ARCHIVE_PREFIX}-{content_digest(root, names)}.tar.gz"
    if not archive.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in names:
                tar.add(root / name, arcname=f"{archive.name.removesuffix('.tar.gz')}/{name}")
        partial.rename(archive)
        for older in out_dir.glob(f"{ARCHIVE_PREFIX}-*.tar.gz"):
            if older != archive:
                older.unlink()
    return archive


def build_wheelhouse(out_dir: Path, requirements: Path = ROOT / "requirements.txt") -> Path:
    """``<out_dir>/wheelhouse-<digest>.tar``: the wheels ``requirements`` resolves to for this
    platform, made once per requirements content."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    tarball = out_dir / f"wheelhouse-{digest}.tar"
    if tarball.exists():
        return tarball
    wheels = out_dir / f"wheelhouse-{digest}"
    # pip wheel, not pip download: a requirement published only as an sdist (pytest-dependency) is
    # built into a wheel here, once, so a host never needs a compiler or an index.
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(wheels), "--requirement", str(requirements)], timeout=900)
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(wheels, arcname="wheelhouse")
    partial.rename(tarball)
    return tarball
