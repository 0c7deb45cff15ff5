"""The slide decks in a real browser: one reveal.js deck per chapter of _toc.yml, in headless Chromium.

Each deck must have at least 8 slides, reach its last slide, carry speaker notes and fit its
figures in a 1280 x 720 slide; pressing → alone must show every figure of the chapter, each
whole on a 1280 x 720 screen and clear of the navigation controls; its print layout
(?print-pdf, every slide at once) must pass axe-core; and real key presses step through it and
open its folded code. What every page checks (decks included: console, requests, images, math,
axe-core as presented) is in tests/test_browser.py; the shared helpers are in
tests/browser_support.py and tests/conftest.py.
"""

from __future__ import annotations

import pytest
from browser_support import (
    CHAPTERS,
    DECKS,
    HTML,
    REVEAL_READY,
    accessibility_violations,
    check_accessibility,
    press,
    screenshot,
    set_viewport,
    tab_until,
)

from book_tools import chromium
from book_tools.decks import deck_path

pytestmark = pytest.mark.slow  # starts headless Chromium

MIN_SLIDES = 8


@pytest.fixture(params=DECKS or ["<no chapter>"])
def deck(request, browser, base_url):
    """Loads one chapter's deck in a 1280 x 720 window, reveal.js ready."""
    if not DECKS:
        pytest.skip("_toc.yml lists no chapter")
    if not (HTML / request.param).is_file():
        pytest.fail(f"{request.param} was not built (make book builds the decks)")
    set_viewport(browser, 1280, 720)
    try:
        browser.get(base_url + request.param)
        chromium.settle(browser)
        assert browser.execute_async_script(REVEAL_READY), f"{request.param}: reveal.js not ready"
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
    screenshot(driver, name.replace("/", "_").replace(".html", ".png"))
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


_INDICES = "const i = Reveal.getIndices(); return [i.h, i.v, i.f === undefined ? -1 : i.f];"


def test_deck_works_with_the_keyboard_alone(browser, base_url):
    if not DECKS:
        pytest.skip("_toc.yml lists no chapter")
    from selenium.webdriver.common.keys import Keys

    folded = [name for name in DECKS if (HTML / name).is_file() and 'class="course-code"' in
              (HTML / name).read_text(encoding="utf-8")]
    assert folded, "no deck has a folded code block (a code cell longer than MAX_CODE_LINES)"
    name = folded[0]
    set_viewport(browser, 1280, 720)
    try:
        browser.get(base_url + name)
        chromium.settle(browser)
        assert browser.execute_async_script(REVEAL_READY), f"{name}: reveal.js not ready"
        first = browser.execute_script(_INDICES)
        press(browser, Keys.ARROW_RIGHT)
        second = browser.execute_script(_INDICES)
        assert second > first, f"{name}: ArrowRight went from {first} to {second}"
        press(browser, Keys.ARROW_LEFT)
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
        focused = tab_until(browser, lambda f: f["tag"] == "summary", "the folded code's summary")
        assert focused["ring"] and focused["onScreen"], f"{name}: focused summary: {focused}"
        # Space and Enter open and fold the code, and leave the slide where it is (reveal.js
        # takes Space for "next slide" unless the focus is on a control).
        is_open = "return document.activeElement.parentElement.open;"
        press(browser, Keys.SPACE)
        assert browser.execute_script(is_open), f"{name}: Space on {focused['text']!r} did not open it"
        press(browser, Keys.ENTER)
        assert not browser.execute_script(is_open), f"{name}: Enter on {focused['text']!r} did not fold it"
        assert browser.execute_script(_INDICES) == shown, f"{name}: Space or Enter changed the slide"
    finally:
        browser.set_window_size(1280, 900)


# ---------------------------------------------------------------- every figure, with → alone

MAX_PRESSES = 400  # ArrowRight presses allowed to reach a deck's end


def figures_in_chapter(chapter: str) -> int:
    """The figures (image outputs) a chapter's deck must show: every one outside skipped cells."""
    import nbformat

    from book_tools.decks import is_figure, slide_notebook
    from book_tools.toc import ROOT as BOOK_ROOT

    notebook = slide_notebook(nbformat.read(BOOK_ROOT / f"{chapter}.ipynb", as_version=4))
    return sum(is_figure(output) for cell in notebook.cells
               if cell.cell_type == "code"
               and cell.metadata.get("slideshow", {}).get("slide_type") not in ("skip", "notes")
               for output in cell.get("outputs", []))


# Numbers the deck's figures in document order, once; returns how many there are.
_NUMBER_FIGURES = """
const figures = document.querySelectorAll('.reveal .slides .jp-OutputArea-output img');
figures.forEach((img, i) => { img.dataset.courseFigure = String(i); });
return figures.length;
"""

# What is on screen after a key press: the slide's indices, whether the deck is at its end, the
# figures shown on the present slide (not in a fragment still hidden) with their boxes in the
# window, and the navigation controls' and slide number's boxes.
_ON_SCREEN = """
const box = el => { const r = el.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
const slide = Reveal.getCurrentSlide();
const figures = Array.from(slide.querySelectorAll('img[data-course-figure]'))
  .filter(img => !img.closest('.fragment:not(.visible)') && img.getClientRects().length > 0)
  .map(img => Object.assign({n: Number(img.dataset.courseFigure), alt: img.alt.slice(0, 50)}, box(img)));
const chrome = Array.from(document.querySelectorAll(
    '.reveal .controls button.enabled, .reveal .slide-number'))
  .filter(el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')
  .map(box);
const folded = el => { const d = el.closest('details:not([open])');
  return d !== null && !el.closest('summary'); };  // laid out by Chromium, but not drawn
const shown = Array.from(slide.querySelectorAll('*'))
  .filter(el => !el.closest('.fragment:not(.visible)') && !folded(el) && el.getClientRects().length > 0
          && getComputedStyle(el).visibility !== 'hidden');
const bottom = Math.max(0, ...shown.map(el => el.getBoundingClientRect().bottom));
const i = Reveal.getIndices();
return {at: [i.h, i.v, i.f === undefined ? -1 : i.f], figures: figures, chrome: chrome, bottom: bottom,
        end: Reveal.isLastSlide() && !Reveal.availableFragments().next,
        viewport: [innerWidth, innerHeight]};
"""


# Waits until the present slide's images are decoded and two frames have been drawn: the deck
# fits a slide to the screen again when an image finishes loading.
_SETTLED = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const images = Array.from(Reveal.getCurrentSlide().querySelectorAll('img'));
  if (images.every(img => img.complete) || Date.now() - start > 5000) {
    requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
  } else { setTimeout(poll, 20); }
})();
"""


# On a slide the deck drew smaller to fit the screen: how many times it lays the slide out again
# in the next 300 ms, with nothing changing (a fit that does not settle would redo itself every
# frame, and keep a presenter's CPU busy). None for a slide drawn at full size.
_REFITS = """
const done = arguments[arguments.length - 1];
const slide = Reveal.getCurrentSlide();
if (!Array.from(slide.children).some(el => el.style.zoom)) { done(null); return; }
const original = window.courseLayFigures;
let calls = 0;
window.courseLayFigures = function () { calls += 1; return original(); };
setTimeout(() => { window.courseLayFigures = original; done(calls); }, 300);
"""


def _overlaps(a: dict, b: dict) -> bool:
    return (a["left"] < b["right"] and b["left"] < a["right"]
            and a["top"] < b["bottom"] and b["top"] < a["bottom"])


@pytest.mark.parametrize("chapter", CHAPTERS or ["<no chapter>"])
def test_arrow_right_alone_shows_every_slide_and_figure_within_the_screen(chapter, browser, base_url):
    # A presenter at a 1280 x 720 screen who presses only → must see every figure of the chapter,
    # whole: inside the window and clear of the navigation arrows and the slide number; and no
    # slide may run below the screen, where → never scrolls.
    if not CHAPTERS:
        pytest.skip("_toc.yml lists no chapter")
    from selenium.webdriver.common.keys import Keys

    name = deck_path(chapter)
    if not (HTML / name).is_file():
        pytest.fail(f"{name} was not built (make book builds the decks)")
    expected = figures_in_chapter(chapter)
    set_viewport(browser, 1280, 720)
    try:
        browser.get(base_url + name)
        chromium.settle(browser)
        assert browser.execute_async_script(REVEAL_READY), f"{name}: reveal.js not ready"
        assert browser.execute_script("return [innerWidth, innerHeight];") == [1280, 720]
        count = browser.execute_script(_NUMBER_FIGURES)
        assert count == expected, f"{name}: {count} figures in the deck, the chapter has {expected}"
        browser.execute_script("document.activeElement.blur();")
        seen, problems, before = set(), [], None
        for _ in range(MAX_PRESSES):
            browser.execute_async_script(_SETTLED)
            state = browser.execute_script(_ON_SCREEN)
            refits = browser.execute_async_script(_REFITS)
            if refits:
                problems.append(f"slide {state['at']}: laid out {refits} more times in 300 ms, "
                                f"with nothing changing")
            if state["at"] == before:
                break  # → no longer moves (reveal.js's default mode stops at the last section)
            before = state["at"]
            if state["bottom"] > 720.5:
                problems.append(f"slide {state['at']}: runs below the screen, down to "
                                f"{round(state['bottom'])} px of 720 (split it: a sub-slide)")
            for figure in state["figures"]:
                seen.add(figure["n"])
                where = f"figure {figure['n']} ({figure['alt']!r}) at slide {state['at']}"
                inside = (figure["left"] >= -0.5 and figure["top"] >= -0.5
                          and figure["right"] <= 1280.5 and figure["bottom"] <= 720.5)
                if not inside:
                    corners = [round(figure[k]) for k in ("left", "top", "right", "bottom")]
                    problems.append(f"{where}: box {corners} is not within 1280 x 720")
                if any(_overlaps(figure, other) for other in state["chrome"]):
                    problems.append(f"{where}: under the navigation arrows or the slide number")
            if state["end"]:
                break
            press(browser, Keys.ARROW_RIGHT)
        missed = sorted(set(range(count)) - seen)
        assert not missed, f"{name}: → alone never showed figures {missed} of {count}"
        assert state["end"], f"{name}: → alone stopped at slide {state['at']}, before the end"
        assert not problems, f"{name}: " + "; ".join(dict.fromkeys(problems))
    finally:
        browser.set_window_size(1280, 900)
