"""Checks of the machine: free disk, a writable install dir and backup folder, readable .env and certs,
secrets and dumps private to their owner, the engine."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from shlex import quote

import docker
import psycopg
import testinfra.host

from runbook.errors import Problem
from runbook.journal import JOURNAL_DIR
from runbook.profile import Mount, Profile
from runbook.redaction import is_secret_name
from runbook.shell import CommandError, run
from runbook.versions import parse

GiB = 1024**3
MIN_FREE = 3 * GiB
MIN_ENGINE = (20, 10)
CERT_SUFFIXES = (".pem", ".crt", ".key", ".p12")
WRITE_PROBE = ".openwatch-write-probe"


def database_bytes(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def image_bytes(client: docker.DockerClient, profile: Profile) -> int:
    """Size of the images the installation's containers run: what a rebuild may add again."""
    sizes = {}
    for spec in profile.services.values():
        try:
            image = client.containers.get(spec.container).image
        except docker.errors.NotFound:
            continue
        sizes[image.id] = int(image.attrs.get("Size", 0))
    return sum(sizes.values())


def space_needed(db_bytes: int, images_bytes: int) -> int:
    return max(MIN_FREE, 2 * db_bytes + images_bytes)


def free_space(path: Path, needed: int, what: str) -> int:
    probe = path if path.exists() else path.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise Problem(f"{what} {path} has {free / GiB:.2f} GiB free, needs {needed / GiB:.2f} GiB "
                      "(max of 3 GiB and 2 x database + images); free space or move the backup folder")
    return free


def _write_probe(folder: Path, size: int) -> None:
    """Writes, fsyncs and removes a probe file; OSError when ``folder`` cannot take it. The removal
    in ``finally`` never raises itself: on a read-only filesystem even a missing file's unlink fails,
    and that error would replace the one that says why."""
    probe = folder / WRITE_PROBE
    try:
        with probe.open("wb") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def backup_dir_writable(path: Path) -> None:
    """Writes a 64 KiB probe, so a full filesystem or quota shows here, not mid-backup."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        _write_probe(path, 65536)
    except OSError as error:
        raise Problem(f"backup folder {path} is not writable ({error.strerror}); the upgrade writes its database "
                      "dump and config copy there: fix its permissions, mount it read-write or free space") from None


def install_dir_writable(install_dir: Path) -> None:
    """The upgrade writes in the install dir itself (its lock file and journal) and checks out the
    target there (work tree and ``.git``); each is probed, so a read-only mount shows here."""
    needs = {install_dir: "the upgrade's lock file, journal and checkout",
             install_dir / JOURNAL_DIR: "the upgrade's journal", install_dir / ".git": "the checkout of the target"}
    for folder, need in needs.items():
        if folder != install_dir and not folder.is_dir():
            continue
        try:
            _write_probe(folder, 4096)
        except OSError as error:
            raise Problem(f"{folder} is not writable ({error.strerror}); {need} must write there: "
                          "mount it read-write or fix its ownership") from None


@dataclass(frozen=True)
class Certificates:
    checked: list[Path]  # host files found readable
    not_on_host: list[str]  # one line each: a path .env names that no bind mount puts on the host


def host_file(profile: Profile, container_path: PurePosixPath) -> Path | Mount | None:
    """The host file the backend sees at ``container_path``: mapped through its bind mount with the
    longest matching target. The mount itself when that is not a bind (a named volume); None when
    no mount holds the path (it is in the image, or nowhere)."""
    backend = profile.services.get("backend")
    holding = [mount for mount in (backend.mounts if backend else ())
               if container_path == PurePosixPath(mount.target) or PurePosixPath(mount.target) in container_path.parents]
    if not holding:
        return None
    mount = max(holding, key=lambda m: len(PurePosixPath(m.target).parts))
    if mount.kind != "bind":
        return mount
    return Path(mount.source) / container_path.relative_to(mount.target)


def env_and_certs_readable(profile: Profile) -> Certificates:
    """``.env`` is readable and every certificate file it names exists and is readable on the host.
    OpenWatch's ``.env`` names them as the backend container sees them (``/openwatch/security/certs/
    server.crt``), so absolute paths go through the backend's bind mounts; relative ones are taken
    from the install dir."""
    env_file = profile.install_dir / ".env"
    if not os.access(env_file, os.R_OK):
        raise Problem(f"{env_file} is not readable; fix its permissions (0600, owned by the operator)")
    certs, not_on_host = [], []
    for name in profile.env:
        value = profile.setting(name)
        if not value.endswith(CERT_SUFFIXES):
            continue
        if not PurePosixPath(value).is_absolute():
            certs.append(profile.install_dir / value)
            continue
        found = host_file(profile, PurePosixPath(value))
        named = name if is_secret_name(name) else f"{name}={value}"
        if isinstance(found, Path):
            certs.append(found)
        elif isinstance(found, Mount):
            not_on_host.append(f"{named} is in the backend's {found.kind} {found.source}, not on the host: "
                               "not checked")
        else:
            not_on_host.append(f"{named} is under no mount of the backend service (inside its image, if "
                               "anywhere): not checked from the host")
    certs += sorted(p for p in (profile.install_dir / "security" / "certs").glob("*") if p.is_file())
    unreadable = [str(path) for path in certs if not os.access(path, os.R_OK)]
    if unreadable:
        raise Problem(f"certificate files missing or unreadable: {', '.join(unreadable)}; restore them before upgrading")
    return Certificates(certs, not_on_host)


def engine_and_compose(client: docker.DockerClient) -> tuple[str, str]:
    try:
        engine = client.version()["Version"]
    except docker.errors.DockerException:
        raise Problem("the Docker engine does not answer; start dockerd") from None
    parsed = parse(engine.split("+")[0])
    if parsed is None or (parsed.major, parsed.minor) < MIN_ENGINE:
        raise Problem(f"Docker engine {engine} is older than {MIN_ENGINE[0]}.{MIN_ENGINE[1]}; upgrade Docker")
    try:
        compose = run(["docker", "compose", "version", "--short"], timeout=30).stdout.strip()
    except CommandError:
        raise Problem("`docker compose` (v2 plugin) is missing; install docker-compose-plugin (v1 is not enough)") from None
    if not compose.lstrip("v").startswith("2"):
        raise Problem(f"docker compose {compose} is not v2; install the compose v2 plugin")
    return engine, compose


def private_to_the_owner(host: testinfra.host.Host, files: list[Path], folders: list[Path]) -> int:
    """Files that hold secrets or the whole database (``.env``, dumps) must not be readable by other
    users of the machine, nor their folders listable. Read through testinfra's ``host``, so the same
    check runs on a fleet host over SSH. Returns how many paths were checked."""
    exposed, checked = [], 0
    for path, other_bits in [(file, 0o004) for file in files] + [(folder, 0o005) for folder in folders]:
        found = host.file(str(path))
        if not found.exists:
            continue
        checked += 1
        if found.mode & other_bits:
            exposed.append(f"{path} (mode {found.mode:o})")
    if exposed:
        raise Problem(f"readable by every user of this machine: {', '.join(exposed)}; they hold secrets or "
                      f"the whole database: `chmod o-rwx {' '.join(quote(item.split(' (')[0]) for item in exposed)}`")
    return checked
