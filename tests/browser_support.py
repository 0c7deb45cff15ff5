"""What the browser tests share: the built book's pages and decks, reveal.js's readiness, screenshots,
axe-core's accessibility check, and real key presses. The browser and the local server are the
``browser`` and ``base_url`` fixtures of tests/conftest.py.

The browser tests (tests/test_browser.py: every page; tests/test_browser_decks.py: the slide decks;
tests/test_browser_explorer.py: chapter 4's attention explorer) drive headless Debian Chromium via
Selenium. `make test` installs Chromium and chromedriver from Debian when they are missing and
builds the book first; elsewhere these tests are skipped with the reason.

Accessibility: axe-core (node_modules/axe-core, pinned in package-lock.json, injected from the
file) checks every page, every deck as presented and every deck in its print layout (?print-pdf,
where all slides are laid out at once); a "serious" or "critical" violation fails, "moderate" and
"minor" ones are listed at the end of the run (tests/conftest.py). Keyboard: real key presses
(WebDriver actions, :func:`press`) to whatever has the focus.

Screenshots: with BOOK_SCREENSHOTS=<folder> set, the intro page, the first chapter page and a
slide of each deck are saved there as PNG (1280 px wide), to look at by eye.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from conftest import record_accessibility_findings

from book_tools.decks import deck_path
from book_tools.toc import toc_chapters

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
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


def is_deck(name: str) -> bool:
    """Whether a built page (a path relative to the book's root) is a reveal.js deck."""
    return name.startswith("slides/") and name.endswith(".slides.html")


# Resolves once reveal.js has laid the deck out.
REVEAL_READY = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  // reveal.js ready, and MathJax done typesetting (the deck fits its slide again then)
  const math = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  if (window.Reveal && Reveal.isReady && Reveal.isReady() && (!window.MathJax || math)) {
    (math || Promise.resolve()).then(() => done(true), () => done(false));
  }
  else if (Date.now() - start > 15000) { done(false); }
  else { setTimeout(poll, 50); }
})();
"""


def set_viewport(driver, width: int, height: int) -> None:
    """Sizes the window so that the page itself (innerWidth x innerHeight) is width x height:
    a window's size counts the browser's own frame, about 140 px of height in headless Chromium."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [innerWidth, innerHeight];")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def screenshot(driver, name: str) -> None:
    """Saves what the browser shows as ``name`` (a PNG) in BOOK_SCREENSHOTS, when that is set."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / name))


# ---------------------------------------------------------------- axe-core


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


# ---------------------------------------------------------------- the keyboard alone

MAX_TABS = 40  # Tab presses allowed to reach a control before a test gives up


def press(driver, *keys) -> None:
    """Real key presses (WebDriver actions) to whatever has the focus, as a keyboard user's."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


# The focused element, and whether it shows that it has the focus: a computed outline or box
# shadow (the theme's :focus-visible styles), on screen.
FOCUSED = """
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


def tab_until(driver, wanted, what: str) -> dict:
    """Presses Tab until the focused element satisfies ``wanted``; fails after MAX_TABS presses."""
    from selenium.webdriver.common.keys import Keys

    seen = []
    for _ in range(MAX_TABS):
        press(driver, Keys.TAB)
        focused = driver.execute_script(FOCUSED)
        if wanted(focused):
            return focused
        seen.append(f"{focused['tag']} {focused['text'][:20]!r}")
    raise AssertionError(f"{MAX_TABS} Tab presses never reached {what}; they went through {seen}")
