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

Every run is ``distance_grid.run_distance_grid``'s: the budget of ``distance_grid.STEPS``
(400 steps for the recurrent models, 100 for the encoder), ``training.TrainConfig()``, one torch
thread, the seed for the data, the weights and the batches; a rerun on the same torch build gives
the same numbers. About 6 minutes on a free CPU core.

Usage: python -m book_tools.recall_sweep [--seeds 0 1 2] [--distances 5 10 25 50 100 200] [--out FILE]
"""

from __future__ import annotations

import argparse
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


def variants() -> list[tuple[str, float | None, Callable[[], torch.nn.Module]]]:
    """(model kind, LSTM forget bias, builder) of every model of the sweep."""
    lstms = [("lstm", bias, lambda bias=bias: models.make_recall_model("lstm", forget_bias=bias))
             for bias in FORGET_BIASES]
    return [("rnn", None, lambda: models.make_recall_model("rnn")), *lstms,
            ("encoder", None, lambda: models.make_recall_model("encoder"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--distances", type=int, nargs="+", default=list(DISTANCES))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = training.TrainConfig()
    record = {
        "recorded": recording.machine(),
        "recipe": {"steps": dict(distance_grid.STEPS), "batch_size": config.batch_size, "lr": config.lr,
                   "clip_norm": config.clip_norm, "optimizer": config.optimizer},
        "runs": [],
    }
    for kind, bias, build in variants():
        start = time.perf_counter()
        grid = distance_grid.run_distance_grid(build, steps=distance_grid.STEPS[kind], seeds=args.seeds,
                                               distances=args.distances, device="cpu", progress=False)
        for i, distance in enumerate(grid.distances):
            for j, seed in enumerate(grid.seeds):
                record["runs"].append({"model": kind, "forget_bias": bias, "distance": distance, "seed": seed,
                                       "accuracy": round(float(grid.accuracy[i, j]), 4)})
        print(f"{kind}, forget bias {bias}: {time.perf_counter() - start:.0f} s", flush=True)
    recording.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
