"""Build-time patches of the real Dockerfiles: only what cannot be had offline changes.

Each patch replaces exact lines of the real file and fails, naming the line, when that line is no
longer there (a new upstream Dockerfile must be looked at, never patched blindly). Everything else
(users, paths, entrypoint, labels, healthcheck, the pip install of requirements.txt) stays as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sandbox import images
from sandbox.images import BASE_IMAGE

NGINX_IMAGE = next(image.tag for image in images.INFRA_IMAGES if image.folder == "nginx")
NODE_IMAGE = images.NODE_IMAGE.tag
HOST_CA_SECRET = "host_ca"
KENSA_CONTEXT = "kensa_standin"  # a named build context (docker-compose.override.yml's additional_contexts)
KENSA_STANDIN = Path(__file__).resolve().parent / "kensa_standin"
KENSA_MOUNT = "/tmp/kensa-standin"
VENV = "/opt/venv"


class PatchError(ValueError):
    """A real Dockerfile no longer has a line a patch replaces."""


@dataclass(frozen=True)
class Replacement:
    why: str
    pattern: str  # a regex over the whole file (re.MULTILINE | re.DOTALL where it spans lines)
    replacement: str


# UBI9's dnf packages and their Debian bookworm names (python3.12 -> Debian's 3.11 in a venv: every
# backend file of the three tags parses and imports on 3.11; libmagic1 is in UBI's base, not in minbase).
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-dev", "openscap-scanner", "openssh-client", "openssl",
                   "libssl-dev", "gcc", "libpq-dev", "curl", "git", "libmagic1", "ca-certificates")

BACKEND: tuple[Replacement, ...] = (
    Replacement("no registry: the offline Debian base instead of UBI9",
                r"^FROM registry\.access\.redhat\.com/ubi9/ubi:\S+$", f"FROM {BASE_IMAGE}"),
    Replacement("no dnf repositories: the same tools from Debian, Python in a venv (PEP 668)",
                r"^RUN dnf update -y && \\\n(?:.*\\\n)*?\s*rm -rf /var/cache/dnf$",
                "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                f"--no-install-recommends {' '.join(DEBIAN_PACKAGES)} && rm -rf /var/lib/apt/lists/* && \\\n"
                f"    python3 -m venv {VENV} && ln -s python3 {VENV}/bin/python3.12\n"
                f"ENV PATH={VENV}/bin:$PATH"),
    Replacement("python3.12 is the venv's python (on PATH); /usr/bin/python3 stays Debian's",
                r"^RUN rm -f /usr/bin/python3 && \\\n\s*ln -s /usr/bin/python3\.12 /usr/bin/python3 && \\\n"
                r"\s*ln -sf /usr/bin/pip3\.12 /usr/bin/pip3$",
                "RUN python3.12 --version"),
    Replacement("pip trusts the host's CA bundle (a BuildKit secret, never in a layer); kensa comes from "
                "GitHub, which is unreachable, so its line installs the project's offline stand-in instead "
                "(sandbox/real/kensa_standin: runner.paths and two rules, what the backend's Kensa health "
                "and rule reference read), mounted from a named build context",
                r"^RUN python3\.12 -m pip install --no-cache-dir --upgrade pip && \\\n"
                r"\s*python3\.12 -m pip install --no-cache-dir -r requirements\.txt$",
                f"RUN --mount=type=secret,id={HOST_CA_SECRET} "
                f"--mount=type=bind,from={KENSA_CONTEXT},target={KENSA_MOUNT},rw "
                f"export PIP_CERT=/run/secrets/{HOST_CA_SECRET} && \\\n"
                f"    sed -i 's|^kensa @ git+.*|kensa @ file://{KENSA_MOUNT}|' requirements.txt && \\\n"
                "    python3.12 -m pip install --no-cache-dir --upgrade pip && \\\n"
                "    python3.12 -m pip install --no-cache-dir -r requirements.txt"),
)

FRONTEND: tuple[Replacement, ...] = (
    Replacement("no registry: Node 20 from Debian (trixie's nodejs, in the stand-in node image)",
                r"^FROM node:20\S*-alpine AS builder$", f"FROM {NODE_IMAGE} AS builder"),
    Replacement("npm 11.6.0 comes from the npm registry like the rest (kept), with the host's CA bundle",
                r"^RUN npm install -g npm@(\S+)$",
                f"RUN --mount=type=secret,id={HOST_CA_SECRET} NPM_CONFIG_CAFILE=/run/secrets/{HOST_CA_SECRET} "
                r"npm install -g npm@\1"),
    Replacement("npm install with the host's CA bundle (a BuildKit secret)",
                r"^RUN npm install$",
                f"RUN --mount=type=secret,id={HOST_CA_SECRET} NPM_CONFIG_CAFILE=/run/secrets/{HOST_CA_SECRET} "
                "npm install"),
    Replacement("no registry: the Debian nginx stand-in instead of nginx:alpine",
                r"^FROM nginx:\S+-alpine$", f"FROM {NGINX_IMAGE}"),
    Replacement("apk -> apt", r"^RUN apk add --no-cache openssl$",
                "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                "--no-install-recommends openssl && rm -rf /var/lib/apt/lists/*"),
    Replacement("busybox addgroup/adduser -> Debian's groupadd/useradd, same ids; Debian's nginx keeps its "
                "temp files in /var/lib/nginx where Alpine's has /var/cache/nginx (which the real file chowns)",
                r"^RUN addgroup -g (\d+) (\w+) && \\\n\s*adduser -D -u (\d+) -G \w+ \w+$",
                r"RUN groupadd -g \1 \2 && useradd -M -u \3 -g \2 \2 && mkdir -p /var/cache/nginx && "
                r"rm -rf /var/lib/nginx && ln -s /var/cache/nginx /var/lib/nginx"),
)


def apply(text: str, replacements: tuple[Replacement, ...], name: str) -> str:
    for replacement in replacements:
        pattern = re.compile(replacement.pattern, re.MULTILINE)
        text, count = pattern.subn(lambda match: match.expand(replacement.replacement), text, count=1)
        if count != 1:
            raise PatchError(f"{name}: no line matches {replacement.pattern!r} ({replacement.why}); "
                             "the real Dockerfile changed: review sandbox/real/patches.py")
    return text


def backend_dockerfile(text: str) -> str:
    return apply(text, BACKEND, "docker/Dockerfile.backend")


def frontend_dockerfile(text: str) -> str:
    return apply(text, FRONTEND, "docker/Dockerfile.frontend")
