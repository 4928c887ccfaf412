"""Headless Chromium for looking at reports as a reviewer would (Debian's package, no download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    """Debian's chromium, installed when missing; a skip with the reason if it cannot be."""
    found = shutil.which("chromium")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        installed = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
        if installed.returncode != 0:  # stale package lists on a long-lived machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
            installed = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
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
