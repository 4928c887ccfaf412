"""Create, reset and tear down an installation of the real OpenWatch (compose era) at one of its tags.

The steps an operator takes, in the real code's order: clone, check out, ``.env`` from ``.env.example``,
JWT keys as ``security/README.md`` says, build with the real ``docker-compose.yml`` (plus the offline
override), ``alembic upgrade head`` as the real CI runs it (``cd backend && alembic upgrade head``), start,
and, once the app has created its own rows, the seed. A database dump per tag and seed makes the next
installation (and a reset between scenarios) a restore instead of migrations and seed.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import psycopg

from runbook.shell import CommandError, progress, run
from sandbox import images
from sandbox.installation import Installation, Ports
from sandbox.real import envfile, override, releases, seed

BACKEND_DIR = "/openwatch/backend"
CONTAINER_UID = 10001  # the backend image's user (useradd -u 10001 in docker/Dockerfile.backend)
DUMPS_DIR = releases.PROJECT_ROOT / ".sandbox" / "real-dumps"
REDIS_VOLUME = "openwatch_redis_data"  # the real compose file's redis_data, project openwatch
HASH_PASSWORD = "import sys; from app.auth import pwd_context; print(pwd_context.hash(sys.stdin.read()))"


class RealInstallation(Installation):
    """A real OpenWatch checkout; what differs from the sandbox's is how the real code is laid out."""

    @property
    def settings(self) -> override.Settings:
        return override.load_settings(self.directory)

    @property
    def release(self) -> releases.RealRelease:
        commit = self.git("rev-parse", "HEAD").stdout.strip()
        for release in releases.RELEASES:
            if self.git("rev-parse", f"{release.tag}^{{commit}}").stdout.strip() == commit:
                return release
        raise ValueError(f"{self.directory} is at {commit[:12]}, none of the real tags")

    def alembic(self, *args: str, check: bool = True):
        """Alembic as the real CI runs it, from ``backend/`` (its alembic.ini has ``script_location = alembic``,
        relative to the working directory, so ``-c /openwatch/backend/alembic.ini`` from elsewhere fails)."""
        return self.compose("run", "--rm", "--no-deps", "-T", "--workdir", BACKEND_DIR, "backend", "alembic", *args,
                            check=check)

    @property
    def ports(self) -> Ports:
        """Published as the override says (the real compose file's own ports are replaced there)."""
        settings = self.settings
        return Ports(settings.postgres_port, settings.backend_port, settings.frontend_port)

    def up(self, *services: str, wait: bool = True, timeout: int = 480) -> None:
        """Start and wait for the services with a healthcheck (celery-beat has it disabled, which
        ``compose up --wait`` counts as a failure, so it is waited for as running only)."""
        started = self.compose("up", "--detach", "--no-build", "--remove-orphans", *services, timeout=timeout + 60,
                               check=False)
        # A dependency (Redis: 3 s check timeout) can be judged unhealthy on a loaded machine before the
        # services that wait for it are started: the loop below starts them once it is healthy again.
        if started.returncode != 0 and not (wait and "is unhealthy" in started.stderr + started.stdout):
            raise CommandError(["docker", "compose", "up", *services], started.returncode,
                               started.stderr or started.stdout)
        if not wait:
            return
        names = [s for s in (services or tuple(self.services())) if s != "celery-beat"]
        deadline = time.monotonic() + timeout
        while True:
            # The real backend's healthcheck has no start period (3 x 30 s): on a loaded machine its first
            # start outlasts it and Docker says unhealthy, then healthy at the next check that passes.
            left = max(1, int(deadline - time.monotonic()))
            waited = self.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", str(left), *names,
                                  timeout=left + 60, check=False)
            if waited.returncode == 0:
                if started.returncode != 0:  # what waited for the dependency (celery-beat too) is started now
                    self.compose("up", "--detach", "--no-build", *services, timeout=timeout + 60)
                return
            if "is unhealthy" not in waited.stderr + waited.stdout or time.monotonic() > deadline:
                raise CommandError(["docker", "compose", "up", "--wait", *names], waited.returncode,
                                   waited.stderr or waited.stdout)
            time.sleep(5)

    def reset(self, tag: str, dump: Path) -> None:
        """As :meth:`Installation.reset`, with Redis back empty, as it was when the baseline was made: its
        volume is not part of the baseline, and what a scenario left in it (kept when Redis was retired,
        brought back by a rollback) must not carry over; CI twice found Redis unhealthy for good after it."""
        run(["docker", "rm", "--force", "openwatch-redis"], check=False)
        run(["docker", "volume", "rm", REDIS_VOLUME], check=False)
        super().reset(tag, dump)

    def password_hash(self, password: str) -> str:
        """The backend's own argon2 hash (its passlib context), the password on stdin, never in argv."""
        proc = subprocess.run(["docker", "exec", "-i", "openwatch-backend", "python3", "-c", HASH_PASSWORD],
                              input=password, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise CommandError(["docker", "exec", "openwatch-backend", "python3", "-c", "<hash>"], proc.returncode,
                               proc.stderr)
        return proc.stdout.strip().splitlines()[-1]

    def wait_for_database(self, deadline_s: float = 60.0) -> None:
        """Until PostgreSQL accepts a TCP connection: on a fresh volume the image's entrypoint first runs a
        socket-only server to create the database, which pg_isready (the healthcheck) already calls ready."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with self.connect():
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise CommandError(["connect", "openwatch-db"], 1, f"not accepting connections after "
                                                                        f"{deadline_s:.0f}s: {error}") from None
            time.sleep(0.25)

    def restore_database(self, dump: Path) -> None:
        self.wait_for_database()
        super().restore_database(dump)


def jwt_keys(directory: Path) -> None:
    """``security/README.md`` step 2, then owned by the containers' user, which reads the bind-mounted keys."""
    keys = directory / "security" / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    private, public = keys / "jwt_private.pem", keys / "jwt_public.pem"
    run(["openssl", "genrsa", "-out", str(private), "2048"])
    run(["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)])
    private.chmod(0o600)
    public.chmod(0o644)
    run(["chown", "-R", f"{CONTAINER_UID}:{CONTAINER_UID}", str(keys)])


def tls_files(directory: Path) -> None:
    """The server certificate and key where ``.env.example``'s TLS_CERT_FILE and TLS_KEY_FILE put them
    (``security/certs/server.crt``, ``security/keys/server.key``), self-signed, as an operator makes
    them (``scripts/generate-certs.sh`` writes both into certs/, and its 4096-bit keys and DH
    parameters take a minute: a 2048-bit pair is enough for a test bed that serves plain HTTP)."""
    certificate = directory / "security" / "certs" / "server.crt"
    key = directory / "security" / "keys" / "server.key"
    certificate.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(certificate)])
    key.chmod(0o600)
    run(["chown", f"{CONTAINER_UID}:{CONTAINER_UID}", str(key)])


def dump_path(release: releases.RealRelease, commit: str, size: seed.SeedSize) -> Path:
    """The seeded baseline of ``release``: changes with its commit, the seed and this module."""
    digest = hashlib.sha256(commit.encode() + repr(size).encode() + Path(seed.__file__).read_bytes()
                            + Path(__file__).read_bytes()).hexdigest()[:12]
    return DUMPS_DIR / f"{release.tag}-{digest}.dump"


def ensure_images() -> None:
    images.ensure_all()
    images.ensure_base(images.TRIXIE_IMAGE, images.TRIXIE_TARBALL, "trixie")
    images.ensure_infra_image(images.NODE_IMAGE)


def create(directory: Path, tag: str, *, ports: Ports = Ports(), subnet: str = "172.20.0.0/16",
           seed_size: seed.SeedSize = seed.SeedSize(), origin: Path | None = None) -> RealInstallation:
    """A fresh, seeded, healthy real installation of ``tag`` in ``directory`` (which must not exist)."""
    if tag not in releases.BY_TAG:
        raise ValueError(f"unknown real tag {tag!r}; known: {', '.join(releases.BY_TAG)}")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty; destroy the installation there first")
    started = time.monotonic()
    ensure_images()
    origin = releases.ensure_origin(origin or releases.DEFAULT_ORIGIN)
    run(["git", "clone", "--quiet", str(origin), str(directory)], timeout=300)
    install = RealInstallation(directory)
    override.install(directory, override.Settings(ports.postgres, ports.backend, ports.frontend, subnet))
    install.git("checkout", "--quiet", "--detach", tag)  # the hook renders the override for this code
    release = releases.BY_TAG[tag]
    dump = dump_path(release, install.git("rev-parse", "HEAD").stdout.strip(), seed_size)
    # The .env that wrote a saved dump goes with it: the data holds the audit account's hash and what the
    # app encrypted with MASTER_KEY.
    saved_env = dump.with_suffix(".env")
    env_file = directory / ".env"
    restoring = dump.exists() and saved_env.exists()
    env_file.write_text(saved_env.read_text() if restoring else envfile.render((directory / ".env.example").read_text()))
    env_file.chmod(0o600)
    jwt_keys(directory)
    tls_files(directory)
    (directory / "backups" / "postgres").mkdir(mode=0o700, parents=True)
    progress(f"{directory}: building {tag}")
    install.build()
    install.up(*[s for s in ("database", "redis") if s in release.services])
    if restoring:
        install.restore_database(dump)
        install.up()
        progress(f"{directory}: restored the seeded baseline {dump.name}")
    else:
        migrate_started = time.monotonic()
        install.alembic("upgrade", "head")
        progress(f"{directory}: alembic upgrade head in {time.monotonic() - migrate_started:.1f}s")
        install.up()
        env = install.env
        counts = seed.seed(install.conninfo(), env["OPENWATCH_AUDIT_USER"],
                           install.password_hash(env["OPENWATCH_AUDIT_PASSWORD"]), seed_size)
        progress(f"{directory}: seeded {sum(counts.values())} rows: {counts}")
        dump.parent.mkdir(parents=True, exist_ok=True)
        partial = dump.with_suffix(".partial")
        install.save_database(partial)
        for stale in DUMPS_DIR.glob(f"{release.tag}-*"):  # baselines of an older seed or module
            if stale.stem != dump.stem:
                stale.unlink()
        saved_env.write_text(env_file.read_text())
        saved_env.chmod(0o600)
        partial.rename(dump)
    # A real installation has a nightly backup; the post-flight audit checks that one exists.
    install.save_database(directory / "backups" / "postgres" / f"openwatch_{time.strftime('%Y%m%d_%H%M%S')}.dump")
    progress(f"{directory}: {tag} healthy in {time.monotonic() - started:.0f}s")
    return install
