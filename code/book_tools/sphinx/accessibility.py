"""Sphinx extension: the book's accessibility fixes, for what the themes and extensions write.

tests/test_browser.py runs axe-core on every built page and fails on a "serious" or "critical"
violation; each fix below names the rule it answers. Named in _config.yml's extensions; it
also registers the two folders next to it: templates/ (overrides of pydata-sphinx-theme
components, which take precedence over the theme's own) and static/ (its style sheet).

- Citations (the Bibliography page): docutils writes each entry as role="doc-biblioentry", a
  role DPUB-ARIA 1.1 deprecated, so the surrounding role="list" has no list items
  (aria-required-children, critical). Each entry becomes a plain list item.
- Hidden code cells (myst-nb's hide-input / hide-cell): the <summary> reads "Show code cell
  content" but is named "Toggle hidden content" by an aria-label, so someone who operates the page
  by voice cannot say what they see (label-content-name-mismatch, serious). The aria-label goes:
  the summary is named by its visible text. (Both fixes apply to the single-page build that
  `make pdf` prints as well, for which myst-nb registers no writer of folded cells at all.)
- templates/search-button-field.html, templates/theme-switcher.html: the same rule for the search
  button ("Search Ctrl+K" shown, "Search" as its name) and the colour-mode button (icon titles
  that are not part of its name).
- templates/navbar-logo.html: the book's title at the top of the sidebar sits in a navigation
  landmark of its own (region, moderate: the sidebar around it is no landmark).
- static/book-accessibility.css: the links' colour, for contrast on tinted boxes, and code that
  wraps its long lines instead of scrolling sideways (reflow; see the file).

The style sheet is not in a top-level _static/ folder on purpose: when that folder exists,
Jupyter Book adds every .js file of every static path, including the MathJax copy in _assets/, as
a script to every page.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput, visit_HideCellInput

HERE = Path(__file__).resolve().parent
STYLE_SHEET = "book-accessibility.css"


def visit_citation(self, node: nodes.citation) -> None:
    """docutils' citation, as a list item instead of the deprecated doc-biblioentry role."""
    type(self).visit_citation(self, node)
    self.body[-1] = self.body[-1].replace('role="doc-biblioentry"', 'role="listitem"')


def depart_citation(self, node: nodes.citation) -> None:
    type(self).depart_citation(self, node)


def visit_hidden_cell(self, node: HideCodeCellNode) -> None:
    """myst-nb's folded cell, its <summary> named by the text it shows."""
    start = len(self.body)
    visit_HideCellInput(self, node)
    for i in range(start, len(self.body)):
        self.body[i] = self.body[i].replace('<summary aria-label="Toggle hidden content">', "<summary>")


def _register_theme_files(app, config) -> None:
    # First in templates_path: ahead of the theme's components folder, which pydata-sphinx-theme
    # appends to the same list when the builder starts.
    config.templates_path.insert(0, str(HERE / "templates"))
    config.html_static_path.append(str(HERE / "static"))


def setup(app):
    # After myst_nb in the extensions list: these replace the visitors it registered, for the HTML
    # book and for the single page that `make pdf` prints (myst-nb registers none for that one).
    for builder in ("html", "singlehtml"):
        app.add_node(nodes.citation, override=True, **{builder: (visit_citation, depart_citation)})
        app.add_node(HideCodeCellNode, override=True,
                     **{builder: (visit_hidden_cell, depart_HideCellInput)})
    app.connect("config-inited", _register_theme_files)
    app.add_css_file(STYLE_SHEET)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
