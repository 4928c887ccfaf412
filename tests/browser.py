"""Headless Chromium for looking at reports as a reviewer would (Debian's package, no download): the
first screen at 1280 px, the DOM after the page's scripts ran, and the page printed to PDF."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

APT_GUARDED = Path(__file__).resolve().parents[1] / "sandbox" / "apt-guarded.sh"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
FIRST_SCREEN = (1280, 800)


def installed(command: str, package: str) -> str:
    """``command``, its Debian package installed when missing; a skip with the reason if it cannot be.

    Through the set-up's no-upgrade guard, as every apt install of the project: a plain install of
    chromium here once pulled in udev and with it upgraded systemd, perl and gdk-pixbuf.
    """
    found = shutil.which(command)
    if found is None:
        install = ["bash", str(APT_GUARDED), package]
        done = subprocess.run(install, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:  # stale package lists on a long-lived machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            done = subprocess.run(install, capture_output=True, text=True, timeout=1200)
        found = shutil.which(command)
        if found is None:
            pytest.skip(f"{command} is missing and cannot be installed: {done.stderr.strip()[-200:]}")
    return found


def chromium() -> str:
    return installed("chromium", "chromium")


@dataclass(frozen=True)
class Rendered:
    dom: str  # after the page's scripts ran
    screenshot: Path  # the first screen, FIRST_SCREEN pixels
    seconds: float  # load and paint of the first screen (the screenshot run, browser start included)


def render(page: Path, screenshot: Path) -> Rendered:
    browser = chromium()
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        started = time.monotonic()
        subprocess.run([*common, f"--window-size={FIRST_SCREEN[0]},{FIRST_SCREEN[1]}", "--hide-scrollbars",
                        f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120, check=True)
        seconds = time.monotonic() - started
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                             check=True).stdout
    return Rendered(dom, screenshot, seconds)


def print_pdf(page: Path, pdf: Path) -> list[str]:
    """The page printed as a change ticket would attach it; the text of each PDF page."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                        "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
    text = subprocess.run([installed("pdftotext", "poppler-utils"), "-layout", str(pdf), "-"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def pixels_of(png: Path, colour: tuple[int, int, int]) -> int:
    """How many pixels of a screenshot have exactly ``colour`` (8-bit RGB/RGBA, not interlaced, as
    Chromium writes them)."""
    data = png.read_bytes()
    width, height, depth, kind, _, _, interlaced = struct.unpack(">IIBBBBB", data[16:29])
    assert depth == 8 and kind in (2, 6) and not interlaced, (depth, kind, interlaced)
    channels = 3 if kind == 2 else 4
    chunks, offset = [], 8
    while offset < len(data):
        length, name = struct.unpack(">I4s", data[offset:offset + 8])
        if name == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    raw, stride, previous, count = zlib.decompress(b"".join(chunks)), width * channels, bytearray(width * channels), 0
    target = bytes(colour)
    for row in range(height):
        start = row * (stride + 1)
        line = unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        count += sum(1 for x in range(0, stride, channels) if line[x:x + 3] == target)
        previous = line
    return count


def unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> bytearray:
    """PNG scanline filters (none, sub, up, average, Paeth), undone in place."""
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
    return line


def card_border(tone: str) -> tuple[int, int, int]:
    """The border colour plugins/report.css gives the verdict card of ``tone``."""
    css = (Path(__file__).resolve().parents[1] / "plugins" / "report.css").read_text()
    hex_colour = re.search(rf"\.verdict--{tone} {{ border-color: #([0-9a-f]{{6}});", css).group(1)
    return tuple(int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))


def look_at(page: Path, screenshot: Path, tone: str) -> tuple[Rendered, list[str]]:
    """The page at 1280 px with its verdict card on the first screen (its border drawn there, in the
    colour of ``tone``), and printed to readable PDF pages with the verdict on the first."""
    rendered = render(page, screenshot)
    border = pixels_of(screenshot, card_border(tone))
    # A 3 px border around a card at least 1000 x 150 px: about 7,000 pixels when it is all on screen.
    assert border > 5000, f"{border} pixels of the {tone} card's border on the first screen"
    pages = print_pdf(page, screenshot.with_suffix(".pdf"))
    assert pages and all(text.strip() for text in pages), [len(text) for text in pages]
    return rendered, pages
