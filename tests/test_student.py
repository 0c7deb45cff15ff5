"""make student: the student notebooks keep every cell of the chapter but no line of a solution,
and run top to bottom with every check answering "not attempted yet". They run under another
processor's code paths (tests/other_cpu.env), and the cells they share with the book must print
the book's stored outputs: the second-processor pass of the numbered chapters in `make test`."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import coalesce_streams, get_sanitize_patterns

from book_tools.myst import glued_values
from book_tools.student_notebooks import left_out, main, numbered_chapters, student_version
from book_tools.toc import toc_chapters

ROOT = Path(__file__).resolve().parents[1]

CHECK = re.compile(r'^exercises\.check\("([^"]+)"', re.M)


def instructor(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)


def solution_lines(notebook: nbformat.NotebookNode) -> list[str]:
    """The lines between BEGIN SOLUTION and END SOLUTION that say something (not blank, not a
    comment, not a bare `return x`-sized line that could appear anywhere)."""
    lines = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 15 and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("chapter", numbered_chapters())
def test_student_notebook_keeps_every_cell_of_the_page_and_no_solution(chapter):
    teacher = instructor(chapter)
    student = student_version(teacher)
    kept = [c for c in teacher.cells if not left_out(c)]
    notes = [c for c in teacher.cells if "Speaker notes" in c.source]
    assert notes and all(left_out(c) for c in notes)  # speaker notes are not a student's
    assert [c.id for c in student.cells] == [c.id for c in kept]
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in kept]
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    # A line the chapter also shows outside its solutions (say `with torch.no_grad():`) is no secret.
    shown = {
        line.strip()
        for c in teacher.cells if c.cell_type == "code" and "### BEGIN SOLUTION" not in c.source
        for line in c.source.splitlines()
    }
    secret = [line for line in solution_lines(teacher) if line not in shown]
    assert secret, f"{chapter}: no solution region found to strip"
    leaked = [line for line in secret if line in code]
    assert not leaked, f"{chapter}: solution lines left in the student notebook: {leaked}"
    assert "### BEGIN SOLUTION" not in code and code.count("raise NotImplementedError") >= 1
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    markdown = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert not re.search(r"^`{3,}\{solution\}", markdown, re.M), f"{chapter}: a worked answer is left"
    # Among the code cells only the solutions changed: every other one is the instructor's, word for word.
    changed = [t for t, s in zip(kept, student.cells, strict=True) if t.source != s.source]
    assert all("### BEGIN SOLUTION" in t.source or t.cell_type == "markdown" for t in changed), changed


# What a notebook viewer without MyST would show raw, or what a student must not meet.
RAW = re.compile(r"\{(glue|cite|term|numref|ref|exercise|solution|admonition)[:\w-]*\}"
                 r"|^:label:|^\(\w[\w.:-]*\)=|Speaker notes", re.M)
TIMING_ASSERT = re.compile(r"^\s*assert\b.*\b(elapsed|\w*seconds)\b\s*<", re.M)


@pytest.mark.parametrize("chapter", numbered_chapters())
def test_student_notebook_reads_like_the_book_in_plain_jupyter(chapter):
    """Its Markdown is rendered (glued numbers filled in, exercises numbered as in the book,
    citations, terms and cross-references as text), it has no speaker notes, and no cell asserts
    a run time."""
    teacher = instructor(chapter)
    number = int(Path(chapter).name[:2])
    student = student_version(teacher, chapter=number)
    markdown = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert not RAW.findall(markdown), f"{chapter}: MyST markup left: {sorted(set(RAW.findall(markdown)))}"
    glued = glued_values(teacher)
    shown = [name for name in glued if re.search(rf"\b{name}\b", markdown)]
    assert not shown, f"{chapter}: glue names instead of their values: {shown}"
    exercises = sum(len(re.findall(r"^`{3,}\{exercise\}", c.source, re.M)) for c in teacher.cells
                    if c.cell_type == "markdown")
    numbered = re.findall(rf"^> \*\*Exercise {number}\.(\d+)\.\*\*$", markdown, re.M)
    assert exercises >= 3 and numbered == [str(k) for k in range(1, exercises + 1)], numbered
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    timing = TIMING_ASSERT.search(code)
    assert not timing, f"{chapter}: a run-time assert: {timing and timing.group(0)}"


@pytest.mark.parametrize("chapter", [c for c in toc_chapters() if c.startswith("chapters/")])
def test_no_chapter_asserts_its_own_run_time(chapter):
    """A student who reads slowly, or a busy laptop, must not fail a chapter: run-time budgets
    are measured by benchmarks/bench_chapters.py, outside the notebooks."""
    code = "\n".join(c.source for c in instructor(chapter).cells if c.cell_type == "code")
    timing = TIMING_ASSERT.search(code)
    assert not timing, f"{chapter}: a run-time assert: {timing and timing.group(0)}"


def test_make_student_writes_one_notebook_per_numbered_chapter(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert written == sorted(Path(c).name + ".ipynb" for c in numbered_chapters())
    assert all(json.loads(p.read_text())["nbformat"] == 4 for p in tmp_path.glob("*.ipynb"))


# The notebook settings of `make execute` and `make nbval` (the Makefile's NB_ENV).
NB_ENV = {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONHASHSEED": "0",
          "OMP_WAIT_POLICY": "PASSIVE"}
SANITIZE = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
NOT_COMPARED = {"image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json"}  # as nbval


def compared_outputs(outputs: list) -> dict[str, list[str]]:
    """What nbval compares of a cell's outputs: each stream's text and each MIME type's data,
    sanitized with tests/nbval_sanitize.cfg."""
    compared: dict[str, list[str]] = {}
    for output in coalesce_streams([nbformat.from_dict(o) for o in outputs]):
        if output.output_type == "stream":
            items = [(output.name, output.text)]
        elif output.output_type == "error":
            items = [("error", output.ename)]
        else:
            items = output.get("data", {}).items()
        for key, value in items:
            if key not in NOT_COMPARED:
                text = value if isinstance(value, str) else "".join(value)
                for pattern, replacement in SANITIZE:
                    text = re.sub(pattern, replacement, text)
                compared.setdefault(key, []).append(text)
    return compared


@pytest.mark.slow  # runs each chapter once more, in a fresh kernel
@pytest.mark.parametrize("chapter", numbered_chapters())
def test_student_notebook_runs_alone_on_another_processor_and_shows_the_book_s_outputs(chapter, tmp_path,
                                                                                        other_cpu_env):
    """The student's copy, alone in an empty folder (as a student downloads it) and run there
    under another processor's code paths (tests/other_cpu.env): every check answers "not
    attempted yet", and every cell it shares with the book prints what the book stored, digit for
    digit, as nbval compares them (the book's own cells are compared on this processor by `make
    nbval`). This is the second-processor pass of the numbered chapters."""
    from nbclient import NotebookClient

    book = instructor(chapter)
    copy = tmp_path / f"{Path(chapter).name}.ipynb"
    nbformat.write(student_version(book, chapter=int(Path(chapter).name[:2])), copy)
    student = nbformat.read(copy, as_version=4)
    env = {**os.environ, **NB_ENV, **other_cpu_env}
    NotebookClient(student, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)  # started in tmp_path
    verdicts = {}
    for cell in student.cells:
        if cell.cell_type == "code" and (match := CHECK.search(cell.source)):
            verdicts[match.group(1)] = "".join(o.get("text", "") for o in cell.outputs).strip()
    assert verdicts, f"{chapter}: no check cell"
    assert all(v == f"{label}: not attempted yet" for label, v in verdicts.items()), verdicts

    stored = {cell.id: cell for cell in book.cells}
    shared = [cell for cell in student.cells
              if cell.cell_type == "code" and cell.source == stored[cell.id].source  # not an exercise
              and not CHECK.search(cell.source)  # not a check, whose verdict is the student's
              and "nbval-ignore-output" not in cell.metadata.get("tags", [])]  # a compared output
    assert len(shared) >= 10, f"{chapter}: only {len(shared)} cells to compare"
    differ = {}
    for cell in shared:
        old, new = compared_outputs(stored[cell.id].outputs), compared_outputs(cell.outputs)
        if old != new:
            old_lines, new_lines = ("\n".join(f"{key}: {value}" for key, values in outputs.items()
                                               for value in values).splitlines() for outputs in (old, new))
            lines = difflib.unified_diff(old_lines, new_lines, "stored", "now", lineterm="", n=0)
            differ[cell.id] = f"cell {cell.id}:\n" + "\n".join(lines)
    report = "\n".join(differ.values())
    assert not differ, f"{chapter}: outputs that differ on another processor's code paths:\n{report}"
