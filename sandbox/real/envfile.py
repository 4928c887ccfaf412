"""``.env`` for a real installation, from the tag's ``.env.example`` as an operator writes it."""

from __future__ import annotations

import secrets

AUDIT_USER = "audit"
PLACEHOLDER_PREFIX = "your_"
# docker-compose.yml passes these to the backend and worker, but .env.example does not list them: an
# operator who copies .env.example gets empty values and a backend that refuses to start (both >= 32 chars).
UNLISTED = ("MASTER_KEY", "OPENWATCH_ENCRYPTION_KEY")


def render(example: str) -> str:
    """Placeholders (``your_...``) become generated secrets; the unlisted keys and the audit account are added."""
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#") and value.startswith(PLACEHOLDER_PREFIX):
            line = f"{key}={secrets.token_urlsafe(32)}"
        lines.append(line)
    lines += ["", "# Read by docker-compose.yml, not listed in .env.example",
              *(f"{name}={secrets.token_urlsafe(32)}" for name in UNLISTED),
              "", "# Audit account used by the post-flight login check",
              f"OPENWATCH_AUDIT_USER={AUDIT_USER}", f"OPENWATCH_AUDIT_PASSWORD=Audit-{secrets.token_urlsafe(18)}"]
    return "\n".join(lines) + "\n"
