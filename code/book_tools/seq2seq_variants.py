"""The sequence-to-sequence runs chapter 6 reports but does not rerun: reversal, and the
Transformer's position tables.

Chapter 6 trains its three models on the copy task in about a minute. What did not work takes
longer to show (every variant, three seeds), so it is measured here once and recorded in
``code/transformer_course/data/seq2seq_variants.json`` (package data, so the chapter's notebook
finds it from any folder), which the chapter renders and checks:

- the copy task for the two GRUs, so that the chapter's main table, trained on one seed, has the
  three seeds of every model beside it;
- the reversal task (write the source backwards) for all three models, same recipe;
- the copy task for the Transformer with its default shared position table (the reference), the
  package's usual 0.02 initial scale for that table, separate tables for source and target, and
  sinusoidal positions.

Every run uses chapter 6's recipe (``seq2seq.COPY_TRAINING``, 15 warm-up steps), one torch thread
(``training.train``'s default), and its seed for the weights and the batches, so a rerun on the
same torch build gives the same numbers. About 10 s per run on a free CPU core; 3 seeds x 9 runs.

Usage: python -m book_tools.seq2seq_variants [--seeds 0 1 2] [--out FILE]  (default: the package's record)
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from book_tools import recording
from transformer_course import records, seq2seq, tasks

OUT = records.DATA / "seq2seq_variants.json"

# (task, model, positions, position_init_std, builder) of every run, for one seed.
VARIANTS: list[tuple[str, str, str | None, float | None, Callable[[], torch.nn.Module]]] = [
    ("copy", "gru", None, None, lambda: seq2seq.GRUSeq2Seq(attention=False)),
    ("copy", "gru+attention", None, None, lambda: seq2seq.GRUSeq2Seq(attention=True)),
    ("reverse", "gru", None, None, lambda: seq2seq.GRUSeq2Seq(attention=False)),
    ("reverse", "gru+attention", None, None, lambda: seq2seq.GRUSeq2Seq(attention=True)),
    ("reverse", "transformer", "shared", seq2seq.POSITION_INIT_STD, lambda: seq2seq.TransformerSeq2Seq()),
    ("copy", "transformer", "shared", seq2seq.POSITION_INIT_STD, lambda: seq2seq.TransformerSeq2Seq()),
    ("copy", "transformer", "shared", 0.02, lambda: seq2seq.TransformerSeq2Seq(position_init_std=0.02)),
    ("copy", "transformer", "separate", seq2seq.POSITION_INIT_STD,
     lambda: seq2seq.TransformerSeq2Seq(positions="separate")),
    ("copy", "transformer", "sinusoidal", None, lambda: seq2seq.TransformerSeq2Seq(positions="sinusoidal")),
]


def run(task_name: str, build: Callable[[], torch.nn.Module], seed: int) -> dict[str, dict[str, float]]:
    """Train one fresh model with chapter 6's recipe; its accuracies per test length."""
    task = tasks.CopyTask(reverse=task_name == "reverse")
    torch.manual_seed(seed)
    model = build()
    _, report = seq2seq.train_copy(model, task, seed=seed, device="cpu")
    return {
        "sequence_accuracy": {str(n): round(a, 4) for n, a in report.sequence_accuracy.items()},
        "token_accuracy": {str(n): round(a, 4) for n, a in report.token_accuracy.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = seq2seq.COPY_TRAINING
    record = {
        "recorded": recording.machine(),
        "recipe": {
            "steps": config.steps, "batch_size": config.batch_size, "lr": config.lr,
            "warmup": inspect.signature(seq2seq.train_copy).parameters["warmup"].default,
            "test_lengths": list(tasks.CopyTask().test_lengths), "num_test": 500,
        },
        "runs": [],
    }
    jobs = [(variant, seed) for variant in VARIANTS for seed in args.seeds]
    for (task_name, model, positions, init_std, build), seed in tqdm(jobs, desc="runs"):
        record["runs"].append({
            "task": task_name, "model": model, "positions": positions, "position_init_std": init_std,
            "seed": seed, **run(task_name, build, seed),
        })
    recording.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
