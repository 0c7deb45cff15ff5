"""Relative positions beyond the trained length: does a position encoding let a model use them?

The lecture notes say the sinusoidal encoding is designed so that relative positions can be
learned easily. For the table alone that is exact: PE(t - k) = M_(-k) PE(t) with one fixed
rotation M_(-k) for every position t (:func:`~transformer_course.positional.relative_shift_matrix`).
A model, though, never sees the table alone: token vectors are added to it, and the queries and
keys are learned projections of the sum. Whether the model learns "k places back" as one relation,
valid at positions it has never seen, is a question for an experiment. This module holds it:

- the **task** (:class:`ShiftTask`): read T random symbols and write, at every position t >= k,
  the symbol k places back, ``y_t = x_(t-k)``. Only the offset matters; positions t < k have no
  target (:data:`IGNORE`, skipped by the loss and the scores);
- the **model** (:class:`ShiftModel`): :class:`~transformer_course.embedding.InputEmbedding`
  (sinusoidal or learned positions), a one-layer
  :class:`~transformer_course.encoder.Encoder` and a linear readout to the symbols;
- the **protocol** (:func:`train_shift`, :func:`run_comparison`): train on inputs of
  ``train_len`` tokens only (positions 0 .. train_len - 1), with
  :func:`~transformer_course.training.train` (on batches drawn as it goes), then score every
  position of longer inputs (``test_len`` tokens): positions below ``train_len`` were seen in
  training, the others never were. A learned table's rows for those positions exist (the table
  has ``test_len`` rows) but never received a gradient: they keep their random initial values.

Legend: B batch, T length, D model width, k the offset, |V| the number of symbols (the vocabulary).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from . import _checks, runtime
from .embedding import InputEmbedding
from .encoder import Encoder
from .training import LearningRateSchedule, TrainConfig, TrainResult, train, warmup_cosine

__all__ = [
    "IGNORE",
    "ShiftTask",
    "ShiftModel",
    "accuracy_by_position",
    "SHIFT_TRAINING",
    "train_shift",
    "ShiftRun",
    "run_comparison",
]

IGNORE = -100  # the target of a position with no answer (t < k); cross-entropy's ignore_index


@dataclass(frozen=True)
class ShiftTask:
    """Write the symbol k places back: ``y_t = x_(t-k)`` for t >= k, no target for t < k.

    Inputs are uniform random symbols, so nothing but the position of the answer relative to
    the current token can solve the task: a model that cannot tell positions apart scores chance,
    ``1 / num_symbols``.

    Args:
        offset: k, how far back the answer lies. Default: 3.
        num_symbols: |V|, the size of the alphabet (ids 0 .. |V| - 1). Default: 16.
        train_len: the length T of every training input: positions 0 .. train_len - 1 are seen
            in training. Default: 32.
        test_len: the length of the test inputs; positions train_len .. test_len - 1 are never
            seen in training. Default: 64.
        num_test: test inputs. Default: 256.
        seed: seeds the test inputs; training batches come from :func:`train_shift`'s own seed,
            which must differ, so that no training batch repeats the test inputs. Default: 1234.

    Shape:
        :meth:`batch`: inputs (B, T) int64, targets (B, T) int64 (:data:`IGNORE` at t < k);
        :meth:`test_set`: the same with B = num_test, T = test_len.

    Examples:
        >>> task = ShiftTask(offset=2, num_symbols=5, train_len=6, test_len=8, num_test=4)
        >>> x, y = task.batch(1, 6, torch.Generator().manual_seed(0))
        >>> x.tolist(), y.tolist()
        ([[4, 4, 3, 0, 3, 4]], [[-100, -100, 4, 4, 3, 0]])
        >>> [tuple(t.shape) for t in task.test_set()]
        [(4, 8), (4, 8)]
    """

    offset: int = 3  # k: the answer at position t is the input at t - k
    num_symbols: int = 16  # |V|: symbols 0 .. |V| - 1
    train_len: int = 32  # every training input has this length: positions 0 .. train_len - 1 seen
    test_len: int = 64  # test inputs are longer: positions train_len .. test_len - 1 never seen
    num_test: int = 256  # test inputs
    seed: int = 1234  # seeds the test inputs (training seeds must differ)

    def __post_init__(self) -> None:
        _checks.positive_int(self.offset, "offset")
        _checks.int_at_least(self.num_symbols, "num_symbols", 2)
        _checks.int_at_least(self.train_len, "train_len", self.offset + 1)
        _checks.int_at_least(self.test_len, "test_len", self.train_len)
        _checks.positive_int(self.num_test, "num_test")
        _checks.int_at_least(self.seed, "seed", 0)

    @property
    def chance(self) -> float:
        """The accuracy of guessing: 1 / |V|."""
        return 1.0 / self.num_symbols

    def batch(
        self, batch_size: int, length: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` random inputs of ``length`` symbols and their targets."""
        _checks.positive_int(batch_size, "batch_size")
        _checks.int_at_least(length, "length", self.offset + 1)
        inputs = torch.randint(self.num_symbols, (batch_size, length), generator=generator)  # (B, T)
        targets = torch.full_like(inputs, IGNORE)  # (B, T)
        targets[:, self.offset :] = inputs[:, : -self.offset]  # y_t = x_(t-k)
        return inputs, targets

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed test inputs (``num_test`` of ``test_len`` symbols) and their targets."""
        return self.batch(self.num_test, self.test_len, torch.Generator().manual_seed(self.seed))


class ShiftModel(nn.Module):
    """Token vectors plus positions, an encoder, and a linear readout of one symbol per position.

    ``positional="learned"`` starts its table at the size of the token vectors (standard deviation
    1, as the scaled token vectors and the ±1 sinusoids), not at BERT's 0.02: then both encodings
    start from position vectors as large as the tokens', and learn the task in the same number of
    steps.

    Args:
        positional: ``"sinusoidal"``, ``"learned"`` or ``"none"`` (no positions: chance).
        num_symbols: |V|. Default: 16.
        max_len: rows of the position table, the longest input accepted. Default: 64.
        d_model: D. Default: 32.
        num_heads: H. Default: 1.
        num_layers: L. Default: 1.
        d_ff: the feed-forward network's hidden width. Default: 64.

    Shape:
        input_ids (B, T) with T <= max_len -> logits (B, T, |V|).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = ShiftModel("sinusoidal", num_symbols=5, max_len=8, d_model=8, d_ff=16)
        >>> tuple(model(torch.zeros(2, 6, dtype=torch.long)).shape)
        (2, 6, 5)
    """

    def __init__(
        self,
        positional: str,
        num_symbols: int = 16,
        max_len: int = 64,
        d_model: int = 32,
        num_heads: int = 1,
        num_layers: int = 1,
        d_ff: int = 64,
    ) -> None:
        super().__init__()
        self.positional = positional
        self.embedding = InputEmbedding(num_symbols, d_model, max_len, positional=positional,
                                        position_init_std=1.0)  # a learned table at the tokens' scale
        self.encoder = Encoder(num_layers, d_model, num_heads, d_ff, dropout=0.0)
        self.readout = nn.Linear(d_model, num_symbols)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids)  # (B, T) -> (B, T, D): token vectors + positions
        return self.readout(self.encoder(x))  # (B, T, D) -> (B, T, |V|)


@torch.no_grad()
def accuracy_by_position(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The share of inputs whose symbol the model gets right, at every position (NaN: no target).

    Shape:
        inputs, targets (N, T) -> (T,) float64

    Examples:
        >>> task = ShiftTask(offset=2, num_symbols=5, train_len=6, test_len=8, num_test=4)
        >>> _ = torch.manual_seed(0)
        >>> model = ShiftModel("learned", num_symbols=5, max_len=8, d_model=8, d_ff=16)
        >>> by_position = accuracy_by_position(model, *task.test_set())
        >>> by_position.shape, by_position[:2].isnan().all().item()
        (torch.Size([8]), True)
    """
    device = next(model.parameters()).device
    with runtime.eval_mode(model):
        predicted = model(inputs.to(device)).argmax(-1).cpu()  # (N, T, |V|) -> (N, T)
    correct = (predicted == targets).double().mean(0)  # (T,)
    return torch.where(targets[0] == IGNORE, math.nan, correct)


SHIFT_TRAINING = TrainConfig(steps=200, batch_size=32, lr=1e-2, eval_every=50)  # with a warm-up of 20 steps


def train_shift(
    model: nn.Module,
    task: ShiftTask,
    config: TrainConfig = SHIFT_TRAINING,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
) -> TrainResult:
    """Train ``model`` on ``task`` with inputs of ``task.train_len`` tokens only.

    This is :func:`~transformer_course.training.train` on batches drawn as it goes (a fresh batch
    every step, from a generator seeded by ``seed``), a warm-up over the first tenth of the steps then
    a cosine decay, and as score the accuracy over the positions k .. train_len - 1 of the test
    inputs cut to the trained length.

    Examples:
        >>> task = ShiftTask(offset=1, num_symbols=4, train_len=6, test_len=8, num_test=8)
        >>> _ = torch.manual_seed(0)
        >>> model = ShiftModel("sinusoidal", num_symbols=4, max_len=8, d_model=8, d_ff=16)
        >>> result = train_shift(model, task, TrainConfig(steps=10, batch_size=8, eval_every=5))
        >>> result.eval_steps, len(result.losses)
        ([5, 10], 10)
    """
    if not isinstance(task, ShiftTask):
        raise TypeError(f"task: expected a ShiftTask, got {type(task).__name__}")
    if seed == task.seed:
        raise ValueError(f"seed: expected a seed other than task.seed={task.seed} (the test inputs' seed)")
    generator = torch.Generator().manual_seed(seed)
    test_inputs, test_targets = task.test_set()
    score_inputs, score_targets = test_inputs[:, : task.train_len], test_targets[:, : task.train_len]

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield task.batch(config.batch_size, task.train_len, generator)  # (B, train_len) twice

    def score(trained: nn.Module) -> float:
        return float(accuracy_by_position(trained, score_inputs, score_targets).nanmean())

    schedule = LearningRateSchedule(warmup_cosine(max(1, config.steps // 10), config.steps))
    return train(model, batches(), config, device=device, callbacks=[schedule], score=score)


@dataclass
class ShiftRun:
    """One trained model of :func:`run_comparison` and what it scored."""

    positional: str  # "sinusoidal", "learned" or "none"
    seed: int  # seeded the initial weights and the training batches
    result: TrainResult  # the training run
    by_position: torch.Tensor  # (test_len,) accuracy at every position of the test inputs (NaN: t < k)
    train_len: int  # positions below this were seen in training

    @property
    def seen(self) -> float:
        """Mean accuracy over the test inputs' positions k .. train_len - 1 (seen in training)."""
        return float(self.by_position[: self.train_len].nanmean())

    @property
    def unseen(self) -> float:
        """Mean accuracy over positions train_len .. test_len - 1 (never seen in training)."""
        return float(self.by_position[self.train_len :].nanmean())


def run_comparison(
    positionals: tuple[str, ...] = ("sinusoidal", "learned"),
    seeds: tuple[int, ...] = (0, 1, 2),
    task: ShiftTask | None = None,
    config: TrainConfig = SHIFT_TRAINING,
    **model_sizes: int,
) -> list[ShiftRun]:
    """Train a fresh :class:`ShiftModel` for every encoding and seed, and score it by position.

    Args:
        positionals: the encodings compared. Default: sinusoidal and learned.
        seeds: one run per seed and encoding; the seed fixes the initial weights
            (``torch.manual_seed``) and the training batches. Default: (0, 1, 2).
        task: the :class:`ShiftTask`. Default: ``ShiftTask()``.
        config: how to train. Default: :data:`SHIFT_TRAINING`.
        **model_sizes: passed to :class:`ShiftModel` (``d_model``, ``num_heads``, ...);
            ``max_len`` is ``task.test_len``.

    Returns:
        One :class:`ShiftRun` per (encoding, seed), encodings in the outer loop.

    Examples:
        >>> task = ShiftTask(offset=1, num_symbols=4, train_len=6, test_len=8, num_test=8)
        >>> runs = run_comparison(seeds=(0,), task=task, config=TrainConfig(steps=4, eval_every=4),
        ...                       d_model=8, d_ff=16)
        >>> [(run.positional, tuple(run.by_position.shape)) for run in runs]
        [('sinusoidal', (8,)), ('learned', (8,))]
    """
    task = ShiftTask() if task is None else task
    runs = []
    for positional in positionals:
        for seed in seeds:
            torch.manual_seed(seed)
            model = ShiftModel(positional, task.num_symbols, max_len=task.test_len, **model_sizes)
            result = train_shift(model, task, config, seed=seed)
            with runtime.num_threads(1):  # as in training: the same numbers whatever the thread count
                by_position = accuracy_by_position(model, *task.test_set())
            runs.append(ShiftRun(positional, seed, result, by_position, task.train_len))
    return runs
