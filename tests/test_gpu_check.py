"""make gpu-check: one command for everything that needs CUDA, and a clear refusal without it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from book_tools.gpu_check import steps
from book_tools.toc import toc_chapters


def test_the_check_covers_gpu_tests_every_chapter_and_the_cuda_benchmark(tmp_path):
    plan = {name: command for name, command, _ in steps(tmp_path)}
    tests, chapters, bench = plan.values()
    assert tests[1:5] == ["-m", "pytest", "-m", "gpu"]
    assert "--nbval-lax" in chapters and [c for c in chapters if c.endswith(".ipynb")] == [
        f"{chapter}.ipynb" for chapter in toc_chapters()
    ]
    assert bench[1:4] == ["benchmarks/bench_encoder.py", "--device", "cuda"]
    assert sum(limit for _, _, limit in steps(tmp_path)) <= 600


@pytest.mark.slow  # starts a Python process
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_and_runs_nothing(tmp_path):
    run = subprocess.run([sys.executable, "-m", "book_tools.gpu_check", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "no CUDA device" in run.stderr and "Nothing was run" in run.stderr
    assert not list(tmp_path.iterdir())
