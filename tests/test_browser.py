"""The built book in a real browser: headless Debian Chromium driven by Selenium.

Every page is served from 127.0.0.1 and must load without console errors, fetch nothing from any
other host, show all its images, and have its math typeset by the book's own MathJax.
`make test` installs Chromium and chromedriver from Debian when they are missing and builds the
book first; elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOCAL_HOST = "127.0.0.1"
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}


def built_pages() -> list[str]:
    """Every page of the built book as a path relative to its root, e.g. 'chapters/x.html'."""
    if not HTML.is_dir():
        return []
    pages = (p.relative_to(HTML) for p in HTML.rglob("*.html"))
    return sorted(p.as_posix() for p in pages if "_static" not in p.parts)


PAGES = built_pages()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        """Keep the test output free of one line per request."""


@pytest.fixture(scope="module")
def base_url():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)  # port 0: any free one
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    profile = tempfile.mkdtemp(prefix="book-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        # Any other host fails to resolve: the test never waits on the network, and such a
        # request still shows in the performance log, where the test looks for it.
        f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOCAL_HOST}",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    driver.get("about:blank")  # the browser's own start-up requests land before the first page
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _requested_urls(performance_log: list[dict]) -> list[str]:
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


# Resolves once the page has settled: every image decoded (or failed) and, where the page
# loads MathJax, its first typesetting pass finished.
_SETTLE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = "eager"; });
const decoded = Promise.all(images.map(img => img.decode().catch(() => null)));
const typeset = new Promise(resolve => {
  const start = Date.now();
  (function poll() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(resolve, resolve); }
    else if (Date.now() - start > 15000) { resolve(); }
    else { setTimeout(poll, 50); }
  })();
});
const hasMathJax = Array.from(document.scripts).some(s => /mathjax/i.test(s.src));
Promise.all([decoded, hasMathJax ? typeset : null]).then(() => done(null));
"""


@pytest.fixture(params=PAGES or ["<not built>"])
def page(request, browser, base_url):
    """Loads one page with empty logs and returns what the checks need."""
    if not PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get_log("browser")  # drain what earlier pages left
    browser.get_log("performance")
    browser.get(base_url + request.param)
    if "http-equiv=\"refresh\"" in (HTML / request.param).read_text(encoding="utf-8").lower():
        # A redirect page (index.html -> intro.html): check the page it lands on, once there.
        WebDriverWait(browser, 30).until(lambda d: not d.current_url.endswith(request.param))
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
    browser.execute_async_script(_SETTLE)
    return {
        "name": request.param,
        "driver": browser,
        "console": browser.get_log("browser"),
        "requests": _requested_urls(browser.get_log("performance")),
    }


def test_page_loads_without_console_errors(page):
    severe = [entry["message"] for entry in page["console"] if entry["level"] == "SEVERE"]
    assert severe == [], f"{page['name']}: {severe}"
    assert page["driver"].execute_script("return document.readyState") == "complete"


def test_page_requests_nothing_outside_the_book(page):
    assert page["requests"], f"{page['name']}: the performance log recorded no request"
    # Only network schemes count; data:, blob: and chrome:// never leave the machine.
    foreign = [
        url
        for url in page["requests"]
        if urlsplit(url).scheme in NETWORK_SCHEMES and urlsplit(url).hostname != LOCAL_HOST
    ]
    assert foreign == [], f"{page['name']} requested {foreign}"


def test_page_images_are_displayed(page):
    broken = page["driver"].execute_script(
        "return Array.from(document.images)"
        ".filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src);"
    )
    assert broken == [], f"{page['name']}: images that did not load: {broken}"


def test_page_math_is_typeset_by_mathjax(page):
    driver = page["driver"]
    math_nodes = driver.execute_script("return document.querySelectorAll('.math').length;")
    if math_nodes == 0:
        pytest.skip(f"{page['name']} has no math")
    untypeset = driver.execute_script(
        "return Array.from(document.querySelectorAll('.math'))"
        ".filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 80));"
    )
    assert untypeset == [], f"{page['name']}: math left as source: {untypeset}"
    assert driver.execute_script("return document.querySelectorAll('mjx-container').length;") > 0
    visible = driver.execute_script("return document.body.innerText;")
    assert "$$" not in visible, f"{page['name']}: raw $$ in the visible text"
