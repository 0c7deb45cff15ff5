"""The printed book and the printed slides, read back from the PDFs with pypdf.

The book's PDF is `make pdf`'s `_build/pdf/transformers-i.pdf` (`make test` prints it before
pytest runs); the handouts are printed here, by book_tools.handouts, into a temporary
folder. Each check reads what a reader gets: the pages, their text layer, the links and the
bookmarks. The chapters are those of `_toc.yml`, so a chapter added there is checked too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from book_tools.decks import deck_path
from book_tools.toc import toc_chapters

pytestmark = pytest.mark.slow  # reads a 250-page PDF; the handouts start headless Chromium

ROOT = Path(__file__).resolve().parents[1]
BOOK_PDF = ROOT / "_build" / "pdf" / "transformers-i.pdf"
HTML = ROOT / "_build" / "html"


def _flat(text: str) -> str:
    """Whitespace collapsed, ligatures split (NFKC), quotes and dashes made plain, to compare."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
    text = text.replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-")
    return re.sub(r"\s+", " ", text).strip()


def toc_documents() -> list[tuple[str, str]]:
    """(file, title) of every page of _toc.yml after the introduction, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    documents = []
    for part in toc["parts"]:
        for entry in part["chapters"]:
            name = entry["file"]
            notebook = ROOT / f"{name}.ipynb"
            if notebook.is_file():
                first = json.loads(notebook.read_text(encoding="utf-8"))["cells"][0]
                source = "".join(first["source"])
            else:
                source = (ROOT / f"{name}.md").read_text(encoding="utf-8")
            title = re.search(r"^# (.+)$", source, re.MULTILINE).group(1)
            documents.append((name, _flat(re.sub(r"[*_`]", "", title))))
    return documents


DOCUMENTS = toc_documents()


@pytest.fixture(scope="module")
def book():
    """The book's PDF: its reader and the flattened text of every page (1-based list: [0] unused)."""
    from pypdf import PdfReader

    if not BOOK_PDF.is_file():
        pytest.fail(f"{BOOK_PDF.relative_to(ROOT)} is missing: `make pdf` prints it")
    reader = PdfReader(BOOK_PDF)
    return reader, [""] + [_flat(page.extract_text()) for page in reader.pages]


@pytest.fixture(scope="module")
def starts(book):
    """The page on which each document of _toc.yml starts, from the PDF's bookmarks (Chromium
    makes one per heading; it joins a wrapped heading's lines without a space, so titles are
    compared without spaces)."""
    reader, pages = book

    def bookmarks(outline):
        for item in outline:
            if isinstance(item, list):
                yield from bookmarks(item)
            else:
                yield item.title.replace(" ", ""), reader.get_destination_page_number(item) + 1

    marks = list(bookmarks(reader.outline))
    found, after = {}, 2  # page 1 is the title page, the contents follow
    for name, title in DOCUMENTS:
        key = title.replace(" ", "")
        page = next((p for t, p in marks if key in t and p > after), None)
        assert page is not None, f"no bookmark after page {after} for {title!r}"
        found[name] = after = page
    return found


def test_the_pdf_opens_with_a_title_page_and_a_table_of_contents(book):
    reader, pages = book
    assert pages[1].startswith("Transformers I") and "Printed" in pages[1]
    assert pages[2].startswith("Contents")
    assert reader.metadata.title == "Transformers I"


def test_every_chapter_starts_on_its_own_page_in_toc_order(book, starts):
    _, pages = book
    for name, title in DOCUMENTS:  # its title near the top of its first page
        top = pages[starts[name]].replace(" ", "")[:300]
        assert title.replace(" ", "") in top, f"{title!r} does not open page {starts[name]}"
    order = [starts[name] for name, _ in DOCUMENTS]
    assert order == sorted(order) and len(set(order)) == len(order), order
    # At least one page each, and the numbered chapters several (they are long).
    ends = order[1:] + [len(pages)]
    lengths = {name: end - start for (name, _), start, end in zip(DOCUMENTS, order, ends, strict=True)}
    assert all(n >= 1 for n in lengths.values()), lengths
    assert all(n >= 5 for name, n in lengths.items() if re.search(r"/\d\d_", name)), lengths
    assert len(pages) - 1 >= len(DOCUMENTS) + 2


def test_the_pdf_is_tagged_and_its_figures_carry_their_alt_texts(book):
    # A tagged PDF (a structure tree, the language) is what a screen reader reads; each figure's
    # description there is the alt text its cell gives the book.
    from pypdf.generic import ArrayObject, DictionaryObject

    reader, _ = book
    root = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"] and root["/Lang"] == "en"
    alts, stack = set(), [root["/StructTreeRoot"]]
    while stack:
        node = stack.pop().get_object()
        if isinstance(node, ArrayObject):
            stack.extend(node)
        elif isinstance(node, DictionaryObject):
            if "/Alt" in node:
                alts.add(_flat(str(node["/Alt"])))
            if "/K" in node:
                stack.append(node["/K"])
    expected = set()
    for name, _ in DOCUMENTS:
        notebook = ROOT / f"{name}.ipynb"
        if notebook.is_file():
            for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
                alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
                if alt:
                    expected.add(_flat(alt))
    assert len(expected) >= 20 and expected <= alts, sorted(expected - alts)[:3]


def test_no_page_is_blank(book):
    # Every page carries text besides its footer ("Transformers I <page>"): a blank page is a
    # layout slip (a chapter that filled its last page exactly once left one before the next).
    _, pages = book
    for number, text in enumerate(pages[1:], start=1):
        body = re.sub(rf"Transformers I {number}$", "", text).strip()
        assert len(body) >= 40, f"page {number} is (nearly) blank: {body!r}"


def test_the_contents_list_every_chapter_with_the_page_it_starts_on(book, starts):
    _, pages = book
    first_chapter = min(starts.values())
    contents = " ".join(p for p in pages[2:first_chapter] if p)
    for name, title in DOCUMENTS:
        match = re.search(rf"(\d+\. )?{re.escape(title)} (\d+)", contents)
        assert match, f"the contents do not list {title!r}"
        assert int(match.group(2)) == starts[name], (title, match.group(2), starts[name])


def test_no_unresolved_reference_and_no_math_left_as_source(book):
    _, pages = book
    for number, text in enumerate(pages[1:], start=1):
        assert "??" not in text, f"page {number}: an unresolved reference mark"
        assert "$$" not in text and "\\frac" not in text, f"page {number}: math left as source"


def _prose_words(notebook: Path) -> set[str]:
    """Words of the chapter's prose (markdown cells shown in the book), markup removed."""
    words = set()
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "markdown" or "remove-cell" in tags:
            continue
        text = "".join(cell["source"])
        text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", " ", text, flags=re.DOTALL)
        text = re.sub(r"^\s*(```|:::).*$|<[^>]+>|\]\([^)]*\)", " ", text, flags=re.MULTILINE)
        words |= set(re.findall(r"[A-Za-z]{5,}", text))
    return words


@pytest.mark.parametrize("name", [name for name, _ in DOCUMENTS if name.startswith("chapters/")])
def test_the_text_layer_holds_each_chapter_s_words(name, book, starts):
    _, pages = book
    following = sorted(p for p in starts.values() if p > starts[name])
    end = following[0] if following else len(pages)
    text = "".join(pages[starts[name]:end]).replace(" ", "")
    words = _prose_words(ROOT / f"{name}.ipynb")
    missing = sorted(w for w in words if w not in text)
    assert len(words) > 100, f"{name}: only {len(words)} words of prose found"
    assert len(missing) <= 0.01 * len(words), f"{name}: {len(missing)} words missing: {missing[:20]}"


def _figure_cells(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(1 for c in cells if c.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name"))


def test_figures_are_embedded_with_numbered_captions(book):
    reader, pages = book
    text = " ".join(pages)
    images = sum(len(page.images) for page in reader.pages)
    expected = 0
    for number, (name, _) in enumerate(d for d in DOCUMENTS if re.search(r"/\d\d_", d[0])):
        figures = _figure_cells(ROOT / f"{name}.ipynb")
        expected += figures
        for k in range(1, figures + 1):
            assert f"Fig. {number + 1}.{k} " in text, f"{name}: no caption 'Fig. {number + 1}.{k}'"
    assert expected >= 20 and images >= expected, (images, expected)


def _link_destinations(reader) -> list[int]:
    """0-based target page of every internal link annotation of the PDF."""
    named = reader.named_destinations
    targets = []
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            link = annotation.get_object()
            if link.get("/Subtype") == "/Link" and "/Dest" in link and link["/Dest"] in named:
                targets.append(reader.get_destination_page_number(named[link["/Dest"]]))
    return targets


def test_internal_links_lead_to_pages_of_the_book(book, starts):
    reader, pages = book
    targets = _link_destinations(reader)
    # The contents alone link every chapter and section; cross-references and citations add more.
    assert len(targets) >= 150, len(targets)
    assert all(0 <= t < len(reader.pages) for t in targets)
    for name, _ in DOCUMENTS:
        assert starts[name] - 1 in targets, f"no link leads to the first page of {name}"


def test_the_bibliography_lists_every_cited_work(book, starts):
    _, pages = book
    # (the bibliography style lower-cases titles: compared without case)
    bibliography = "".join(pages[starts["bibliography"]:]).replace(" ", "").lower()
    source = (ROOT / "references.bib").read_text(encoding="utf-8")
    titles = re.findall(r"^\s*title\s*=\s*[{\"](.+?)[}\"],?\s*$", source, re.MULTILINE)
    assert len(titles) >= 20
    for title in titles:
        words = re.sub(r"[{}\\]", "", title).split()[:4]
        assert "".join(words).lower() in bibliography, f"the bibliography lacks {title!r}"


def test_the_html_book_links_to_the_pdf():
    intro = (HTML / "intro.html").read_text(encoding="utf-8")
    assert 'href="transformers-i.pdf"' in intro, "the introduction does not link to the PDF"
    copy = HTML / "transformers-i.pdf"
    assert copy.is_file() and copy.read_bytes() == BOOK_PDF.read_bytes()


# ---------------------------------------------------------------- the slide handouts


class _DeckOutline(HTMLParser):
    """The slides of a built deck (innermost <section>s) and the text of their headings."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.slides, self.headings, self._heading = 0, 0, [], None
        self._has_child = []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            if self._has_child:
                self._has_child[-1] = True
            self._has_child.append(False)
        elif tag in ("h1", "h2", "h3") and self._has_child:
            self._heading = []
        elif tag == "script":
            self._heading = None

    def handle_endtag(self, tag):
        if tag == "section" and self._has_child:
            self.slides += not self._has_child.pop()
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(_flat("".join(self._heading)).rstrip("¶").strip())
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


@pytest.fixture(scope="module")
def handouts(tmp_path_factory):
    """Every deck printed by book_tools.handouts into a temporary folder."""
    if not all((HTML / deck_path(c)).is_file() for c in toc_chapters()):
        pytest.fail("the decks are not built: `make book` builds them")
    out = tmp_path_factory.mktemp("handouts")
    subprocess.run([sys.executable, "-m", "book_tools.handouts", "--html", str(HTML), "--out", str(out)],
                   check=True, timeout=600)
    return out


@pytest.mark.parametrize("chapter", toc_chapters())
def test_each_handout_has_a_page_per_slide_and_the_deck_s_headings(chapter, handouts):
    from pypdf import PdfReader

    deck = HTML / deck_path(chapter)
    outline = _DeckOutline()
    outline.feed(deck.read_text(encoding="utf-8"))
    reader = PdfReader(handouts / deck.name.replace(".slides.html", ".pdf"))
    assert outline.slides >= 8 and len(reader.pages) >= outline.slides, (outline.slides, len(reader.pages))
    text = _flat(" ".join(page.extract_text() for page in reader.pages))
    flat = text.replace(" ", "")
    title = next(title for name, title in DOCUMENTS if name == chapter)
    assert title.replace(" ", "") in flat, f"{deck.name}: the handout lacks the deck's title"
    headings = [h for h in outline.headings if h]
    assert len(headings) >= 5
    for heading in headings:
        # Formulas in a heading are typeset glyphs in the PDF; its words must all be there.
        words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\$[^$]*\$|\\\(.*?\\\)", " ", heading))
        missing = [w for w in words if w not in flat]
        assert not missing, f"{deck.name}: heading {heading!r} lacks {missing} in the handout"
