"""Sphinx extension: the HTML book links to its PDF once `make pdf` has printed it.

The introduction gets a "whole book as one PDF" line under its title, and the PDF is copied next
to it. When the PDF appears or changes, the introduction is rebuilt, so `make pdf`, which runs
`make book` after printing, leaves a book that links to the new PDF. (book_tools.pdf prints
it; how the single-page build that it prints writes myst-nb's folded cells is in
book_tools.sphinx.accessibility.) Named in _config.yml's extensions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from docutils import nodes

PDF = Path("_build") / "pdf" / "transformers-i.pdf"  # relative to the book's source folder


def _pdf(app) -> Path:
    return Path(app.srcdir) / PDF


def _stamp(app) -> tuple[int, int] | None:
    pdf = _pdf(app)
    return (pdf.stat().st_mtime_ns, pdf.stat().st_size) if pdf.is_file() else None


def rebuild_intro_when_the_pdf_changed(app, env, added, changed, removed) -> list[str]:
    if app.builder.name != "html" or getattr(env, "book_pdf_stamp", None) == _stamp(app):
        return []
    env.book_pdf_stamp = _stamp(app)
    return [app.config.root_doc]


def link_the_pdf(app, doctree: nodes.document, docname: str) -> None:
    if app.builder.name != "html" or docname != app.config.root_doc or not _pdf(app).is_file():
        return
    from pypdf import PdfReader

    pdf = _pdf(app)
    pages = len(PdfReader(pdf).pages)
    html = (
        '<p class="book-pdf-link">'
        f'<a class="reference external" href="{pdf.name}">The whole book as one PDF</a>'
        f" ({pages} pages, {pdf.stat().st_size / 2**20:.0f} MiB, printed by <code>make pdf</code>)</p>"
    )
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, nodes.raw("", html, format="html"))


def copy_the_pdf(app, exception) -> None:
    if exception is None and app.builder.name == "html" and _pdf(app).is_file():
        shutil.copyfile(_pdf(app), Path(app.outdir) / _pdf(app).name)


def setup(app):
    app.connect("env-get-outdated", rebuild_intro_when_the_pdf_changed)
    app.connect("doctree-resolved", link_the_pdf)
    app.connect("build-finished", copy_the_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
