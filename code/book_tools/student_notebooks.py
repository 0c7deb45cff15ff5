"""Write the student notebooks: every numbered chapter with its exercise solutions taken out,
readable in plain Jupyter.

In the instructor notebooks (``chapters/NN_*.ipynb``) each coding exercise is a function whose
body holds the solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. nbgrader's
``ClearSolutions`` preprocessor replaces each such region with a stub that raises
``NotImplementedError``, so the student's notebook defines the same functions, runs top to
bottom, and its check cells answer "not attempted yet" until the student writes the bodies.
The student notebook also drops every stored output (the student runs the cells), the Markdown
solutions of the conceptual questions (worked answers), and the cells the book's pages remove
(speaker notes, and cells that compute a worked answer's numbers). Its Markdown is the book's,
rendered for a notebook viewer that knows no MyST: glued numbers filled in, exercises as quoted
blocks, citations, terms and cross-references as text (the decks' renderer, book_tools.myst).

Usage: python -m book_tools.student_notebooks --out _build/student [--html _build/html]
(--html also copies them into the built book, where each chapter page links to its own).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

from book_tools.myst import glued_values, myst_to_markdown  # shared with the decks
from book_tools.toc import ROOT, toc_chapters

NUMBERED = re.compile(r"chapters/\d\d_")
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def numbered_chapters() -> list[str]:
    """The numbered chapters of _toc.yml (the appendices have no exercises), e.g. 'chapters/01_x'."""
    return [chapter for chapter in toc_chapters() if NUMBERED.match(chapter)]


def _markdown_solution_ids(notebook: nbformat.NotebookNode) -> set[str]:
    """Markdown cells of a worked answer: a ``{solution}`` directive cell, or Markdown cells
    between ``{solution-start}`` and ``{solution-end}`` (the directive cells themselves stay, so
    the page structure is the same)."""
    ids, inside = set(), False
    for cell in notebook.cells:
        source = cell.source if cell.cell_type == "markdown" else ""
        if "{solution-start}" in source:
            inside = True
            continue
        if "{solution-end}" in source:
            inside = False
            continue
        if cell.cell_type == "markdown" and (inside or re.search(r"^`{3,}\{solution\}", source, re.M)):
            ids.add(cell.id)
    return ids


def student_version(notebook: nbformat.NotebookNode, chapter: int | None = None) -> nbformat.NotebookNode:
    """The student notebook of one instructor notebook (a new object; the input is unchanged).
    With the ``chapter``'s number, its exercises are numbered as in the book (Exercise 6.1, ...)."""
    notebook = nbformat.from_dict(notebook)  # a deep copy
    glued = glued_values(notebook)  # read before the outputs that hold them are cleared
    hidden = _markdown_solution_ids(notebook)
    inside = False
    for cell in notebook.cells:
        source = cell.source
        inside = (inside or "{solution-start}" in source) and "{solution-end}" not in source
        if inside and cell.cell_type == "code" and SOLUTION_MARKERS[0] not in source:
            raise ValueError(f"cell {cell.id}: a code cell of a solution without {SOLUTION_MARKERS[0]!r}")
    for cell in notebook.cells:
        if cell.id in hidden:
            cell.source = "*(The worked answer is in the book, under this exercise.)*"
    notebook.cells = [cell for cell in notebook.cells if not left_out(cell)]
    clear = ClearSolutions(enforce_metadata=False)
    clear.code_stub = {"python": '# YOUR CODE HERE\nraise NotImplementedError("write this function")'}
    notebook, _ = clear.preprocess(notebook, {"language": "python"})
    notebook, _ = ClearOutputPreprocessor().preprocess(notebook, {})
    exercises = 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = myst_to_markdown(cell.source, glued, decks=False).strip()
            while chapter is not None and "> **Exercise.**" in cell.source:
                exercises += 1
                numbered = f"> **Exercise {chapter}.{exercises}.**"
                cell.source = cell.source.replace("> **Exercise.**", numbered, 1)
    return notebook


def left_out(cell: nbformat.NotebookNode) -> bool:
    """A cell the student's notebook leaves out: one the book's page removes (speaker notes, a
    worked answer's computation), or the fence that opens or closes a solution."""
    if "remove-cell" in cell.metadata.get("tags", []):
        return True
    fence = re.fullmatch(r"\s*`{3,}\{solution-(start|end)\}[^`]*`{3,}\s*", cell.source)
    return cell.cell_type == "markdown" and fence is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    parser.add_argument("--html", type=Path, default=None, help="the built book, to copy them into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for chapter in numbered_chapters():
        source = ROOT / f"{chapter}.ipynb"
        student = student_version(nbformat.read(source, as_version=4), chapter=int(source.name[:2]))
        leftover = [m for cell in student.cells for m in SOLUTION_MARKERS if m in cell.source]
        if leftover:
            raise SystemExit(f"{source}: solution markers left after stripping: {leftover}")
        target = args.out / source.name
        nbformat.write(student, target)
        print(f"student notebook: {target}")
        if args.html is not None:
            (args.html / "student").mkdir(parents=True, exist_ok=True)
            shutil.copy(target, args.html / "student" / source.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
