"""The built book and its slide decks in a real browser: headless Debian Chromium via Selenium.

Every page and every reveal.js deck is served from 127.0.0.1 and must load without console
errors, fetch nothing from any other host, show all its images, and have its math typeset by the
book's own MathJax. Each deck (one per chapter of _toc.yml) must have at least 8 slides, reach
its last slide, and carry speaker notes; each chapter page links to its deck and its notebook.
`make test` installs Chromium and chromedriver from Debian when they are missing and builds the
book first; elsewhere these tests are skipped with the reason.

Accessibility: axe-core (node_modules/axe-core, pinned in package-lock.json, injected from the
file) checks every page, every deck as presented and every deck in its print layout (?print-pdf,
where all slides are laid out at once); a "serious" or "critical" violation fails, "moderate" and
"minor" ones are listed at the end of the run (tests/conftest.py). Keyboard: real key presses
(WebDriver actions) move through a book page from its skip link, open folded code, step through a
deck and change the attention explorer's menus.

Screenshots: with BOOK_SCREENSHOTS=<folder> set, the intro page, the first chapter page and a
slide of each deck are saved there as PNG (1280 px wide), to look at by eye.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import record_accessibility_findings

from book_tools import chromium  # the local server and Chromium the printers use too
from book_tools.decks import deck_path
from book_tools.toc import toc_chapters

pytestmark = pytest.mark.slow  # starts headless Chromium

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
LOCAL_HOST = chromium.LOCAL_HOST
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
# axe-core, read from the installed npm package and injected into the page (never from a URL).
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = {"serious", "critical"}  # "moderate" and "minor" are listed, not failed


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


@pytest.fixture(scope="module")
def base_url():
    with chromium.serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not chromium.available():
        pytest.skip(f"needs {chromium.CHROMIUM} and {chromium.CHROMEDRIVER}"
                    " (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium.webdriver")
    # The console and network logs are kept: the tests look there for errors and for requests to
    # another host (which fail to resolve, but are logged).
    with chromium.browser(timeout=60, logs=True) as driver:
        driver.get("about:blank")  # the browser's own start-up requests land before the first page
        yield driver


def _requested_urls(performance_log: list[dict]) -> list[str]:
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


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


# axe-core's verdict on the page as it stands: the violations only, each with the CSS selectors of
# the elements at fault. An error inside axe comes back as a violation, so it fails the test.
_AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  result => done(result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(node => node.target.join(' ')),
  }))),
  error => done([{id: 'axe-error', impact: 'critical', help: String(error), targets: []}]));
"""


@functools.cache
def _axe_source() -> str | None:
    return AXE.read_text(encoding="utf-8") if AXE.is_file() else None


def accessibility_violations(driver) -> list[dict]:
    """axe-core's violations on the loaded page (axe.min.js injected from node_modules)."""
    if _axe_source() is None:
        return [{"id": "axe-missing", "impact": "critical", "targets": [],
                 "help": f"{AXE} is missing: run `npm ci` (make does)"}]
    if not driver.execute_script("return !!window.axe;"):
        driver.execute_script(_axe_source())
    return driver.execute_async_script(_AXE_RUN)


def check_accessibility(name: str, violations: list[dict], config: pytest.Config) -> None:
    """Fails on serious or critical violations; hands the others to the run's summary."""
    record_accessibility_findings(config, name, [v for v in violations if v["impact"] not in FAILING_IMPACTS])
    failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
    described = "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']}, at {', '.join(v['targets'][:3])}"
        + (f" and {len(v['targets']) - 3} more" if len(v["targets"]) > 3 else "")
        for v in failing
    )
    assert not failing, f"{name}: axe-core found {described}"


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
    chromium.settle(browser)
    deck = is_deck(request.param)
    if deck:
        assert browser.execute_async_script(_REVEAL_READY), f"{request.param}: reveal.js not ready"
    elif SCREENSHOTS and request.param in ("intro.html", f"{CHAPTERS[0]}.html" if CHAPTERS else ""):
        _screenshot(browser, request.param.replace("/", "_") + ".png")
    snapshot = browser.execute_script(_SNAPSHOT)
    loaded = {
        "name": request.param,
        "deck": deck,
        "deck_prose": browser.execute_script(_DECK_PROSE) if deck else "",
        "console": browser.get_log("browser"),
        "requests": _requested_urls(browser.get_log("performance")),
        **snapshot,
    }
    # Last, on the settled page, and after the logs were read: the checker's own script is not
    # the page's.
    loaded["accessibility"] = accessibility_violations(browser)
    return loaded


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


def test_page_has_no_serious_accessibility_violation(page, request):
    # A deck here is as presented: the current slide, the controls, the progress bar, the number.
    check_accessibility(page["name"], page["accessibility"], request.config)


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
        chromium.settle(browser)
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


# Resolves with the number of printed pages once reveal.js has laid the deck out for print
# (?print-pdf: each slide in its own .pdf-page, all of them in the document at once).
_PRINT_READY = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const pages = document.querySelectorAll('.reveal .slides .pdf-page').length;
  if (pages && window.Reveal && Reveal.isReady()) { done(pages); }
  else if (Date.now() - start > 30000) { done(0); }
  else { setTimeout(poll, 50); }
})();
"""


@pytest.fixture(params=DECKS or ["<no chapter>"])
def print_view(request, browser, base_url):
    """One deck in reveal.js's print layout, every slide on the page, its math typeset."""
    if not DECKS:
        pytest.skip("_toc.yml lists no chapter")
    if not (HTML / request.param).is_file():
        pytest.fail(f"{request.param} was not built (make book builds the decks)")
    browser.get(base_url + request.param + "?print-pdf")
    pages = browser.execute_async_script(_PRINT_READY)
    assert pages > 0, f"{request.param}?print-pdf: reveal.js laid out no page"
    chromium.settle(browser)  # images decoded, MathJax's typesetting done
    return {"name": request.param + "?print-pdf", "pages": pages, "driver": browser}


def test_deck_print_view_has_no_serious_accessibility_violation(print_view, request):
    # The presented deck shows axe one slide; the print layout shows it all of them.
    violations = accessibility_violations(print_view["driver"])
    check_accessibility(print_view["name"], violations, request.config)


# ---------------------------------------------------------------- the keyboard alone

MAX_TABS = 40  # Tab presses allowed to reach a control before a test gives up


def _press(driver, *keys) -> None:
    """Real key presses (WebDriver actions) to whatever has the focus, as a keyboard user's."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


# The focused element, and whether it shows that it has the focus: a computed outline or box
# shadow (the theme's :focus-visible styles), on screen.
_FOCUSED = """
const el = document.activeElement;
const style = getComputedStyle(el);
const box = el.getBoundingClientRect();
return {
  tag: el.tagName.toLowerCase(),
  text: (el.innerText || el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60),
  role: el.dataset ? el.dataset.role || null : null,
  inMain: !!el.closest('main'),
  inArticle: !!el.closest('article'),
  ring: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none',
  onScreen: box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < innerHeight,
};
"""


def _tab_until(driver, wanted, what: str) -> dict:
    """Presses Tab until the focused element satisfies ``wanted``; fails after MAX_TABS presses."""
    from selenium.webdriver.common.keys import Keys

    seen = []
    for _ in range(MAX_TABS):
        _press(driver, Keys.TAB)
        focused = driver.execute_script(_FOCUSED)
        if wanted(focused):
            return focused
        seen.append(f"{focused['tag']} {focused['text'][:20]!r}")
    raise AssertionError(f"{MAX_TABS} Tab presses never reached {what}; they went through {seen}")


def _has_details(name: str) -> bool:
    return "<details" in (HTML / name).read_text(encoding="utf-8")


def test_book_page_works_with_the_keyboard_alone(browser, base_url):
    if not PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    from selenium.webdriver.common.keys import Keys

    folded = [name for name in PAGES if not is_deck(name) and _has_details(name)]
    assert folded, "no page of the book has a folded <details> (a hidden code cell) to open"
    name = folded[0]
    browser.get(base_url + name)
    chromium.settle(browser)
    # The first Tab reaches the theme's skip link, which slides into view when focused (0.15 s).
    _press(browser, Keys.TAB)
    deadline = time.monotonic() + 3
    focused = browser.execute_script(_FOCUSED)
    while not focused["onScreen"] and time.monotonic() < deadline:
        time.sleep(0.05)
        focused = browser.execute_script(_FOCUSED)
    assert focused["text"] == "Skip to main content", f"{name}: the first Tab reaches {focused}"
    assert focused["ring"] and focused["onScreen"], f"{name}: the focused skip link is not shown: {focused}"
    # Enter follows it: the next Tab lands in the main content, past the navigation sidebar.
    _press(browser, Keys.ENTER)
    _press(browser, Keys.TAB)
    focused = browser.execute_script(_FOCUSED)
    assert focused["inMain"], f"{name}: after the skip link, Tab reaches {focused}"
    focused = _tab_until(browser, lambda f: f["inArticle"] and f["tag"] == "a", "a link in the text")
    assert focused["ring"], f"{name}: a focused link in the text shows no focus indicator: {focused}"
    # A folded cell: its summary, focused, opens with Enter and folds again with Space.
    browser.execute_script("document.querySelector('article details:not([open]) > summary').focus();")
    focused = browser.execute_script(_FOCUSED)
    assert focused["tag"] == "summary" and focused["ring"], f"{name}: focused summary: {focused}"
    is_open = "return document.activeElement.parentElement.open;"
    _press(browser, Keys.ENTER)
    assert browser.execute_script(is_open), f"{name}: Enter on {focused['text']!r} did not open it"
    _press(browser, Keys.SPACE)
    assert not browser.execute_script(is_open), f"{name}: Space on {focused['text']!r} did not fold it"


_INDICES = "const i = Reveal.getIndices(); return [i.h, i.v, i.f === undefined ? -1 : i.f];"


def test_deck_works_with_the_keyboard_alone(browser, base_url):
    if not DECKS:
        pytest.skip("_toc.yml lists no chapter")
    from selenium.webdriver.common.keys import Keys

    folded = [name for name in DECKS if (HTML / name).is_file() and 'class="course-code"' in
              (HTML / name).read_text(encoding="utf-8")]
    assert folded, "no deck has a folded code block (a code cell longer than MAX_CODE_LINES)"
    name = folded[0]
    browser.set_window_size(1280, 720)
    try:
        browser.get(base_url + name)
        chromium.settle(browser)
        assert browser.execute_async_script(_REVEAL_READY), f"{name}: reveal.js not ready"
        first = browser.execute_script(_INDICES)
        _press(browser, Keys.ARROW_RIGHT)
        second = browser.execute_script(_INDICES)
        assert second > first, f"{name}: ArrowRight went from {first} to {second}"
        _press(browser, Keys.ARROW_LEFT)
        assert browser.execute_script(_INDICES) == first, f"{name}: ArrowLeft did not come back"
        # The first slide with folded code, brought on screen with all its fragments, as the
        # presenter's key presses would; Tab from the top of the page.
        browser.execute_script(
            "const slide = document.querySelector('details.course-code').closest('section');"
            "const i = Reveal.getIndices(slide); Reveal.slide(i.h, i.v);"
            "while (Reveal.availableFragments().next) { Reveal.nextFragment(); }"
            "document.activeElement.blur();"
        )
        shown = browser.execute_script(_INDICES)
        focused = _tab_until(browser, lambda f: f["tag"] == "summary", "the folded code's summary")
        assert focused["ring"] and focused["onScreen"], f"{name}: focused summary: {focused}"
        # Space and Enter open and fold the code, and leave the slide where it is (reveal.js
        # takes Space for "next slide" unless the focus is on a control).
        is_open = "return document.activeElement.parentElement.open;"
        _press(browser, Keys.SPACE)
        assert browser.execute_script(is_open), f"{name}: Space on {focused['text']!r} did not open it"
        _press(browser, Keys.ENTER)
        assert not browser.execute_script(is_open), f"{name}: Enter on {focused['text']!r} did not fold it"
        assert browser.execute_script(_INDICES) == shown, f"{name}: Space or Enter changed the slide"
    finally:
        browser.set_window_size(1280, 900)


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
    with chromium.serve(tmp_path) as url:
        browser.get(url + "lab/notebook.html")
        shown = browser.execute_async_script(_EXPLORER_CHOOSE, 0, 1, 2, 1, 0)
    assert "error" not in shown, shown
    row = torch.tensor(shown["row"], dtype=torch.float64)
    assert torch.allclose(row, weights[1, 2, 1].double(), atol=1e-6)  # layer 2, head 3, query "cat"


# Waits for the explorer and sets where Tab starts: in a deck, the top of the page with the
# explorer's slide on screen (only that slide takes the focus); on a page, the control just
# before the explorer's first menu.
_EXPLORER_FOCUS_BEFORE = """
const done = arguments[arguments.length - 1];
const root = document.querySelector('.attention-explorer');
const deadline = Date.now() + 30000;
(function wait() {
  if (root.dataset.ready !== 'true') {
    return Date.now() > deadline ? done(root.innerText) : setTimeout(wait, 100);
  }
  if (window.Reveal) {
    const i = Reveal.getIndices(root.closest('section'));
    Reveal.slide(i.h, i.v);
    while (Reveal.availableFragments().next) { Reveal.nextFragment(); }  // as a presenter's key presses
    document.activeElement.blur();
    return done(null);
  }
  const focusable = Array.from(document.querySelectorAll('a[href], button, select, summary, input'))
    .filter(el => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length > 0);
  const before = focusable[focusable.indexOf(root.querySelector('select')) - 1];
  if (before) { before.focus(); } else { document.activeElement.blur(); }
  done(null);
})();
"""


@pytest.mark.parametrize("name", EXPLORER_PAGES or ["<not built>"])
def test_explorer_menus_work_with_the_keyboard(name, browser, base_url):
    if not EXPLORER_PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    from selenium.webdriver.common.keys import Keys

    browser.get(base_url + name)
    error = browser.execute_async_script(_EXPLORER_FOCUS_BEFORE)
    assert error is None, f"{name}: the explorer did not start: {error}"
    # Tab reaches the three menus, one after the other; each is named by its label for assistive
    # technology.
    _tab_until(browser, lambda f: f["role"] == "sentence", "the explorer's sentence menu")
    for role in ("sentence", "layer", "head"):
        if role != "sentence":
            _press(browser, Keys.TAB)
        menu = browser.switch_to.active_element
        focused = browser.execute_script(_FOCUSED)
        assert (focused["tag"], focused["role"]) == ("select", role), f"{name}: Tab reached {focused}"
        label = menu.accessible_name  # as Chromium's accessibility tree names it
        assert label.strip().lower() == role, f"{name}: the {role} menu is named {label!r}"
        assert focused["ring"], f"{name}: the focused {role} menu shows no focus indicator"
    title = "return document.querySelector('.attention-explorer-plot').layout.title.text;"
    indices = "return window.Reveal ? Reveal.getIndices() : null;"
    shown, where = browser.execute_script(title), browser.execute_script(indices)
    _press(browser, Keys.ARROW_DOWN)  # the head menu: from "all (mean)" to head 1
    chosen = menu.get_attribute("value")
    assert chosen == "0", f"{name}: after ArrowDown the head menu is at {chosen!r}, not head 1"
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: d.execute_script(title) != shown)
    now = browser.execute_script(title)
    assert now.endswith("head 1"), f"{name}: the plot shows {now!r} after choosing head 1"
    assert browser.execute_script(indices) == where, f"{name}: the arrow key moved the deck as well"


def test_the_explorer_the_package_writes_has_no_serious_accessibility_violation(browser, tmp_path, request):
    # The chapter and its deck show the explorer's HTML as stored in chapter 4's notebook when it
    # was last executed; this checks what the package writes now, on an otherwise empty page.
    import torch

    from transformer_course.explorer import AttentionExplorer

    plotly = ROOT / "_assets" / "plotly" / "plotly.min.js"
    if not plotly.is_file():
        pytest.skip("plotly.js is not in _assets/plotly (run make)")
    (tmp_path / "_static" / "plotly").mkdir(parents=True)
    shutil.copy(plotly, tmp_path / "_static" / "plotly" / "plotly.min.js")
    weights = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    view = AttentionExplorer([["the", "cat", "sat", "."]], [weights])
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "explorer.html").write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Explorer</title></head>'
        f"<body><main><h1>Explorer</h1>{view._repr_html_()}</main></body></html>", encoding="utf-8")
    with chromium.serve(tmp_path) as url:
        browser.get(url + "chapters/explorer.html")
        error = browser.execute_async_script(_EXPLORER_FOCUS_BEFORE)
        assert error is None, f"the explorer did not start: {error}"
        violations = accessibility_violations(browser)
    check_accessibility("the explorer (the package's HTML)", violations, request.config)
