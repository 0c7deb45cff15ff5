"""Build one reveal.js deck per chapter of _toc.yml into the built book (offline).

    python slides/build_decks.py [--html _build/html]

Each chapter notebook becomes `<html>/slides/<stem>.slides.html` through `jupyter nbconvert
--to slides` (nbconvert's SlidesExporter) with our template `slides/template/course_reveal`,
which loads reveal.js from `<html>/slides/reveal.js/` (copied here from node_modules, pinned by
package-lock.json) and MathJax from the book's own `_static/mathjax/`. Nothing comes from a CDN.

What goes on a slide is the cells' `slideshow.slide_type` metadata (slide / subslide / fragment /
skip / notes / "-"). On top of it this script:
- never lets an exercise solution onto a slide: every cell of a `{solution}` directive, and every
  cell between `{solution-start}` and `{solution-end}`, is skipped whatever its metadata says;
- turns MyST-only syntax, which nbconvert's Markdown does not know, into plain Markdown: a
  directive such as ```{exercise} becomes a quoted block titled "Exercise", `(label)=` targets
  are dropped, {glue:text}`name:format` becomes the value the notebook glued under that name
  (formatted as the book formats it), {cite:p}`key` becomes "(Author et al., year)" from
  references.bib, {numref}`label` becomes "the figure", and any other {role}`text` keeps its text.
Long code cells fold into a <details> on the slide (see the template); their outputs stay.
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import yaml
from myst_nb.core.variables import format_plain_text
from nbconvert import SlidesExporter
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "slides" / "template"
TEMPLATE_NAME = "course_reveal"
REVEAL_SRC = ROOT / "node_modules" / "reveal.js"
# Slides are 1280 x 720 (16:9) and reveal.js scales them to the screen or the printed page.
WIDTH, HEIGHT = 1280, 720
MAX_CODE_LINES = 12  # longer code cells fold into a <details> on their slide

_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[a-zA-Z][\w-]*)\}\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^:[\w-]+:.*$")
_TARGET = re.compile(r"^\([\w.:-]+\)=\s*$")
_ROLE = re.compile(r"\{(?P<role>[a-z][\w:-]*)\}`(?P<text>[^`]*)`")


def toc_chapters(root: Path = ROOT) -> list[str]:
    """The chapter files of _toc.yml (e.g. 'chapters/02_transformer_architecture'), in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    return [
        chapter["file"]
        for part in toc.get("parts", [])
        for chapter in part.get("chapters", [])
        if chapter["file"].startswith("chapters/")
    ]


def deck_path(chapter: str) -> str:
    """Where a chapter's deck lives, relative to the root of the built book."""
    return f"slides/{Path(chapter).name}.slides.html"


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """The values a notebook glued with ``myst_nb.glue``: name -> their text/plain form."""
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            for mime, data in output.get("data", {}).items():
                if mime.endswith("text/plain"):
                    values[name] = data if isinstance(data, str) else "".join(data)
    return values


def _short_citation(key: str, narrative: bool) -> str:
    """'(Vaswani et al., 2017)', or 'Vaswani et al. (2017)' when ``narrative``."""
    entry = _bibliography().entries[key]
    last = [person.last_names[0].replace("{", "").replace("}", "") for person in entry.persons["author"]]
    authors = last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2 else f"{last[0]} et al."
    year = entry.fields["year"]
    return f"{authors} ({year})" if narrative else f"{authors}, {year}"


@functools.cache
def _bibliography():
    """references.bib, parsed once."""
    return parse_file(str(ROOT / "references.bib"), "bibtex")


def _role_text(match: re.Match, glued: dict[str, str] | None = None) -> str:
    role, text = match.group("role"), match.group("text")
    if role == "math":
        return f"${text}$"
    if role in ("glue", "glue:", "glue:text"):
        name, _, fmt = text.partition(":")
        if glued is None or name not in glued:
            raise KeyError(f"{{glue}}`{text}`: no value glued under {name!r} in this notebook")
        return format_plain_text(glued[name], fmt)
    if role.startswith("cite"):
        keys = [key.strip() for key in text.split(",")]
        if role == "cite:t":
            return "; ".join(_short_citation(key, narrative=True) for key in keys)
        return "(" + "; ".join(_short_citation(key, narrative=False) for key in keys) + ")"
    if role == "numref":
        return "the figure"
    # {ref}`words <label>` shows "words"; {ref}`label` shows the label.
    shown = re.match(r"^(.*?)\s*<[^>]*>$", text)
    return shown.group(1) if shown else text


# A link to another chapter's notebook, `[chapter 6](06_encoder_at_work.ipynb)`: on a slide it
# leads to that chapter's deck, next to this one (the notebook is not served there).
_CHAPTER_LINK = re.compile(r"\]\((?P<stem>[\w-]+)\.ipynb(#[^)]*)?\)")


def myst_to_markdown(source: str, glued: dict[str, str] | None = None, decks: bool = True) -> str:
    """Plain Markdown for a slide or a student's notebook: directives become quoted blocks,
    targets and roles text; with ``decks``, links to another chapter's notebook lead to its deck.

    ``glued``: the notebook's glued values (:func:`glued_values`), for {glue:text} roles.
    """
    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _FENCE.match(line.strip())
        if _TARGET.match(line.strip()):
            i += 1
            continue
        if not match:
            line = _ROLE.sub(lambda m: _role_text(m, glued), line)
            out.append(_CHAPTER_LINK.sub(r"](\g<stem>.slides.html)", line) if decks else line)
            i += 1
            continue
        fence, name, arg = match.group("fence"), match.group("name"), match.group("arg").strip()
        body, i = [], i + 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        while body and (_OPTION.match(body[0].strip()) or not body[0].strip()):
            body.pop(0)
        title = name.replace("-", " ").capitalize()
        if arg and not arg.startswith("ch"):  # an exercise's argument is its own title
            title = f"{title}: {arg}"
        inner = myst_to_markdown("\n".join(body), glued, decks).split("\n")
        out.append(f"> **{title}.**")
        out.append(">")
        out += [f"> {text}" if text.strip() else ">" for text in inner]
        out.append("")
    return "\n".join(out)


def slide_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook ready for the deck: no solution on a slide, no MyST syntax."""
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
