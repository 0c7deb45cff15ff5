"""The built book in a real browser: every page, served from 127.0.0.1 to headless Chromium.

Every page and every reveal.js deck must load without console errors, fetch nothing from any
other host, show all its images, have its math typeset by the book's own MathJax, and pass
axe-core (a deck as presented); each chapter page links to its deck and its notebook; real key
presses move through a book page from its skip link and open folded code. The decks' own checks
are in tests/test_browser_decks.py, chapter 4's attention explorer in
tests/test_browser_explorer.py; the browser, the server, axe-core, the key presses and the
screenshots (BOOK_SCREENSHOTS) are shared through tests/browser_support.py and tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest
from browser_support import (
    CHAPTERS,
    FOCUSED,
    HTML,
    PAGES,
    REVEAL_READY,
    SCREENSHOTS,
    accessibility_violations,
    check_accessibility,
    is_deck,
    press,
    screenshot,
    tab_until,
)

from book_tools import chromium  # the local server and Chromium the printers use too
from book_tools.decks import deck_path

pytestmark = pytest.mark.slow  # starts headless Chromium

LOCAL_HOST = chromium.LOCAL_HOST
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}


def _requested_urls(performance_log: list[dict]) -> list[str]:
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


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
    chromium.settle(browser)
    deck = is_deck(request.param)
    if deck:
        assert browser.execute_async_script(REVEAL_READY), f"{request.param}: reveal.js not ready"
    elif SCREENSHOTS and request.param in ("intro.html", f"{CHAPTERS[0]}.html" if CHAPTERS else ""):
        screenshot(browser, request.param.replace("/", "_") + ".png")
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


# Code boxes (cells' code and the text's code blocks, not printed outputs) whose text is wider
# than the box, at the page's width: each would need a horizontal scroll bar to be read.
_CODE_WIDER_THAN_ITS_BOX = """
return Array.from(document.querySelectorAll(
    '.bd-article .cell_input pre, .bd-article div[class*="highlight-"]:not(.output) pre'))
  .filter(pre => pre.getClientRects().length > 0 && pre.scrollWidth > pre.clientWidth + 1)
  .map(pre => [pre.clientWidth, pre.scrollWidth, pre.textContent.split('\\n')[0].slice(0, 60)]);
"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_code_wraps_instead_of_scrolling_sideways(chapter, browser, base_url):
    # At 1280 px the article's column holds about 76 characters of code; lines run to 110.
    if not PAGES:
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")
    browser.set_window_size(1280, 900)
    browser.get(base_url + f"{chapter}.html")
    chromium.settle(browser)
    wide = browser.execute_script(_CODE_WIDER_THAN_ITS_BOX)
    assert not wide, f"{chapter}.html: {len(wide)} code boxes scroll sideways, e.g. {wide[:3]}"
    assert browser.execute_script("return document.documentElement.scrollWidth <= innerWidth;")


# ---------------------------------------------------------------- the keyboard alone


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
    press(browser, Keys.TAB)
    deadline = time.monotonic() + 3
    focused = browser.execute_script(FOCUSED)
    while not focused["onScreen"] and time.monotonic() < deadline:
        time.sleep(0.05)
        focused = browser.execute_script(FOCUSED)
    assert focused["text"] == "Skip to main content", f"{name}: the first Tab reaches {focused}"
    assert focused["ring"] and focused["onScreen"], f"{name}: the focused skip link is not shown: {focused}"
    # Enter follows it: the next Tab lands in the main content, past the navigation sidebar.
    press(browser, Keys.ENTER)
    press(browser, Keys.TAB)
    focused = browser.execute_script(FOCUSED)
    assert focused["inMain"], f"{name}: after the skip link, Tab reaches {focused}"
    focused = tab_until(browser, lambda f: f["inArticle"] and f["tag"] == "a", "a link in the text")
    assert focused["ring"], f"{name}: a focused link in the text shows no focus indicator: {focused}"
    # A folded cell: its summary, focused, opens with Enter and folds again with Space.
    browser.execute_script("document.querySelector('article details:not([open]) > summary').focus();")
    focused = browser.execute_script(FOCUSED)
    assert focused["tag"] == "summary" and focused["ring"], f"{name}: focused summary: {focused}"
    is_open = "return document.activeElement.parentElement.open;"
    press(browser, Keys.ENTER)
    assert browser.execute_script(is_open), f"{name}: Enter on {focused['text']!r} did not open it"
    press(browser, Keys.SPACE)
    assert not browser.execute_script(is_open), f"{name}: Space on {focused['text']!r} did not fold it"
