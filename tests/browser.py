"""Headless Chromium for looking at reports as a reviewer would (Debian's package, no download)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

APT_GUARDED = Path(__file__).resolve().parents[1] / "sandbox" / "apt-guarded.sh"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    """Debian's chromium, installed when missing; a skip with the reason if it cannot be.

    Through the set-up's no-upgrade guard, as every apt install of the project: a plain install here
    once pulled in udev and with it upgraded systemd, perl and gdk-pixbuf on the test machine.
    """
    found = shutil.which("chromium")
    if found is None:
        install = ["bash", str(APT_GUARDED), "chromium"]
        installed = subprocess.run(install, capture_output=True, text=True, timeout=1200)
        if installed.returncode != 0:  # stale package lists on a long-lived machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            installed = subprocess.run(install, capture_output=True, text=True, timeout=1200)
        found = shutil.which("chromium")
        if found is None:
            pytest.skip(f"chromium is missing and cannot be installed: {installed.stderr.strip()[-200:]}")
    return found


def render(page: Path, screenshot: Path) -> str:
    """The page's DOM after its scripts ran; a full-page screenshot is written beside."""
    browser = chromium()
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        subprocess.run([*common, "--window-size=1400,2200", f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        return subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                              check=True).stdout
