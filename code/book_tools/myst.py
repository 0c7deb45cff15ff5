"""MyST to plain Markdown, for the slide decks and the student notebooks, which are read where
MyST is not known (nbconvert's Markdown, a plain Jupyter).

`myst_to_markdown` turns a directive such as ```{exercise} into a quoted block titled
"Exercise", drops `(label)=` targets, replaces {glue:text}`name:format` by the value the notebook
glued under that name (`glued_values`, formatted as the book formats it), {cite:p}`key` by
"(Author et al., year)" from references.bib, {numref}`label` by "the figure", and keeps the text
of any other {role}`text`.
"""

from __future__ import annotations

import functools
import re

import nbformat
from myst_nb.core.variables import format_plain_text
from pybtex.database import parse_file

from book_tools.toc import ROOT

_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[a-zA-Z][\w-]*)\}\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^:[\w-]+:.*$")
_TARGET = re.compile(r"^\([\w.:-]+\)=\s*$")
_ROLE = re.compile(r"\{(?P<role>[a-z][\w:-]*)\}`(?P<text>[^`]*)`")


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
