"""The built book and its slide decks in a real browser: headless Debian Chromium via Selenium.

Every page and every reveal.js deck is served from 127.0.0.1 and must load without console
errors, fetch nothing from any other host, show all its images, and have its math typeset by the
book's own MathJax. Each deck (one per chapter of _toc.yml) must have at least 8 slides, reach
its last slide, and carry speaker notes; each chapter page links to its deck and its notebook.
`make test` installs Chromium and chromedriver from Debian when they are missing and builds the
book first; elsewhere these tests are skipped with the reason.

Screenshots: with BOOK_SCREENSHOTS=<folder> set, the intro page, the first chapter page and a
slide of each deck are saved there as PNG (1280 px wide), to look at by eye.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from build_decks import deck_path, toc_chapters

pytestmark = pytest.mark.slow  # starts headless Chromium

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
CHAPTERS = toc_chapters()
DECKS = [deck_path(chapter) for chapter in CHAPTERS]
SCREENSHOTS = os.environ.get("BOOK_SCREENSHOTS")
MIN_SLIDES = 8


def is_deck(name: str) -> bool:
    return name.startswith("slides/") and name.endswith(".slides.html")


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


# Resolves once reveal.js has laid the deck out.
_REVEAL_READY = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  if (window.Reveal && Reveal.isReady && Reveal.isReady()) { done(true); }
  else if (Date.now() - start > 15000) { done(false); }
  else { setTimeout(poll, 50); }
})();
"""


def _screenshot(driver, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / name))


# What is left of a formula in a deck's slide text (code, rendered math and scripts removed)
# was never typeset.
_DECK_PROSE = """
const slides = document.querySelector('.reveal .slides').cloneNode(true);
slides.querySelectorAll('pre, code, mjx-container, script, style').forEach(el => el.remove());
return slides.textContent;
"""

# Everything the page checks need, read from the page in one go once it has settled.
_SNAPSHOT = """
const q = sel => document.querySelectorAll(sel);
return {
  readyState: document.readyState,
  brokenImages: Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
  mathNodes: q('.math').length,
  untypeset: Array.from(q('.math'))
    .filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 80)),
  mjxContainers: q('mjx-container').length,
  visibleText: document.body.innerText,
};
"""


# Module scope: pytest runs every check of one page before loading the next, so each page and
# deck is loaded once; the checks read the snapshot taken here.
@pytest.fixture(scope="module", params=PAGES or ["<not built>"])
def page(request, browser, base_url):
    """Loads one page (or deck) with empty logs and returns what the checks need."""
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
    deck = is_deck(request.param)
    if deck:
        assert browser.execute_async_script(_REVEAL_READY), f"{request.param}: reveal.js not ready"
    elif SCREENSHOTS and request.param in ("intro.html", f"{CHAPTERS[0]}.html" if CHAPTERS else ""):
        _screenshot(browser, request.param.replace("/", "_") + ".png")
    snapshot = browser.execute_script(_SNAPSHOT)
    return {
        "name": request.param,
        "deck": deck,
        "deck_prose": browser.execute_script(_DECK_PROSE) if deck else "",
        "console": browser.get_log("browser"),
        "requests": _requested_urls(browser.get_log("performance")),
        **snapshot,
    }


def test_page_loads_without_console_errors(page):
    severe = [entry["message"] for entry in page["console"] if entry["level"] == "SEVERE"]
    assert severe == [], f"{page['name']}: {severe}"
    assert page["readyState"] == "complete"


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
    broken = page["brokenImages"]
    assert broken == [], f"{page['name']}: images that did not load: {broken}"


def test_page_math_is_typeset_by_mathjax(page):
    if page["deck"]:
        leftover = re.findall(
            r"\$\$|\\(?:frac|sqrt|mathrm|top|sum|left|right)\b", page["deck_prose"]
        )
        assert leftover == [], f"{page['name']}: math left as source: {leftover[:5]}"
        source = (HTML / page["name"]).read_text(encoding="utf-8")
        if "$" not in source.split('<div class="slides">', 1)[-1]:
            pytest.skip(f"{page['name']} has no math")
        assert page["mjxContainers"] > 0, f"{page['name']}: no math typeset"
        return
    if page["mathNodes"] == 0:
        pytest.skip(f"{page['name']} has no math")
    assert page["untypeset"] == [], f"{page['name']}: math left as source: {page['untypeset']}"
    assert page["mjxContainers"] > 0
    assert "$$" not in page["visibleText"], f"{page['name']}: raw $$ in the visible text"


# ---------------------------------------------------------------- decks and their links


@pytest.fixture(params=DECKS or ["<no chapter>"])
def deck(request, browser, base_url):
    """Loads one chapter's deck in a 1280 x 720 window, reveal.js ready."""
    if not DECKS:
        pytest.skip("_toc.yml lists no chapter")
    if not (HTML / request.param).is_file():
        pytest.fail(f"{request.param} was not built (make book builds the decks)")
    browser.set_window_size(1280, 720)
    try:
        browser.get(base_url + request.param)
        browser.execute_async_script(_SETTLE)
        assert browser.execute_async_script(_REVEAL_READY), f"{request.param}: reveal.js not ready"
        yield {"name": request.param, "driver": browser}
    finally:
        browser.set_window_size(1280, 900)


def test_deck_has_slides_reaches_its_last_and_has_speaker_notes(deck):
    driver, name = deck["driver"], deck["name"]
    total = driver.execute_script("return Reveal.getTotalSlides();")
    assert total >= MIN_SLIDES, f"{name}: {total} slides, expected at least {MIN_SLIDES}"
    assert driver.execute_script("return Reveal.isFirstSlide();")
    # The first slide worth a look: the first one with a figure (else the second slide).
    indices = driver.execute_script(
        "const s = Array.from(document.querySelectorAll('.reveal .slides section'))"
        "  .find(el => !el.querySelector('section') && el.querySelector('img'));"
        "return s ? Reveal.getIndices(s) : {h: 1, v: 0};"
    )
    driver.execute_script("Reveal.slide(arguments[0].h, arguments[0].v);", indices)
    _screenshot(driver, name.replace("/", "_").replace(".html", ".png"))
    # Step through every slide and fragment with Reveal.next(), as a presenter would.
    steps = driver.execute_script(
        "Reveal.slide(0, 0); let n = 0;"
        "while (!(Reveal.isLastSlide() && !Reveal.availableFragments().next) && n < 2000)"
        "  { Reveal.next(); n++; }"
        "return n;"
    )
    assert driver.execute_script("return Reveal.isLastSlide();"), f"{name}: never reached the end"
    assert steps >= total - 1, f"{name}: reached the end in {steps} steps, has {total} slides"
    notes = driver.execute_script(
        "return Array.from(document.querySelectorAll('aside.notes'))"
        ".filter(el => el.textContent.trim()).length;"
    )
    assert notes >= 1, f"{name}: no speaker notes (aside.notes)"
    # Nothing on a slide is cut off sideways at 1280 x 720 (tall slides scroll).
    wide = driver.execute_script(
        "return Array.from(document.querySelectorAll('.reveal .slides section img'))"
        ".filter(img => img.naturalWidth > 0 && img.getBoundingClientRect().width > 1280 + 1)"
        ".length;"
    )
    assert wide == 0, f"{name}: {wide} figures wider than the slide"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_links_to_its_deck_and_notebook(chapter, browser, base_url):
    if not PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    browser.get(base_url + f"{chapter}.html")
    hrefs = browser.execute_script(
        "return Array.from(document.querySelectorAll('a'))"
        ".map(a => [a.textContent.trim(), a.href]);"
    )
    deck_url = base_url + deck_path(chapter)
    assert ["Slides for this chapter", deck_url] in hrefs, f"{chapter}.html: no link to {deck_url}"
    notebook_url = base_url + f"_sources/{chapter}.ipynb"
    assert notebook_url in [href for _, href in hrefs], f"{chapter}.html: no link to its .ipynb"


# ---------------------------------------------------------------- chapter 4's attention explorer

EXPLORER_PAGES = [name for name in PAGES if "attention-explorer" in (HTML / name).read_text(encoding="utf-8")]

_EXPLORER_CHOOSE = """
var [sentence, layer, head, query, key, done] = arguments;
var root = document.querySelector('.attention-explorer');
var deadline = Date.now() + 30000;
(function wait() {
  if (root.dataset.ready !== 'true') {
    if (Date.now() > deadline) return done({error: root.innerText});
    return setTimeout(wait, 100);
  }
  if (window.Reveal) {  // bring the explorer's slide on screen, as a presenter would
    var slide = root.closest('section');
    var indices = window.Reveal.getIndices(slide);
    window.Reveal.slide(indices.h, indices.v);
  }
  var menus = {};
  root.querySelectorAll('select').forEach(function (s) { menus[s.dataset.role] = s; });
  menus.sentence.value = String(sentence); menus.layer.value = String(layer); menus.head.value = String(head);
  menus.head.dispatchEvent(new Event('change'));
  var plot = root.querySelector('.attention-explorer-plot');
  Plotly.Fx.hover(plot, {xval: key, yval: query});
  setTimeout(function () {
    var label = plot.querySelector('.hovertext');
    done({row: plot.data[0].z[query], hover: label ? label.textContent : null,
          title: plot.layout.title.text, kib: root.outerHTML.length / 1024});
  }, 300);
})();
"""


@pytest.fixture(scope="module")
def minilm():
    from transformer_course import pretrained

    return pretrained.load_minilm(device="cpu")


def test_the_explorer_is_in_the_chapter_and_its_deck():
    if not PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    expected = ["chapters/04_self_attention.html", "slides/04_self_attention.slides.html"]
    assert sorted(EXPLORER_PAGES) == expected


@pytest.mark.parametrize("name", EXPLORER_PAGES or ["<not built>"])
@pytest.mark.parametrize("head", [1, "all"])
def test_explorer_shows_the_weights_the_package_computes(name, head, browser, base_url, minilm, capsys):
    if not EXPLORER_PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    import torch

    tokenizer, model = minilm
    browser.get(base_url + name)
    data = browser.execute_script(
        "return JSON.parse(document.querySelector('.attention-explorer-data').textContent)")
    sentence, layer = 1, 3  # the notes' "... too tired" sentence, the fourth layer
    tokens = data["sentences"][sentence]["tokens"]
    query, key = tokens.index("it"), tokens.index("animal")
    shown = browser.execute_async_script(_EXPLORER_CHOOSE, sentence, layer, head, query, key)
    assert "error" not in shown, shown
    ids = torch.tensor([tokenizer.encode(data["sentences"][sentence]["name"])])
    assert tokenizer.convert_ids_to_tokens(ids[0].tolist()) == tokens
    with torch.no_grad():
        _, weights = model(ids, return_attention=True)  # L tensors (1, H, T, T)
    per_head = weights[layer][0, :, query]  # (H, T): where "it" looks, head by head
    expected = per_head.mean(0) if head == "all" else per_head[head]
    row = torch.tensor(shown["row"], dtype=torch.float64)
    assert torch.allclose(row, expected.double(), atol=1e-6, rtol=0), (row - expected).abs().max()
    assert f"from it to animal: {expected[key].item():.4f}" in shown["hover"]
    assert shown["title"].startswith(f"layer {layer + 1}, ")
    assert shown["kib"] < 1024, f"the explorer weighs {shown['kib']:.0f} KiB"
    with capsys.disabled():
        print(f"\n{name}: the attention explorer weighs {shown['kib']:.0f} KiB (data and script)")


def test_explorer_finds_plotly_where_jupyterlab_serves_the_repository(browser, tmp_path):
    # JupyterLab started by `make lab` at the repository's root serves its files under /files/;
    # an output there has no ../_static/ next to it, so the view falls back to that path.
    import torch

    from transformer_course.explorer import AttentionExplorer

    plotly = ROOT / "_assets" / "plotly" / "plotly.min.js"
    if not plotly.is_file():
        pytest.skip("plotly.js is not in _assets/plotly (run make)")
    (tmp_path / "files" / "_assets" / "plotly").mkdir(parents=True)
    shutil.copy(plotly, tmp_path / "files" / "_assets" / "plotly" / "plotly.min.js")
    weights = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    view = AttentionExplorer([["the", "cat", "sat", "."]], [weights])
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "notebook.html").write_text(f"<html><body>{view._repr_html_()}</body></html>")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://{LOCAL_HOST}:{server.server_address[1]}/lab/notebook.html")
        shown = browser.execute_async_script(_EXPLORER_CHOOSE, 0, 1, 2, 1, 0)
    finally:
        server.shutdown()
        server.server_close()
    assert "error" not in shown, shown
    row = torch.tensor(shown["row"], dtype=torch.float64)
    assert torch.allclose(row, weights[1, 2, 1].double(), atol=1e-6)  # layer 2, head 3, query "cat"
