"""The book's Sphinx extensions, named by dotted path in _config.yml (`sphinx: extra_extensions`
and `sphinx: config: extensions`):

- `slides_link`: each chapter's links to its deck and its student notebook;
- `pdf_link`: the introduction's link to the PDF that `make pdf` prints;
- `accessibility`: accessibility fixes of the themes' and extensions' HTML, with the theme
  templates (templates/) and the style sheet (static/) next to it.
"""
