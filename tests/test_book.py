"""The book as a whole: its table of contents, its stored notebooks and its built HTML.

The HTML checks read `_build/html`, which `make test` always builds first; run alone without a
build they are skipped with a reason.
"""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from book_tools.decks import deck_path
from book_tools.toc import toc_chapters

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHAPTER_NAME = re.compile(r"^chapters/(\d\d)_[a-z0-9_]+$")
APPENDIX_NAME = re.compile(r"^chapters/appendix_[a-z0-9_]+$")

# Tags whose URL attributes make the browser fetch something while loading the page.
FETCHING_ATTRS = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}


def built_pages() -> list[Path]:
    """Every HTML page of the built book (not the theme's and MathJax's static files)."""
    if not HTML.is_dir():
        return []
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.relative_to(HTML).parts)


def needs_build() -> None:
    if not built_pages():
        pytest.skip(f"the book is not built ({HTML} is missing): run `make book` first")


# ---------------------------------------------------------------- table of contents


def test_toc_is_a_jupyter_book_with_intro_as_root():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc["format"] == "jb-book"
    assert toc["root"] == "intro"
    assert (ROOT / "intro.md").is_file()


def test_toc_lists_existing_chapters_in_the_order_of_the_notes():
    """Numbered chapters (one per section of the notes) in order, then any appendices."""
    chapters = toc_chapters()
    assert chapters, "_toc.yml lists no chapter"
    numbers, appendix_seen = [], False
    for chapter in chapters:
        assert (ROOT / f"{chapter}.ipynb").is_file(), f"{chapter}.ipynb listed but missing"
        if APPENDIX_NAME.match(chapter):
            appendix_seen = True
            continue
        match = CHAPTER_NAME.match(chapter)
        assert match, f"{chapter!r} is named neither chapters/NN_snake_case nor chapters/appendix_*"
        assert not appendix_seen, f"{chapter!r} comes after an appendix"
        numbers.append(int(match.group(1)))
    assert numbers == sorted(set(numbers)), f"chapters out of the notes' order: {numbers}"
    # Five sections of the notes, and chapter 6 for the closing claims of the fifth (the decoder).
    assert all(1 <= n <= 6 for n in numbers), f"the notes have five sections and chapter 6, got {numbers}"


def test_every_chapter_notebook_is_in_the_toc():
    listed = {f"{c}.ipynb" for c in toc_chapters()}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.ipynb")}
    assert on_disk - listed == set(), "notebooks in chapters/ missing from _toc.yml"


# ---------------------------------------------------------------- stored notebooks


@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_is_stored_executed_without_errors(chapter):
    notebook = json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{chapter} has no code cell"
    for index, cell in enumerate(code_cells):
        source = "".join(cell["source"])[:60]
        assert isinstance(cell.get("execution_count"), int), (
            f"{chapter}: code cell {index} ({source!r}) was never executed; run `make execute`"
        )
        errors = [out for out in cell.get("outputs", []) if out["output_type"] == "error"]
        assert not errors, f"{chapter}: code cell {index} ({source!r}) stores an error"


# ---------------------------------------------------------------- the built book


class _FetchedURLs(HTMLParser):
    """Collects the URLs a page makes the browser fetch, and its <a href> targets."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[tuple[str, str]] = []  # (tag, url)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in FETCHING_ATTRS.get(tag, ()):
            value = attrs.get(name)
            if not value:
                continue
            urls = [item.split()[0] for item in value.split(",")] if name == "srcset" else [value]
            self.fetched += [(tag, url.strip()) for url in urls if url.strip()]


def parse(page: Path) -> _FetchedURLs:
    parser = _FetchedURLs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def is_remote(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme not in ("", "data", "blob")


@pytest.mark.book
def test_no_page_fetches_anything_from_another_host():
    needs_build()
    remote = [
        f"{page.relative_to(HTML)}: <{tag}> {url}"
        for page in built_pages()
        for tag, url in parse(page).fetched
        if is_remote(url)
    ]
    assert remote == []


@pytest.mark.book
def test_every_local_asset_a_page_fetches_exists():
    needs_build()
    missing = []
    for page in built_pages():
        for tag, url in parse(page).fetched:
            if is_remote(url) or url.startswith("data:"):
                continue
            path = unquote(urlsplit(url).path)
            if path and not (page.parent / path).resolve().exists():
                missing.append(f"{page.relative_to(HTML)}: <{tag}> {url}")
    assert missing == []


@pytest.mark.book
def test_markdown_tables_in_outputs_are_rendered_as_tables():
    """A cell that displays a Markdown table (the measured tables of chapter 6 and the scale
    appendix) shows a table, not its source: the book renders Markdown outputs as GFM."""
    needs_build()
    source_left = re.compile(r"<p>\|[^<]*\|\s*\n\|\s*:?(-{3}|\u2014)")  # (--- or its em dash)
    pages = [page.relative_to(HTML) for page in built_pages()
             if source_left.search(page.read_text(encoding="utf-8"))]
    assert pages == [], f"Markdown tables left as text in {pages}"


@pytest.mark.book
def test_site_root_serves_a_favicon():
    """Browsers request /favicon.ico on their own; without it every first visit logs a 404."""
    needs_build()
    icon = HTML / "favicon.ico"
    assert icon.is_file() and icon.read_bytes()[:4] == b"\x00\x00\x01\x00"  # ICO header


@pytest.mark.book
def test_mathjax_is_served_by_the_book():
    needs_build()
    math_pages = 0
    for page in built_pages():
        text = page.read_text(encoding="utf-8")
        scripts = [url for tag, url in parse(page).fetched if tag == "script"]
        mathjax = [url for url in scripts if "mathjax" in url.lower()]
        if 'class="math' not in text:
            continue
        math_pages += 1
        assert len(mathjax) == 1, f"{page.relative_to(HTML)} has math but MathJax is {mathjax}"
        local = (page.parent / urlsplit(mathjax[0]).path).resolve()
        assert local == (HTML / "_static" / "mathjax" / "tex-chtml.js").resolve()
        assert local.is_file()
    assert math_pages >= 1, "no built page has math (intro.md should), nothing was checked"
    # MathJax loads its fonts from next to itself: they must have been copied too.
    assert list((HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))


@pytest.mark.book
@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_page_offers_its_notebook_for_download(chapter):
    needs_build()
    page = HTML / f"{chapter}.html"
    assert page.is_file(), f"{chapter} was not built"
    source = HTML / "_sources" / f"{chapter}.ipynb"
    assert source.is_file(), f"{source.relative_to(HTML)} is not in the built book"
    stored = json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    assert json.loads(source.read_text(encoding="utf-8"))["cells"] == stored["cells"]
    targets = {(page.parent / urlsplit(href).path).resolve() for href in parse(page).links}
    assert source.resolve() in targets, f"{chapter}.html has no download link to its .ipynb"


# ---------------------------------------------------------------- exercises and slide decks


def numbered_chapters() -> list[str]:
    """Chapters of the notes (chapters/NN_*); appendices are not held to the exercise rule."""
    return [chapter for chapter in toc_chapters() if CHAPTER_NAME.match(chapter)]


def solution_cell_ids(notebook: dict) -> list[str]:
    """Ids of every cell of an exercise solution: a {solution} cell, or {solution-start} to end."""
    ids, inside = [], False
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
        starts = "{solution-start}" in source
        inside = inside or starts
        if inside or re.search(r"\{solution(-end)?\}", source):
            ids.append(cell["id"])
        if "{solution-end}" in source:
            inside = False
    return ids


@pytest.mark.book
@pytest.mark.parametrize("chapter", numbered_chapters())
def test_chapter_has_four_exercises_each_with_a_hidden_solution(chapter):
    needs_build()
    html = (HTML / f"{chapter}.html").read_text(encoding="utf-8")
    exercises = re.findall(r'<div class="exercise admonition" id="([^"]+)"', html)
    assert len(exercises) >= 4, f"{chapter}: {len(exercises)} exercises, expected at least 4"
    # sphinx-exercise titles each solution "Solution to <a href="#label">Exercise n</a>".
    solutions = re.findall(
        r'<div class="solution ([^"]*)"[^>]*>\s*<p class="admonition-title">Solution to'
        r'<a class="reference internal" href="#([^"]+)"',
        html,
    )
    solved = {label for _, label in solutions}
    assert set(exercises) <= solved, f"{chapter}: exercises without a solution: {set(exercises) - solved}"
    hidden = [label for classes, label in solutions if "dropdown" in classes.split()]
    assert len(hidden) == len(solutions), f"{chapter}: solutions shown open: {solutions}"


def exercise_solutions(cells: list[dict]) -> list[dict]:
    """Each exercise's solution: its label, its code cells (none for a worked answer in Markdown)
    and the cell that follows it."""
    blocks, current = [], None
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        after = cells[i + 1] if i + 1 < len(cells) else None
        if cell["cell_type"] == "markdown" and (start := re.search(r"\{solution-start\}\s+(\S+)", source)):
            current = {"label": start.group(1), "code": [], "after": None}
        elif cell["cell_type"] == "markdown" and (whole := re.search(r"\{solution\}\s+(\S+)", source)):
            blocks.append({"label": whole.group(1), "code": [], "after": after})
        elif current is not None and cell["cell_type"] == "code":
            current["code"].append(source)
        elif current is not None and "{solution-end}" in source:
            current["after"] = after
            blocks.append(current)
            current = None
    return blocks


@pytest.mark.parametrize("chapter", numbered_chapters())
def test_exercises_are_coding_with_a_checker_or_conceptual_with_a_worked_answer(chapter):
    cells = json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))["cells"]
    blocks = exercise_solutions(cells)
    coding = [block for block in blocks if block["code"]]
    assert len(blocks) >= 4, f"{chapter}: {len(blocks)} exercises, expected at least 4"
    assert len(coding) >= 3, f"{chapter}: {len(coding)} coding exercises with a checker, expected at least 3"
    assert len(coding) < len(blocks), f"{chapter}: no conceptual question with a worked answer"
    for block in coding:
        label = block["label"]
        assert any("### BEGIN SOLUTION" in code for code in block["code"]), (
            f"{chapter}: {label}: its solution has no BEGIN SOLUTION region for make student to strip"
        )
        check = block["after"]
        assert check is not None and check["cell_type"] == "code", f"{chapter}: {label}: no check cell"
        lines = [line for line in "".join(check["source"]).splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        # The check cell hands the student's objects to the checker; it computes and shows nothing.
        assert lines and all(line.startswith(f'exercises.check("{label}"') for line in lines), (
            f"{chapter}: {label}: the check cell does more than call exercises.check: {lines}"
        )
        shown = "".join("".join(output.get("text", "")) for output in check.get("outputs", []))
        assert shown.strip() == f"{label}: correct", f"{chapter}: {label}: stored verdict {shown!r}"


@pytest.mark.book
@pytest.mark.parametrize("chapter", numbered_chapters())
def test_numbered_chapter_page_offers_its_student_notebook(chapter):
    needs_build()
    page = HTML / f"{chapter}.html"
    match = re.search(r'<a [^>]*href="([^"]+)"[^>]*>Student notebook</a>', page.read_text(encoding="utf-8"))
    assert match, f"{chapter}.html has no student-notebook link"
    student = (page.parent / match.group(1)).resolve()
    assert student.is_file() and student.name == Path(chapter).name + ".ipynb"
    code = "".join("".join(c["source"]) for c in json.loads(student.read_text(encoding="utf-8"))["cells"])
    assert "raise NotImplementedError" in code and "### BEGIN SOLUTION" not in code


@pytest.mark.book
@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_page_links_to_its_deck(chapter):
    needs_build()
    page = HTML / f"{chapter}.html"
    html = page.read_text(encoding="utf-8")
    match = re.search(r'<a [^>]*href="([^"]+)"[^>]*>Slides for this chapter</a>', html)
    assert match, f"{chapter}.html has no 'Slides for this chapter' link"
    target = (page.parent / match.group(1)).resolve()
    assert target == (HTML / deck_path(chapter)).resolve()
    assert target.is_file(), f"{deck_path(chapter)} was not built"


@pytest.mark.book
def test_decks_are_exactly_the_chapters_of_the_toc():
    needs_build()
    built = {p.relative_to(HTML).as_posix() for p in (HTML / "slides").glob("*.slides.html")}
    assert built == {deck_path(chapter) for chapter in toc_chapters()}


@pytest.mark.book
@pytest.mark.parametrize("chapter", toc_chapters())
def test_deck_shows_its_slide_cells_and_never_a_solution(chapter):
    """Every cell the metadata puts on a slide (or in the notes) is in the deck; no solution is."""
    needs_build()
    deck = HTML / deck_path(chapter)
    assert deck.is_file(), f"{deck_path(chapter)} was not built"
    html = deck.read_text(encoding="utf-8")
    notebook = json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    solutions = set(solution_cell_ids(notebook))
    assert not [i for i in solutions if f'id="cell-id={i}"' in html], f"{chapter}: solution on a slide"
    for cell in notebook["cells"]:
        slide_type = cell["metadata"].get("slideshow", {}).get("slide_type")
        assert slide_type in {"slide", "subslide", "fragment", "skip", "notes", "-"}, (
            f"{chapter}: cell {cell['id']} has slide_type {slide_type!r}"
        )
        on_deck = f'id="cell-id={cell["id"]}"' in html
        assert on_deck == (slide_type != "skip" and cell["id"] not in solutions), (
            f"{chapter}: cell {cell['id']} ({slide_type}) {'is' if on_deck else 'is not'} in the deck"
        )
    assert html.count('<aside class="notes">') >= 1, f"{chapter}: the deck has no speaker notes"


@pytest.mark.book
@pytest.mark.parametrize("chapter", toc_chapters())
def test_every_figure_on_a_slide_has_its_cell_s_alt_text(chapter):
    """A screen reader on a deck hears the same description of a figure as on the book's page."""
    needs_build()
    html = (HTML / deck_path(chapter)).read_text(encoding="utf-8")
    notebook = json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    alts = re.findall(r'<img\b[^>]*?\balt="([^"]*)"', html)
    assert len(alts) == len(re.findall(r"<img\b", html)), f"{chapter}: an image without alt"
    expected = {
        cell["metadata"]["mystnb"]["image"]["alt"]
        for cell in notebook["cells"]
        if cell["metadata"].get("mystnb", {}).get("image", {}).get("alt")
        and cell["metadata"].get("slideshow", {}).get("slide_type") != "skip"
    }
    for alt in alts:
        assert unescape(alt) in expected, f"{chapter}: a slide image has alt {alt[:60]!r}"
    assert {unescape(alt) for alt in alts} == expected


@pytest.mark.book
def test_every_local_link_of_the_pages_and_decks_leads_to_a_file():
    """A link inside the book (a page, a deck, a notebook to download) opens something."""
    needs_build()
    broken = []
    for page in built_pages():  # the decks included
        for href in re.findall(r'<a\b[^>]*?\bhref="([^"]*)"', page.read_text(encoding="utf-8")):
            path = unquote(urlsplit(href).path)
            if is_remote(href) or href.startswith(("#", "mailto:", "data:")) or not path:
                continue
            if not (page.parent / path).resolve().exists():
                broken.append(f"{page.relative_to(HTML)}: {href}")
    assert broken == [], broken[:10]
