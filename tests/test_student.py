"""make student: the student notebooks keep every cell of the chapter but no line of a solution,
and run top to bottom with every check answering "not attempted yet"."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from student_notebooks import main, numbered_chapters, student_version  # noqa: E402

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
def test_student_notebook_keeps_every_cell_and_no_solution(chapter):
    teacher = instructor(chapter)
    student = student_version(teacher)
    assert [c.id for c in student.cells] == [c.id for c in teacher.cells]
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in teacher.cells]
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
    # Only the solutions changed: every other cell is the instructor's, word for word.
    changed = [t.id for t, s in zip(teacher.cells, student.cells, strict=True) if t.source != s.source]
    assert all(
        "### BEGIN SOLUTION" in t.source or t.cell_type == "markdown"
        for t in teacher.cells if t.id in changed
    ), changed


def test_make_student_writes_one_notebook_per_numbered_chapter(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert written == sorted(Path(c).name + ".ipynb" for c in numbered_chapters())
    assert all(json.loads(p.read_text())["nbformat"] == 4 for p in tmp_path.glob("*.ipynb"))


@pytest.mark.slow  # runs each chapter once more, in a fresh kernel
@pytest.mark.parametrize("chapter", numbered_chapters())
def test_student_notebook_runs_and_every_check_says_not_attempted_yet(chapter, tmp_path):
    from nbclient import NotebookClient

    student = student_version(instructor(chapter))
    env = {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONHASHSEED": "0"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        NotebookClient(student, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    verdicts = {}
    for cell in student.cells:
        if cell.cell_type == "code" and (match := CHECK.search(cell.source)):
            verdicts[match.group(1)] = "".join(o.get("text", "") for o in cell.outputs).strip()
    assert verdicts, f"{chapter}: no check cell"
    assert all(v == f"{label}: not attempted yet" for label, v in verdicts.items()), verdicts
