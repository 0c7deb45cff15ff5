"""Chapter 4's attention explorer in a real browser: in the chapter and its deck, as built, and
as the package writes it now, in headless Chromium.

The drawn weights must be the package's (to 1e-6), plotly.js must be found where JupyterLab serves
the repository, the three menus must work with the keyboard alone, and the view must pass
axe-core. The shared helpers are in tests/browser_support.py and tests/conftest.py.
"""

from __future__ import annotations

import shutil

import pytest
from browser_support import (
    FOCUSED,
    HTML,
    PAGES,
    ROOT,
    accessibility_violations,
    check_accessibility,
    press,
    tab_until,
)

from book_tools import chromium

pytestmark = pytest.mark.slow  # starts headless Chromium

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
    # The hover names each word with its position (chapter 4's stored output must have been made
    # by the package as it is now: re-execute the chapter after changing the explorer).
    hover = f"from it ({query}) to animal ({key}): {expected[key].item():.4f}"
    assert hover in shown["hover"], shown["hover"]
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
    tab_until(browser, lambda f: f["role"] == "sentence", "the explorer's sentence menu")
    for role in ("sentence", "layer", "head"):
        if role != "sentence":
            press(browser, Keys.TAB)
        menu = browser.switch_to.active_element
        focused = browser.execute_script(FOCUSED)
        assert (focused["tag"], focused["role"]) == ("select", role), f"{name}: Tab reached {focused}"
        label = menu.accessible_name  # as Chromium's accessibility tree names it
        assert label.strip().lower() == role, f"{name}: the {role} menu is named {label!r}"
        assert focused["ring"], f"{name}: the focused {role} menu shows no focus indicator"
    title = "return document.querySelector('.attention-explorer-plot').layout.title.text;"
    indices = "return window.Reveal ? Reveal.getIndices() : null;"
    shown, where = browser.execute_script(title), browser.execute_script(indices)
    press(browser, Keys.ARROW_DOWN)  # the head menu: from "all (mean)" to head 1
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


# The boxes (in the window) of the plot's title, the keys' axis title and tick labels, the heat
# map and the plot's own area, and the hover label over one cell.
_EXPLORER_LAYOUT = """
var [query, key, done] = arguments;
var root = document.querySelector('.attention-explorer');
var deadline = Date.now() + 30000;
(function wait() {
  if (root.dataset.ready !== 'true') {
    return Date.now() > deadline ? done({error: root.innerText}) : setTimeout(wait, 100);
  }
  var plot = root.querySelector('.attention-explorer-plot');
  var box = function (selector) {
    var el = selector ? plot.querySelector(selector) : plot;
    if (!el) return null;
    var r = el.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
  };
  Plotly.Fx.hover(plot, {xval: key, yval: query});
  setTimeout(function () {
    var label = plot.querySelector('.hovertext');
    done({title: box('.gtitle'), axisTitle: box('.xtitle'), ticks: box('.xaxislayer-above'),
          heatmap: box('.nsewdrag'), area: box(null), hover: label ? label.textContent : null});
  }, 300);
})();
"""


def _overlap(a, b):
    return (a["left"] < b["right"] and b["left"] < a["right"]
            and a["top"] < b["bottom"] and b["top"] < a["bottom"])


def test_the_explorers_title_clears_its_axes_and_its_hover_tells_repeated_words_apart(browser, tmp_path):
    # What the package writes now (chapter 4 shows it once re-executed): a sentence with "the"
    # twice and long words on the keys' axis, as the chapter's sentences have.
    import torch

    from transformer_course.explorer import AttentionExplorer

    plotly = ROOT / "_assets" / "plotly" / "plotly.min.js"
    if not plotly.is_file():
        pytest.skip("plotly.js is not in _assets/plotly (run make)")
    (tmp_path / "_static" / "plotly").mkdir(parents=True)
    shutil.copy(plotly, tmp_path / "_static" / "plotly" / "plotly.min.js")
    tokens = "[CLS] the animal didn ' t cross the street because it was too tired . [SEP]".split()
    T = len(tokens)
    weights = torch.softmax(torch.randn(2, 3, T, T, generator=torch.Generator().manual_seed(0)), dim=-1)
    view = AttentionExplorer([tokens], [weights])
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "explorer.html").write_text(
        f"<html><body>{view._repr_html_()}</body></html>", encoding="utf-8")
    first, second = 1, 7  # the two "the"
    assert tokens[first] == tokens[second] == "the"
    with chromium.serve(tmp_path) as url:
        browser.get(url + "chapters/explorer.html")
        shown = browser.execute_async_script(_EXPLORER_LAYOUT, first, second)
    assert "error" not in shown, shown
    # the mean of all heads is what the view shows first (layer 1)
    value = weights[0, :, first, second].mean().item()
    assert f"from the ({first}) to the ({second}): {value:.4f}" in shown["hover"], shown["hover"]
    title = shown["title"]
    for other in ("axisTitle", "ticks", "heatmap"):
        assert not _overlap(title, shown[other]), f"the title {title} overlaps the {other} {shown[other]}"
    area = shown["area"]
    assert area["top"] <= title["top"] and title["bottom"] <= area["bottom"] + 0.5, (title, area)
