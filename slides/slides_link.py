"""Sphinx extension: every chapter page links to its reveal.js deck ("Slides for this chapter").

The decks are built after the book by slides/build_decks.py into `slides/<stem>.slides.html` of
the built HTML; a chapter is any page under `chapters/` (only pages of _toc.yml are built, and
the deck builder takes the same list). The link goes right under the chapter's title, so the
notebooks themselves carry nothing about slides. Loaded through `local_extensions` in _config.yml.
"""

from __future__ import annotations

import posixpath

from docutils import nodes

CHAPTER_PREFIX = "chapters/"


def deck_uri(docname: str) -> str:
    """The deck's URL relative to the chapter page, e.g. '../slides/02_x.slides.html'."""
    deck = f"slides/{posixpath.basename(docname)}.slides.html"
    return posixpath.relpath(deck, posixpath.dirname(docname) or ".")


def add_slides_link(app, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "html" or not docname.startswith(CHAPTER_PREFIX):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        return
    html = (
        '<p class="chapter-slides-link">'
        f'<a class="reference external" href="{deck_uri(docname)}">Slides for this chapter</a>'
        " (reveal.js; press <kbd>s</kbd> for the speaker view, <kbd>f</kbd> for full screen)"
        "</p>"
    )
    section.insert(1, nodes.raw("", html, format="html"))


def setup(app):
    app.connect("doctree-resolved", add_slides_link)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
