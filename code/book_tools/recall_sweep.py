"""The recall runs chapter 1 reports but does not rerun: every model at distances up to 200, with
the LSTM's forget gate started three ways, on three seeds.

Chapter 1 trains its RNN and LSTM live at distances 5 to 50. Whether the LSTM's failure at 50 is
the LSTM's or its initialisation's takes more runs than a chapter should repeat (distances 100
and 200 cost ten times more per step, and every variant runs on three seeds), so it is measured
here once and recorded in ``code/transformer_course/data/recall_sweep.json`` (package data, so the
chapter's notebook finds it from any folder), which the chapter renders and checks:

- the tanh RNN and the encoder of chapter 5, as ``models.make_recall_model`` builds them;
- the LSTM with PyTorch's default initialisation and with its forget gate's bias started at 1
  and at 3 (``make_recall_model("lstm", forget_bias=...)``: the same weights otherwise).

A second part, ``task_variants``, holds chapter 5's variants of the task at d = 10 and 50 on the
same seeds: the encoder without positional encoding (``positional="none"``), and the harder task
whose distractors are drawn from the answer symbols (``shared_symbols=True``) for the encoder with
and without positions and for the RNN and the two LSTMs (default and forget bias 3), which read
in order and need no positional encoding.

Every run is ``distance_grid.run_distance_grid``'s: the budget of ``distance_grid.STEPS``
(400 steps for the recurrent models, 100 for the encoder), ``training.TrainConfig()``, one torch
thread, the seed for the data, the weights and the batches; a rerun on the same torch build gives
the same numbers. About 8 minutes on a free CPU core for both parts
(``--part`` records one and keeps the other from the existing file).

Usage: python -m book_tools.recall_sweep [--part all|distances|task_variants] [--seeds 0 1 2]
       [--distances 5 10 25 50 100 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from book_tools import recording
from transformer_course import distance_grid, models, records, training

OUT = records.DATA / "recall_sweep.json"
DISTANCES = (5, 10, 25, 50, 100, 200)
FORGET_BIASES = (None, 1.0, 3.0)  # None: PyTorch's default initialisation
VARIANT_DISTANCES = (10, 50)


def variants() -> list[tuple[str, float | None, Callable[[], torch.nn.Module]]]:
    """(model kind, LSTM forget bias, builder) of every model of the sweep."""
    lstms = [("lstm", bias, lambda bias=bias: models.make_recall_model("lstm", forget_bias=bias))
             for bias in FORGET_BIASES]
    return [("rnn", None, lambda: models.make_recall_model("rnn")), *lstms,
            ("encoder", None, lambda: models.make_recall_model("encoder"))]


def encoder_without_positions() -> torch.nn.Module:
    """Chapter 5's encoder with the same token vectors and no positional encoding."""
    return models.EncoderClassifier(positional="none")


def task_variants() -> list[tuple[str, float | None, str | None, bool, Callable[[], torch.nn.Module]]]:
    """(model kind, LSTM forget bias, positions, shared symbols, builder) of chapter 5's variants.

    ``positions`` is the encoder's positional encoding ("sinusoidal" or "none"), None for the
    recurrent models; the encoder with positions on distinct symbols is in the main runs.
    """
    recurrent = [("rnn", None, lambda: models.make_recall_model("rnn")),
                 *[("lstm", bias, lambda bias=bias: models.make_recall_model("lstm", forget_bias=bias))
                   for bias in (None, 3.0)]]
    return [("encoder", None, "none", False, encoder_without_positions),
            ("encoder", None, "sinusoidal", True, lambda: models.make_recall_model("encoder")),
            ("encoder", None, "none", True, encoder_without_positions),
            *[(kind, bias, None, True, build) for kind, bias, build in recurrent]]


def _grid_runs(grid: distance_grid.GridResult, **fields) -> list[dict]:
    """One record entry per (distance, seed) of ``grid``, each with ``fields``."""
    return [{**fields, "distance": distance, "seed": seed, "accuracy": round(float(grid.accuracy[i, j]), 4)}
            for i, distance in enumerate(grid.distances) for j, seed in enumerate(grid.seeds)]


def _timed_grid(label: str, build: Callable[[], torch.nn.Module], kind: str, seeds: list[int],
                distances: tuple[int, ...], shared_symbols: bool = False) -> distance_grid.GridResult:
    start = time.perf_counter()
    grid = distance_grid.run_distance_grid(build, steps=distance_grid.STEPS[kind], seeds=seeds,
                                           distances=distances, shared_symbols=shared_symbols, device="cpu",
                                           progress=False)
    print(f"{label}: {time.perf_counter() - start:.0f} s", flush=True)
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "distances", "task_variants"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--distances", type=int, nargs="+", default=list(DISTANCES))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = training.TrainConfig()
    kept = json.loads(args.out.read_text()) if args.part != "all" and args.out.exists() else {}
    record = {
        "recorded": recording.machine(),
        "recipe": {"steps": dict(distance_grid.STEPS), "batch_size": config.batch_size, "lr": config.lr,
                   "clip_norm": config.clip_norm, "optimizer": config.optimizer},
        "runs": kept.get("runs", []),
        "task_variants": kept.get("task_variants", []),
    }
    if args.part in ("all", "distances"):
        record["runs"] = []
        for kind, bias, build in variants():
            grid = _timed_grid(f"{kind}, forget bias {bias}", build, kind, args.seeds, tuple(args.distances))
            record["runs"] += _grid_runs(grid, model=kind, forget_bias=bias)
    if args.part in ("all", "task_variants"):
        record["task_variants"] = []
        for kind, bias, positions, shared, build in task_variants():
            grid = _timed_grid(f"{kind}, forget bias {bias}, positions {positions}, shared symbols {shared}",
                               build, kind, args.seeds, VARIANT_DISTANCES, shared_symbols=shared)
            record["task_variants"] += _grid_runs(grid, model=kind, forget_bias=bias, positions=positions,
                                                  shared_symbols=shared)
    recording.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
