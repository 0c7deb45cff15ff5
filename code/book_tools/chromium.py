"""Headless Chromium for the book's printers: a local web server for a built folder, a browser
that can reach nothing but that server, waiting until a page has settled, and printing it.

Used by book_tools.pdf (the whole book as one PDF), book_tools.handouts (one PDF per deck) and
tests/test_browser.py. Chromium and chromedriver are Debian's (`make browser` installs
them); selenium drives them and Chromium's DevTools command `Page.printToPDF` prints, so a script
waits for exactly what it needs (MathJax typeset, images decoded, reveal.js laid out) instead of
a fixed time.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOCAL_HOST = "127.0.0.1"

# Every host but the local server fails to resolve, so nothing printed can depend on the network.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # Chromium refuses to run as root otherwise
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOCAL_HOST}",
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        """No line per request."""


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serves `directory` on 127.0.0.1 (any free port); yields its base URL, ending in '/'."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def available() -> bool:
    """Whether Debian's Chromium and chromedriver are installed (`make browser` installs them)."""
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 900, timeout: float = 120.0, logs: bool = False):
    """Yields a selenium Chrome driver for Debian's headless Chromium, with a throw-away profile.

    With `logs`, the driver keeps the console and the network log (`driver.get_log("browser")`,
    `driver.get_log("performance")`): a request to another host fails to resolve, yet is logged.
    """
    if not available():
        sys.exit(f"needs {CHROMIUM} and {CHROMEDRIVER}: `make browser` installs them from Debian")
    from selenium import webdriver

    profile = tempfile.mkdtemp(prefix="headless-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Resolves once the page has settled: web fonts loaded, every image decoded (or failed) and,
# where the page loads MathJax, its first typesetting pass finished; then two animation frames,
# so that the layout those changed has been painted.
_SETTLE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
const decoded = Promise.all(images.map(img => img.decode().catch(() => null)));
const hasMathJax = Array.from(document.scripts).some(s => /mathjax/i.test(s.src));
const typeset = new Promise(resolve => {
  const start = Date.now();
  (function poll() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(resolve, resolve); }
    else if (Date.now() - start > 30000) { resolve(); }
    else { setTimeout(poll, 50); }
  })();
});
Promise.all([document.fonts.ready, decoded, hasMathJax ? typeset : null])
  .then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(null))));
"""


def settle(driver) -> None:
    """Waits until the current page has settled (fonts, images, MathJax; see _SETTLE)."""
    driver.execute_async_script(_SETTLE)


def wait_for(driver, condition: str, what: str, timeout_ms: int = 60000) -> None:
    """Polls the JavaScript expression `condition` until it is true; exits naming `what` if not."""
    ok = driver.execute_async_script(
        "const [condition, limit, done] = arguments; const start = Date.now();"
        "(function poll() {"
        "  if (eval(condition)) { done(true); }"
        "  else if (Date.now() - start > limit) { done(false); }"
        "  else { setTimeout(poll, 100); }"
        "})();",
        condition,
        timeout_ms,
    )
    if not ok:
        sys.exit(f"{driver.current_url}: gave up after {timeout_ms / 1000:.0f} s waiting for {what}")


def print_pdf(driver, **options) -> bytes:
    """The current page printed by Chromium (DevTools `Page.printToPDF`, `options` as there)."""
    result = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True, **options})
    data = base64.b64decode(result["data"])
    if data[:5] != b"%PDF-":
        sys.exit(f"{driver.current_url}: Chromium returned no PDF")
    return data
