"""The distance grid of chapters 1 and 5: a fresh model trained at every distance and seed.

:func:`run_distance_grid` trains one model per distance of
:data:`~transformer_course.tasks.DISTANCES` and per seed with
:func:`~transformer_course.training.train`, and collects the test accuracies. Chapter 1 runs it
for the RNN and the LSTM, chapter 5 for the encoder, with the same data, budgets (:data:`STEPS`)
and seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from . import _checks, runtime
from .models import MODEL_KINDS, make_recall_model
from .runtime import resolve_device
from .tasks import DISTANCES, RecallTask
from .training import ProgressBar, TrainConfig, TrainResult, train

__all__ = ["STEPS", "GridResult", "run_distance_grid"]


STEPS = {"rnn": 400, "lstm": 400, "encoder": 100}  # optimizer steps per distance, with TrainConfig()


@dataclass
class GridResult:
    """Test accuracies of one model on every distance and seed of a grid."""

    distances: tuple[int, ...]
    seeds: tuple[int, ...]
    accuracy: np.ndarray  # (len(distances), len(seeds)): final test accuracy of each run
    runs: dict[tuple[int, int], TrainResult]  # (distance, seed) -> its training.TrainResult
    seconds: float  # wall-clock time of the whole grid (data, models and training)
    models: dict[tuple[int, int], nn.Module] = field(default_factory=dict)  # trained, in eval mode

    def mean_accuracy(self) -> np.ndarray:
        """Accuracy averaged over the seeds, one per distance: (len(distances),)."""
        return self.accuracy.mean(axis=1)


def run_distance_grid(
    model: str | Callable[[], nn.Module],
    steps: int | None = None,
    distances: Sequence[int] = DISTANCES,
    seeds: Sequence[int] = (0,),
    config: TrainConfig | None = None,
    shared_symbols: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    num_threads: int | None = 1,
) -> GridResult:
    """Train a fresh model on the recall task at every distance, for every seed.

    Run (distance d, seed s) uses the data ``RecallTask(d, seed=s, shared_symbols=...)``,
    initial weights drawn after ``torch.manual_seed(s)`` (the caller's random state is left
    untouched) and mini-batches ordered by ``s``: the same runs, number for number, wherever it
    is called from, up to floating-point differences between machines.

    Args:
        model: one of :data:`~transformer_course.models.MODEL_KINDS` (built by
            :func:`~transformer_course.models.make_recall_model`), or a function that returns a
            fresh model.
        steps: optimizer steps per run. Default: ``STEPS[model]`` for a named model (required
            for a function).
        distances: the distances d. Default: :data:`~transformer_course.tasks.DISTANCES`.
        seeds: the seeds. Default: ``(0,)``.
        config: the rest of the training set-up; its ``steps`` is replaced by ``steps``.
            Default: ``TrainConfig()`` (Adam, lr 3e-3, batch 64, clipping 1.0).
        shared_symbols: draw distractors from the answer symbols (see
            :func:`~transformer_course.tasks.make_recall_data`). Default: False.
        device: as in :func:`~transformer_course.training.train`.
        progress: one tqdm bar over all the steps of the grid. Default: True.
        num_threads: as ``TrainConfig.num_threads``. Default: 1.

    Returns:
        A :class:`GridResult`.

    Examples:
        >>> grid = run_distance_grid("lstm", steps=2, distances=(5, 6), progress=False)
        >>> grid.accuracy.shape
        (2, 1)
    """
    if isinstance(model, str):
        if model not in MODEL_KINDS:
            raise ValueError(f"model: expected one of {MODEL_KINDS} or a function, got {model!r}")
        kind = model
        steps = STEPS[kind] if steps is None else steps
        make_model: Callable[[], nn.Module] = lambda: make_recall_model(kind)  # noqa: E731
    elif callable(model):
        if steps is None:
            raise ValueError("steps: required when model is a function")
        make_model = model
    else:
        raise TypeError(f"model: expected a model kind (str) or a function, got {type(model).__name__}")
    _checks.positive_int(steps, "steps")
    distances, seeds = tuple(distances), tuple(seeds)
    if not distances or not seeds:
        raise ValueError("distances, seeds: expected at least one of each")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig or None, got {type(config).__name__}")
    config = replace(config, steps=steps, num_threads=num_threads)
    device = resolve_device(device)

    accuracy = np.zeros((len(distances), len(seeds)))
    runs: dict[tuple[int, int], TrainResult] = {}
    models: dict[tuple[int, int], nn.Module] = {}
    start = time.perf_counter()
    total = len(distances) * len(seeds) * steps
    with runtime.progress_bar(total, "distance grid", enabled=progress) as bar:
        for i, distance in enumerate(distances):
            for j, seed in enumerate(seeds):
                bar.set_postfix(d=distance, seed=seed)
                data = RecallTask(distance, seed=seed, shared_symbols=shared_symbols).make()
                with torch.random.fork_rng(devices=[]):  # seeded weights, caller's RNG untouched
                    torch.manual_seed(seed)
                    net = make_model()
                run = train(net, data, config, seed, device, [ProgressBar(bar=bar)])
                runs[(distance, seed)] = run
                models[(distance, seed)] = net
                accuracy[i, j] = run.final_accuracy
    return GridResult(distances, seeds, accuracy, runs, time.perf_counter() - start, models)
