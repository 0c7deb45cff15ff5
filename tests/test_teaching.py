"""The book as a student reads it: numbers bound to the cells that measure them, figures numbered
and described, speaker notes off the page, terms in a glossary, works cited and listed.

These tests read the committed notebooks (and, where a test says so, the built book in
_build/html, which `make test` builds first).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from book_tools.decks import deck_path
from book_tools.myst import glued_values
from book_tools.toc import toc_chapters

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"

CHAPTERS = toc_chapters()
NUMBERED = [c for c in CHAPTERS if re.match(r"^chapters/\d\d_", c)]
ROLE = re.compile(r"\{(?P<role>[a-z][\w:-]*)\}`(?P<text>[^`]*)`")
NUMBER = re.compile(r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?%?(?![\w]|\.\d)")  # not part of 127.0.0.1 or 2.13.0


def _notebook(chapter: str) -> dict:
    return json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _markdown(chapter: str) -> str:
    return "\n".join(_source(c) for c in _notebook(chapter)["cells"] if c["cell_type"] == "markdown")


def _prose(markdown: str) -> str:
    """The words of a Markdown text: without math, roles, inline code, link targets, and directive
    fences and options (a directive's body, such as an exercise's text, is prose)."""
    text = re.sub(r"^\s*:[\w-]+:.*$", " ", markdown, flags=re.M)  # directive options
    text = re.sub(r"^\s*```.*$", " ", text, flags=re.M)  # fence lines
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)  # display math
    text = re.sub(r"\$[^$\n]+\$", " ", text)  # inline math
    text = ROLE.sub(" ", text)  # {glue:text}`...`, {cite:p}`...`, ...
    text = re.sub(r"`[^`\n]*`", " ", text)  # inline code
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return text


def _measured_looking(token: str) -> bool:
    """A decimal, a percentage or a number with thousands separators: what a measurement prints."""
    return "." in token or "%" in token or "," in token


def _output_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("metadata", {}).get("scrapbook"):
            continue  # a glued value is the bound copy, not a typed one
        if "text" in output:
            parts.append("".join(output["text"]))
        for mime in ("text/plain", "text/markdown", "text/html"):
            data = output.get("data", {}).get(mime)
            if data:
                parts.append(re.sub(r"<[^>]+>", " ", "".join(data)))
    return "\n".join(parts)


def _output_numbers(chapter: str) -> set[str]:
    cells = _notebook(chapter)["cells"]
    text = "\n".join(_output_text(c) for c in cells if c["cell_type"] == "code")
    return {token for token in NUMBER.findall(text) if _measured_looking(token)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_measured_number_is_typed_into_the_prose(chapter):
    """A decimal in a chapter's prose that also appears in its outputs was copied by hand: glue it
    ({glue:text}`name:.2f`) from the cell that computes it instead, or say it without the number."""
    outputs = _output_numbers(chapter)
    prose = {token for token in NUMBER.findall(_prose(_markdown(chapter))) if _measured_looking(token)}
    copied = sorted(prose & outputs)
    assert not copied, f"{chapter}: numbers typed into the prose that its cells print: {copied}"


def test_the_number_pattern_skips_addresses_and_versions():
    assert NUMBER.findall("127.0.0.1 and torch 2.13.0 took 127.0 ms, 12 % or 1,024 rows.") == [
        "127.0", "12", "1,024"]


def test_the_book_glues_its_measured_numbers():
    """At least 30 measured values across the chapters reach the prose through glue."""
    total = 0
    for chapter in CHAPTERS:
        glued = glued_values(_notebook(chapter))
        used = {ROLE.match(m.group(0)).group("text").partition(":")[0]
                for m in ROLE.finditer(_markdown(chapter)) if m.group("role").startswith("glue")}
        missing = used - set(glued)
        assert not missing, f"{chapter}: the prose uses glue names no cell glues: {sorted(missing)}"
        for name, text in glued.items():
            assert not text.startswith(("np.", "tensor(")), (
                f"{chapter}: glue {name!r} holds {text!r}; glue a Python number (float(...), int(...))"
            )
        total += len(used)
    assert total >= 30, f"only {total} glued values are used in the prose"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_pages_speak_of_the_course_not_of_how_it_was_made(chapter):
    prose = _prose(_markdown(chapter)).lower()
    for phrase in (r"when (this|the) (chapter|book|course) was written", r"targets? set for the course",
                   r"\b20\d\d-\d\d-\d\d\b"):
        assert not re.search(phrase, prose), f"{chapter}: {phrase!r} in the prose"


# ---------------------------------------------------------------- speaker notes


def _built_page(chapter: str) -> str:
    """The chapter's page in the built book (the test is skipped when the book is not built)."""
    page = HTML / f"{chapter}.html"
    if not page.is_file():
        pytest.skip("the book is not built (make book)")
    return page.read_text(encoding="utf-8")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_speaker_notes_are_notes_cells_removed_from_the_page(chapter):
    for index, cell in enumerate(_notebook(chapter)["cells"]):
        is_notes = cell["metadata"].get("slideshow", {}).get("slide_type") == "notes"
        says_notes = _source(cell).lstrip().lower().startswith("speaker notes")
        assert is_notes == says_notes, f"{chapter} cell {index}: speaker notes and slide type disagree"
        if is_notes:
            assert "remove-cell" in cell["metadata"].get("tags", []), (
                f"{chapter} cell {index}: speaker notes without the remove-cell tag would show on the page"
            )


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_built_page_has_no_speaker_notes_and_the_deck_keeps_them(chapter):
    assert "Speaker notes" not in _built_page(chapter)
    has_notes = any(c["metadata"].get("slideshow", {}).get("slide_type") == "notes"
                    for c in _notebook(chapter)["cells"])
    deck = (HTML / deck_path(chapter)).read_text(encoding="utf-8")
    assert ("Speaker notes" in deck) == has_notes
    assert not has_notes or re.search(r'<aside class="notes">(?:(?!</aside>).)*Speaker notes', deck, re.S)


# ---------------------------------------------------------------- figures


def _figure_cells(chapter: str) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(_notebook(chapter)["cells"]) if c["cell_type"] == "code"
            and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_figure_has_a_name_a_caption_and_an_alt_text_and_is_referred_to(chapter):
    markdown = _markdown(chapter)
    for index, cell in _figure_cells(chapter):
        images = sum("image/png" in o.get("data", {}) for o in cell["outputs"])
        assert images == 1, f"{chapter} cell {index}: {images} images in one cell; one figure per cell"
        config = cell["metadata"].get("mystnb", {})
        figure, image = config.get("figure", {}), config.get("image", {})
        name = figure.get("name", "")
        assert re.fullmatch(r"fig-[a-z0-9-]+", name), f"{chapter} cell {index}: figure name {name!r}"
        assert len(figure.get("caption", "").split()) >= 6, f"{chapter} cell {index}: caption too short"
        alt = image.get("alt", "")
        assert len(alt.split()) >= 8 and not re.search(r"\.(png|svg)|[0-9a-f]{16}", alt), (
            f"{chapter} cell {index}: the alt text must describe the figure, got {alt!r}"
        )
        assert f"{{numref}}`{name}`" in markdown or re.search(rf"{{numref}}`[^`]*<{name}>`", markdown), (
            f"{chapter}: the text never refers to figure {name} by number"
        )


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_built_figures_are_numbered_with_their_captions_and_alt_texts(chapter):
    html = _built_page(chapter)
    for _, cell in _figure_cells(chapter):
        config = cell["metadata"]["mystnb"]
        assert f'id="{config["figure"]["name"]}"' in html
        assert f'alt="{config["image"]["alt"]}"' in html.replace("&#8217;", "'")
    numbered = re.findall(r'<span class="caption-number">Fig\. [\d.]+ </span>', html)
    assert len(numbered) == len(_figure_cells(chapter))


# ---------------------------------------------------------------- glossary and bibliography


def _glossary_terms() -> list[str]:
    text = (ROOT / "glossary.md").read_text(encoding="utf-8")
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, flags=re.S).group(1)
    return re.findall(r"^(\S.*)$", block, flags=re.M)


def test_the_glossary_defines_at_least_25_terms():
    terms = _glossary_terms()
    assert len(terms) >= 25
    assert len(set(terms)) == len(terms)


def _term_targets(markdown: str) -> list[str]:
    targets = []
    for match in ROLE.finditer(markdown):
        if match.group("role") == "term":
            text = match.group("text")
            shown = re.match(r"^.*<(.+)>$", text)
            targets.append(shown.group(1) if shown else text)
    return targets


@pytest.mark.parametrize("chapter", NUMBERED)
def test_chapters_link_their_terms_to_the_glossary(chapter):
    terms = {t.lower() for t in _glossary_terms()}
    targets = _term_targets(_markdown(chapter))
    assert len(set(targets)) >= 3, f"{chapter}: fewer than 3 glossary terms linked"
    unknown = sorted(t for t in targets if t.lower() not in terms)
    assert not unknown, f"{chapter}: {{term}} links to terms the glossary lacks: {unknown}"


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M))


def _cited(markdown: str) -> set[str]:
    return {key.strip() for m in ROLE.finditer(markdown) if m.group("role").startswith("cite")
            for key in m.group("text").split(",")}


@pytest.mark.parametrize("chapter", NUMBERED)
def test_chapters_cite_their_sources_and_end_with_further_reading(chapter):
    markdown = _markdown(chapter)
    cited = _cited(markdown)
    assert len(cited) >= 2, f"{chapter} cites {sorted(cited)}"
    assert cited <= _bib_keys(), f"{chapter}: keys missing from references.bib: {sorted(cited - _bib_keys())}"
    assert re.search(r"^#+ Further reading", markdown, flags=re.M), f"{chapter}: no Further reading"


def test_every_reference_is_cited_and_the_required_ones_are_there():
    required = {"vaswani2017attention", "bahdanau2015neural", "hochreiter1997long", "bengio1994learning",
                "pascanu2013difficulty", "sennrich2016neural", "wu2016google", "ba2016layer",
                "he2016deep", "xiong2020layer", "wang2020minilm", "reimers2019sentence", "clark2019what"}
    keys = _bib_keys()
    assert required <= keys
    cited = set().union(*(_cited(_markdown(chapter)) for chapter in CHAPTERS))
    assert keys <= cited, f"listed but never cited: {sorted(keys - cited)}"
