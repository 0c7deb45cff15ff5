"""Sphinx extension: every chapter page links to its reveal.js deck ("Slides for this chapter"),
and every numbered chapter to its student notebook (book_tools.student_notebooks writes them
into `student/` of the built HTML).

The decks are built after the book by book_tools.decks into `slides/<stem>.slides.html` of the
built HTML; a chapter is any page under `chapters/` (only pages of _toc.yml are built, and the
deck builder takes the same list). The link goes right under the chapter's title, so the
notebooks themselves carry nothing about slides. Named in _config.yml's extensions.
"""

from __future__ import annotations

import posixpath
import re

from docutils import nodes

CHAPTER_PREFIX = "chapters/"
NUMBERED = re.compile(r"\d\d_")  # numbered chapters (not the appendices) have exercises


def deck_uri(docname: str) -> str:
    """The deck's URL relative to the chapter page, e.g. '../slides/02_x.slides.html'."""
    deck = f"slides/{posixpath.basename(docname)}.slides.html"
    return posixpath.relpath(deck, posixpath.dirname(docname) or ".")


def student_uri(docname: str) -> str:
    """The student notebook's URL relative to the chapter page, e.g. '../student/02_x.ipynb'."""
    notebook = f"student/{posixpath.basename(docname)}.ipynb"
    return posixpath.relpath(notebook, posixpath.dirname(docname) or ".")


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
    if NUMBERED.match(posixpath.basename(docname)):  # the appendices have no exercises
        html += (
            '<p class="chapter-student-link">'
            f'<a class="reference external" href="{student_uri(docname)}" download>'
            "Student notebook</a> (the exercises without their solutions, to run in Jupyter)</p>"
        )
    section.insert(1, nodes.raw("", html, format="html"))


def setup(app):
    app.connect("doctree-resolved", add_slides_link)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
