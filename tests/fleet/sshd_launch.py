"""``python -m tests.fleet.sshd_launch STATE_DIR SSHD ARGS...``: exec a simulated host's sshd.

Run inside the host's network namespace and a mount namespace of its own (``unshare --mount``):
there it lays over ``/etc/passwd`` a copy with the ``sshd`` privilege-separation user (this
machine has no openssh-server package installed) and over ``/etc/shadow`` one where root's locked
password field reads ``*`` (key login only; sshd refuses a locked account), so the machine's own
files are never changed. The sessions the sshd starts inherit these views.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PRIVSEP_LINE = "sshd:x:65534:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin\n"


def unlocked_shadow(text: str) -> str:
    lines = []
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) > 1:
            fields[1] = "*"
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def lay_over(original: Path, replacement: Path, text: str) -> None:
    replacement.write_text(text)
    replacement.chmod(original.stat().st_mode & 0o777)
    subprocess.run(["mount", "--bind", str(replacement), str(original)], check=True)


def main(argv: list[str]) -> None:
    state, sshd = Path(argv[0]), argv[1]
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    passwd = Path("/etc/passwd").read_text()
    if not any(line.startswith("sshd:") for line in passwd.splitlines()):
        lay_over(Path("/etc/passwd"), state / "passwd", passwd + PRIVSEP_LINE)
    lay_over(Path("/etc/shadow"), state / "shadow", unlocked_shadow(Path("/etc/shadow").read_text()))
    os.execv(sshd, [sshd, *argv[2:]])


if __name__ == "__main__":
    main(sys.argv[1:])
