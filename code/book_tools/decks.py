"""Build one reveal.js deck per chapter of _toc.yml into the built book (offline).

    python -m book_tools.decks [--html _build/html]

Each chapter notebook becomes `<html>/slides/<stem>.slides.html` through `jupyter nbconvert
--to slides` (nbconvert's SlidesExporter) with our template
`book_tools/nbconvert_templates/course_reveal`, which loads reveal.js from
`<html>/slides/reveal.js/` (copied here from node_modules, pinned by package-lock.json) and
MathJax from the book's own `_static/mathjax/`. Nothing comes from a CDN.

What goes on a slide is the cells' `slideshow.slide_type` metadata (slide / subslide / fragment /
skip / notes / "-"). On top of it this module:
- never lets an exercise solution onto a slide: every cell of a `{solution}` directive, and every
  cell between `{solution-start}` and `{solution-end}`, is skipped whatever its metadata says;
- turns MyST-only syntax, which nbconvert's Markdown does not know, into plain Markdown
  (book_tools.myst): a directive such as ```{exercise} becomes a quoted block titled "Exercise",
  `(label)=` targets are dropped, {glue:text}`name:format` becomes the value the notebook glued
  under that name (formatted as the book formats it), {cite:p}`key` becomes "(Author et al.,
  year)" from references.bib, {numref}`label` becomes "the figure", and any other {role}`text`
  keeps its text; a link to another chapter's notebook leads to that chapter's deck.
Long code cells fold into a <details> on the slide (see the template); their outputs stay.

Every figure is on the main path and on the screen:
- the deck runs in reveal.js's linear navigation mode (the template): →, ↓, Space and Page Down
  all go to the next slide, sub-slides included, so a presenter who only presses → sees every
  slide and every figure (by default → jumps over a section's vertical sub-slides);
- a figure that would share its slide with something above it (the text before its code cell,
  or its cell's printed output) moves onto a sub-slide of its own, right after (its code stays
  where it was, with the rest of the cell's output); the template's script then shrinks a
  figure, keeping its aspect ratio, to the height its slide has left, so that no figure slide is
  taller than the 1280 x 720 screen.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

from book_tools.myst import glued_values, myst_to_markdown
from book_tools.toc import ROOT, toc_chapters

TEMPLATE_DIR = Path(__file__).resolve().parent / "nbconvert_templates"
TEMPLATE_NAME = "course_reveal"
REVEAL_SRC = ROOT / "node_modules" / "reveal.js"
# Slides are 1280 x 720 (16:9) and reveal.js scales them to the screen or the printed page.
WIDTH, HEIGHT = 1280, 720
MAX_CODE_LINES = 12  # longer code cells fold into a <details> on their slide


def deck_path(chapter: str) -> str:
    """Where a chapter's deck lives, relative to the root of the built book."""
    return f"slides/{Path(chapter).name}.slides.html"


# Output types that put nothing on a slide: a glued value (glue(..., display=False)) is such an
# output, and nbconvert shows no mimetype it does not know.
_SHOWN_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown",
                "text/latex", "text/plain")
FIGURE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
NEW_SLIDE = ("slide", "subslide")


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-") or "-"


def is_figure(output) -> bool:
    """Whether a code cell's output is a figure (an image) on a slide."""
    return output.get("output_type") in ("display_data", "execute_result") and any(
        kind in output.get("data", {}) for kind in FIGURE_TYPES)


def _shows_something(output) -> bool:
    if output.get("output_type") == "stream":
        return bool(output.get("text", "").strip())
    if output.get("output_type") == "error":
        return True
    return any(kind in output.get("data", {}) for kind in _SHOWN_TYPES)


def figures_on_their_own_slides(cells: list) -> list:
    """The cells with every figure that shares its slide with what comes before it moved onto a
    sub-slide of its own, right after its code cell, and what follows a figure on its slide moved
    onto the next sub-slide.

    A code cell keeps its figures when it starts a slide and shows nothing else (its code, folded
    or short, is then all that sits above them); otherwise the figures go to a copy of the cell
    that starts a sub-slide, shows no code (`course.figure_only`, read by the template) and holds
    only the figures, and the cell itself keeps its code and its other outputs. Either way the
    figure ends its slide: the template scales it to the height of the screen, so text below it
    would fall off the bottom.
    """
    out = []
    after_figure = False
    for cell in cells:
        if after_figure and _slide_type(cell) not in ("skip", "notes"):
            if _slide_type(cell) not in NEW_SLIDE:
                cell.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
            after_figure = False
        out.append(cell)
        if cell.cell_type != "code" or _slide_type(cell) in ("skip", "notes"):
            continue
        figures = [o for o in cell.get("outputs", []) if is_figure(o)]
        others = [o for o in cell.get("outputs", []) if not is_figure(o)]
        if not figures:
            continue
        after_figure = True
        if _slide_type(cell) in NEW_SLIDE and not any(_shows_something(o) for o in others):
            continue
        alone = copy.deepcopy(cell)
        alone.id = f"{cell.get('id', 'cell')}-figure"
        alone.outputs = figures
        alone.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
        alone.metadata["course"] = {"figure_only": True}
        cell.outputs = others
        out.append(alone)
    return out


def slide_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook ready for the deck: no solution on a slide, no MyST syntax, every
    figure on a slide where nothing pushes it off the screen."""
    notebook = copy.deepcopy(notebook)
    glued = glued_values(notebook)
    in_solution = False
    for cell in notebook.cells:
        source = cell.source
        starts = cell.cell_type == "markdown" and re.search(r"\{solution-start\}", source)
        is_solution = cell.cell_type == "markdown" and re.search(r"\{solution(-end)?\}", source)
        if starts:
            in_solution = True
        if in_solution or starts or is_solution:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = "skip"
        if cell.cell_type == "markdown" and re.search(r"\{solution-end\}", source):
            in_solution = False
        if cell.cell_type == "markdown" and cell.metadata.get("slideshow", {}).get(
            "slide_type"
        ) != "skip":
            cell.source = myst_to_markdown(source, glued)
    notebook.cells = figures_on_their_own_slides(notebook.cells)
    return notebook


class _SlideCounter(HTMLParser):
    """Counts the slides of a deck as reveal.js does: sections that hold no other section."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # per open <section>: has it a child section?
        self.slides = 0

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            if self.stack:
                self.stack[-1] = True
            self.stack.append(False)

    def handle_endtag(self, tag):
        if tag == "section" and self.stack:
            self.slides += not self.stack.pop()


def count_slides(html: str) -> int:
    counter = _SlideCounter()
    counter.feed(html)
    return counter.slides


def build(html_dir: Path) -> dict[str, int]:
    """Writes every deck and the reveal.js it loads; returns {deck path: slide count}."""
    if not (REVEAL_SRC / "dist" / "reveal.js").is_file():
        sys.exit(f"{REVEAL_SRC} is missing: run `npm ci` (make does)")
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file():
        sys.exit(f"{html_dir} has no _static/mathjax: build the book first (`make book`)")
    out_dir = html_dir / "slides"
    out_dir.mkdir(parents=True, exist_ok=True)
    reveal_dst = out_dir / "reveal.js"
    shutil.rmtree(reveal_dst, ignore_errors=True)
    shutil.copytree(REVEAL_SRC / "dist", reveal_dst / "dist")
    # The notes plugin carries its speaker view inline; its other files are not needed.
    (reveal_dst / "plugin" / "notes").mkdir(parents=True)
    shutil.copy2(REVEAL_SRC / "plugin" / "notes" / "notes.js", reveal_dst / "plugin" / "notes")
    shutil.copy2(REVEAL_SRC / "LICENSE", reveal_dst / "LICENSE")

    exporter = SlidesExporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        reveal_url_prefix="reveal.js",
        reveal_theme="white",
        reveal_transition="none",
        reveal_width=str(WIDTH),
        reveal_height=str(HEIGHT),
    )
    counts = {}
    for chapter in toc_chapters():
        notebook = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
        resources = {
            "metadata": {"name": Path(chapter).name},
            "course": {
                "mathjax_url": "../_static/mathjax/tex-chtml.js",
                "max_code_lines": MAX_CODE_LINES,
            },
        }
        body, _ = exporter.from_notebook_node(slide_notebook(notebook), resources=resources)
        target = html_dir / deck_path(chapter)
        target.write_text(body, encoding="utf-8")
        counts[deck_path(chapter)] = count_slides(body)
        print(f"deck {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
              f"{counts[deck_path(chapter)]} slides")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="the built book (default: _build/html)")
    build(parser.parse_args().html)


if __name__ == "__main__":
    main()
