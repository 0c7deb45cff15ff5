"""Print every deck of the built book to a PDF handout with headless Chromium (offline).

    python slides/print_handouts.py [--html _build/html] [--out _build/handouts]

The built book is served on 127.0.0.1 (a free port) and each deck is opened with `?print-pdf`,
reveal.js's print layout (one slide per page, 1280 x 720, fragments shown, no speaker notes),
then printed by Chromium's `--print-to-pdf`. Any host other than 127.0.0.1 fails to resolve, so
a handout can never depend on the network. `make handouts` runs this after `make book`.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from build_decks import ROOT, deck_path, toc_chapters

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
LOCAL_HOST = "127.0.0.1"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        """No line per request."""


def chromium() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    sys.exit("no Chromium found: `make browser` installs Debian's chromium")


def print_deck(browser: str, url: str, pdf: Path, profile: str) -> None:
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",  # Chromium refuses to run as root otherwise
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOCAL_HOST}",
        f"--user-data-dir={profile}",
        "--no-pdf-header-footer",
        # Virtual time runs until the page is idle (MathJax typeset, reveal laid out), at most
        # this many ms of it, then prints.
        "--virtual-time-budget=30000",
        "--run-all-compositor-stages-before-draw",
        f"--print-to-pdf={pdf}",
        url,
    ]
    subprocess.run(command, check=True, timeout=180, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    if not pdf.is_file() or pdf.read_bytes()[:5] != b"%PDF-":
        sys.exit(f"Chromium wrote no PDF for {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "handouts")
    args = parser.parse_args()
    decks = [deck_path(chapter) for chapter in toc_chapters()]
    missing = [deck for deck in decks if not (args.html / deck).is_file()]
    if missing:
        sys.exit(f"decks not built: {missing}; run `make book` first")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    handler = functools.partial(_QuietHandler, directory=str(args.html))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    browser = chromium()
    try:
        for deck in decks:
            pdf = (args.out / Path(deck).name).with_suffix("").with_suffix(".pdf")
            with tempfile.TemporaryDirectory(prefix="handout-chromium-") as profile:
                print_deck(browser, f"{base}{deck}?print-pdf", pdf, profile)
            shown = pdf.relative_to(ROOT) if pdf.is_relative_to(ROOT) else pdf
            print(f"handout {shown}: {os.path.getsize(pdf) // 1024} KiB")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
