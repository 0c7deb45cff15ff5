"""How long each chapter takes to run, against the book's budget.

A chapter must run in about a minute on two CPU cores (two minutes for the chapters that train
several models), but a notebook never asserts its own run time: a student who reads slowly, or a
laptop busy with something else, would fail it. The budget is checked here instead, by executing
every chapter of ``_toc.yml`` in a fresh kernel, one after the other, and timing it.

Usage: python benchmarks/bench_chapters.py [--out _build/bench/chapters.md] [NOTEBOOK ...]

It writes a markdown report (and the same numbers to the ``.json`` beside it) and prints it; a
chapter over its budget is a MISS line, not an error. `make bench` runs it with the notebooks'
settings (two threads); the chapters are executed in memory and stay as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 60  # seconds on 2 CPU cores, for a chapter
LONGER_BUDGET_S = {"05_encoder": 120, "06_encoder_at_work": 120}  # they train several models


def toc_notebooks() -> list[Path]:
    """The chapters of _toc.yml, in order, as notebook paths."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [chapter["file"] for part in toc.get("parts", []) for chapter in part.get("chapters", [])]
    return [ROOT / f"{file}.ipynb" for file in files if file.startswith("chapters/")]


def run_seconds(notebook: Path) -> float:
    """Seconds to execute ``notebook`` top to bottom in a fresh kernel started in its folder
    (kernel start-up included); the executed copy is kept in memory only."""
    content = nbformat.read(notebook, as_version=4)
    started = time.perf_counter()
    NotebookClient(content, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter of _toc.yml")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "bench" / "chapters.md")
    args = parser.parse_args(argv)
    rows = []
    for notebook in args.notebooks or toc_notebooks():
        print(f"running {notebook.name} ...", file=sys.stderr, flush=True)
        seconds = run_seconds(notebook)
        budget = LONGER_BUDGET_S.get(notebook.stem, BUDGET_S)
        rows.append({"chapter": notebook.stem, "seconds": round(seconds, 1), "budget_s": budget,
                     "within": seconds <= budget})
    lines = [
        "# Chapter run times",
        "",
        f"Each chapter executed once in a fresh kernel; {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
        f"{os.getloadavg()[0]:.2f} at the end.",
        "",
        "| chapter | seconds | budget (s) | |",
        "| --- | ---: | ---: | --- |",
        *(f"| {row['chapter']} | {row['seconds']:.1f} | {row['budget_s']} | "
          f"{'PASS' if row['within'] else 'MISS'} |" for row in rows),
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
