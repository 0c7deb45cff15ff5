"""A small training loop, the models of the recall task, and the distance grid of chapters 1 and 5.

- :class:`TrainConfig` and :func:`train`: mini-batch training with Adam (or plain SGD), optional
  gradient-norm clipping and a fixed step budget; the test accuracy is recorded every few steps.
  Defaults: Adam, lr 3e-3, batch 64, clipping at norm 1.0. :class:`MiniBatches` orders the
  batches (seeded, resumable: the command-line trainer of ``distributed.py`` draws the same ones).
- :class:`RecurrentClassifier` (``torch.nn.RNN`` or ``torch.nn.LSTM``) and
  :class:`EncoderClassifier` (our :class:`~transformer_course.encoder.Encoder`): embed the
  tokens, run the sequence model, read the answer off the last (query) position.
  :func:`make_recall_model` builds the three models of the book at their fixed sizes.
- :func:`run_distance_grid`: train a fresh model for every distance of
  :data:`~transformer_course.tasks.DISTANCES` and every seed, and collect the test accuracies.
  Chapter 1 runs it for the RNN and the LSTM, chapter 5 for the encoder, with the same data,
  budgets and seeds.
- :class:`StateBottleneck`: an encoder-decoder whose only link is one fixed-size vector, for the
  copy task of :func:`~transformer_course.tasks.make_copy_data`.

Legend: B batch, T length, D model width, H hidden width, C classes.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to a text
    # bar, which works in Jupyter too; silencing it keeps the chapters' outputs the same whether
    # or not ipywidgets is installed.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from .attention import _check_positive_int
from .embedding import InputEmbedding
from .encoder import Encoder
from .runtime import resolve_device
from .tasks import DISTANCES, NUM_ANSWERS, VOCAB_SIZE, RecallTask, SplitData

__all__ = [
    "TrainConfig",
    "TrainResult",
    "MiniBatches",
    "evaluate",
    "train",
    "RecurrentClassifier",
    "EncoderClassifier",
    "StateBottleneck",
    "MODEL_KINDS",
    "STEPS",
    "make_recall_model",
    "GridResult",
    "run_distance_grid",
]

_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` trains: optimizer, learning rate, batch size, clipping, step budget."""

    steps: int = 400  # fixed budget of optimizer steps (no early stopping)
    batch_size: int = 64  # examples per step
    lr: float = 3e-3  # learning rate
    clip_norm: float | None = 1.0  # rescale the gradient to at most this norm; None: no clipping
    optimizer: str = "adam"  # "adam" (torch.optim.Adam) or "sgd" (plain, no momentum)
    eval_every: int = 100  # measure the test accuracy every this many steps, and at the end

    def __post_init__(self) -> None:
        _check_positive_int(self.steps, "steps")
        _check_positive_int(self.batch_size, "batch_size")
        _check_positive_int(self.eval_every, "eval_every")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if self.clip_norm is not None and (
            isinstance(self.clip_norm, bool)
            or not isinstance(self.clip_norm, (int, float))
            or not self.clip_norm > 0
        ):
            raise ValueError(f"clip_norm: expected a positive number or None, got {self.clip_norm!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {_OPTIMIZERS}, got {self.optimizer!r}")


@dataclass
class TrainResult:
    """What :func:`train` measured along the way."""

    eval_steps: list[int] = field(default_factory=list)  # steps after which the test set was scored
    test_accuracy: list[float] = field(default_factory=list)  # one per entry of eval_steps
    losses: list[float] = field(default_factory=list)  # training loss of every step
    grad_norms: list[float] = field(default_factory=list)  # gradient norm of every step, before clipping
    diverged: bool = False  # a loss or gradient norm was inf/NaN: training stopped at that step
    seconds: float = 0.0  # wall-clock time of the training loop

    @property
    def final_accuracy(self) -> float:
        """The last measured test accuracy (0.0 if none was measured)."""
        return self.test_accuracy[-1] if self.test_accuracy else 0.0


def _check_model(model: object) -> None:
    """Raise a TypeError unless ``model`` is a torch module."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")


def _loss_and_correct(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and the number of right answers; logits (..., C), targets (...)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"model output: expected logits of shape {tuple(targets.shape)} + (C,) for targets "
            f"{tuple(targets.shape)}, got {tuple(logits.shape)}"
        )
    flat = logits.reshape(-1, logits.shape[-1])  # (..., C) -> (N, C)
    loss = F.cross_entropy(flat, targets.reshape(-1))
    correct = (flat.argmax(-1) == targets.reshape(-1)).sum()
    return loss, correct


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1024
) -> float:
    """Accuracy of ``model`` (in eval mode) on ``inputs``: the fraction of targets it gets right.

    The model's training/eval mode is restored afterwards.

    Shape:
        inputs (N, T) ids; targets (N,) or (N, T); the model maps (B, T) to logits (B, C) or
        (B, T, C).
    """
    _check_model(model)
    _check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size].to(device))
        correct += _loss_and_correct(logits, targets[start : start + batch_size].to(device))[1].item()
    model.train(was_training)
    return correct / targets.numel()


@contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads (None: leave them), then restore."""
    if num_threads is None:
        yield
        return
    _check_positive_int(num_threads, "num_threads")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bar_switch(progress: bool) -> dict[str, bool]:
    """tqdm's ``disable`` argument: given only to turn the bar off, so that ``TQDM_DISABLE=1``
    (set when the chapters are executed and tested) can still turn it off otherwise."""
    if not isinstance(progress, bool):
        raise TypeError(f"progress: expected a bool, got {type(progress).__name__}")
    return {} if progress else {"disable": True}


class MiniBatches:
    """Endless mini-batches of indices: each pass over the data in a fresh random order.

    Each pass over the N training examples takes a fresh order from a generator seeded by
    ``seed`` and cuts it into N // B batches of B indices (the last N mod B of each pass are left
    out); with B > N every step uses all N examples, in a fresh order. The state (generator,
    current order, position) can be saved and restored, so an interrupted run can continue with
    exactly the batches it would have drawn (the command-line trainer's checkpoints do).

    Args:
        num_examples: N, the size of the training set.
        batch_size: B.
        seed: seeds the order.

    Shape:
        each batch: (B,) int64 indices into the training set ((N,) when B > N).

    Examples:
        >>> batches = MiniBatches(num_examples=5, batch_size=2, seed=0)
        >>> pass_one = torch.cat([next(batches), next(batches)])  # 2 batches, one example left out
        >>> len(set(pass_one.tolist())), len(next(batches))
        (4, 2)
        >>> len(next(MiniBatches(num_examples=3, batch_size=8, seed=0)))  # B > N: all N each step
        3
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int) -> None:
        _check_positive_int(num_examples, "num_examples")
        _check_positive_int(batch_size, "batch_size")
        self.num_examples, self.batch_size = num_examples, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)  # the current pass's order, (N,) once drawn
        self.position = 0  # indices of ``order`` already handed out

    def __iter__(self) -> MiniBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):  # pass finished: a fresh order
            self.order = torch.randperm(self.num_examples, generator=self.generator)  # (N,)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]  # (B,), or (N,) if B > N
        self.position += len(batch)
        return batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator's state, the current order and the position in it, as CPU tensors."""
        return {
            "generator": self.generator.get_state(),
            "order": self.order.clone(),
            "position": torch.tensor(self.position),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Continue from a :meth:`state_dict` of an iterator with the same N and B."""
        order, position = state["order"], int(state["position"])
        if len(order) not in (0, self.num_examples) or not 0 <= position <= len(order):
            raise ValueError(
                f"state: expected an order of {self.num_examples} indices and a position within it, "
                f"got {len(order)} indices and position {position}"
            )
        self.generator.set_state(state["generator"].to(torch.uint8))
        self.order, self.position = order.to(torch.long).clone(), position


def _train(
    model: nn.Module,
    data: SplitData,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    bar,
) -> TrainResult:
    """The loop of :func:`train`; ``bar`` is a tqdm bar advanced by one per step, or None."""
    model.to(device).train()
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    train_inputs, train_targets = data.train_inputs.to(device), data.train_targets.to(device)
    batches = MiniBatches(len(train_inputs), config.batch_size, seed)
    clip = math.inf if config.clip_norm is None else config.clip_norm
    result = TrainResult()
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        index = next(batches).to(device)
        loss, _ = _loss_and_correct(model(train_inputs[index]), train_targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Returns the norm before clipping; with clip = inf it only measures.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
        result.losses.append(loss.item())
        result.grad_norms.append(grad_norm)
        if not (math.isfinite(result.losses[-1]) and math.isfinite(grad_norm)):
            result.diverged = True  # a NaN step would poison every weight: stop here
            break
        optimizer.step()
        if bar is not None:
            bar.update(1)
        if step % config.eval_every == 0 or step == config.steps:
            result.eval_steps.append(step)
            result.test_accuracy.append(evaluate(model, data.test_inputs, data.test_targets))
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def train(
    model: nn.Module,
    data: SplitData,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train ``model`` on ``data.train_*`` for ``config.steps`` steps, scoring ``data.test_*``.

    Each step draws a mini-batch (every training example once per pass, in an order seeded by
    ``seed``), computes the mean cross-entropy, backpropagates, clips the gradient to norm
    ``config.clip_norm`` (if set) and takes one optimizer step. The test accuracy is measured
    every ``config.eval_every`` steps and after the last one. If a loss or a gradient norm
    becomes inf or NaN, training stops there and ``diverged`` is set. The model is left in eval
    mode, on ``device``.

    Args:
        model: maps ids (B, T) to logits (B, C), or (B, T, C) for per-position targets.
        data: a :class:`~transformer_course.tasks.SplitData`.
        config: a :class:`TrainConfig`. Default: ``TrainConfig()`` (Adam, lr 3e-3, batch 64,
            clipping 1.0, 400 steps).
        seed: seeds the order of the mini-batches. Default: 0. (Seed the model's initial
            weights when you build it.)
        device: where to train; ``None`` picks CUDA when present. Default: None.
        progress: show a tqdm progress bar (a widget in Jupyter). Default: False.
        desc: the bar's label.
        num_threads: torch's CPU threads while training, restored afterwards; ``None`` leaves
            them as they are. Default: 1. The book's models are small: their matrix products
            gain nothing from a second thread, which only waits at every time step (and stalls
            badly when another program uses the other core). One thread also gives the same
            numbers whatever the machine's thread count.

    Returns:
        A :class:`TrainResult`: accuracy history, losses, gradient norms, divergence, time.

    Examples:
        >>> from transformer_course.tasks import make_recall_data
        >>> data = make_recall_data(distance=2, num_train=64, num_test=32)
        >>> _ = torch.manual_seed(0)
        >>> model = RecurrentClassifier("lstm", hidden_size=8)
        >>> result = train(model, data, TrainConfig(steps=3, eval_every=2), device="cpu")
        >>> result.eval_steps, len(result.losses)
        ([2, 3], 3)
    """
    _check_model(model)
    if not isinstance(data, SplitData):
        raise TypeError(f"data: expected a tasks.SplitData, got {type(data).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig or None, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    device = resolve_device(device)
    with _threads(num_threads), tqdm(
        total=config.steps, desc=desc, leave=False, **_bar_switch(progress)
    ) as bar:
        return _train(model, data, config, seed, device, bar)


# ---------------------------------------------------------------- models of the recall task


class RecurrentClassifier(nn.Module):
    """Token embedding, then ``torch.nn.RNN`` (tanh) or ``torch.nn.LSTM``, then a linear readout
    of the last hidden state: the answer is read where the query token was read.

    Args:
        cell: ``"rnn"`` or ``"lstm"``.
        hidden_size: H.
        vocab_size: number of token ids. Default: ``tasks.VOCAB_SIZE`` (17).
        embed_dim: width of the token vectors. Default: 16.
        num_classes: C. Default: ``tasks.NUM_ANSWERS`` (8).

    Shape:
        input_ids (B, T) -> logits (B, C)

    Examples:
        >>> model = RecurrentClassifier("rnn", hidden_size=16)
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 8)
    """

    def __init__(
        self,
        cell: str,
        hidden_size: int,
        vocab_size: int = VOCAB_SIZE,
        embed_dim: int = 16,
        num_classes: int = NUM_ANSWERS,
    ) -> None:
        super().__init__()
        cells = {"rnn": nn.RNN, "lstm": nn.LSTM}
        if cell not in cells:
            raise ValueError(f"cell: expected one of {sorted(cells)}, got {cell!r}")
        for value, name in ((hidden_size, "hidden_size"), (vocab_size, "vocab_size"),
                            (embed_dim, "embed_dim"), (num_classes, "num_classes")):
            _check_positive_int(value, name)
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.recurrent = cells[cell](embed_dim, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.recurrent(self.embedding(input_ids))  # (B, T) -> (B, T, E) -> (B, T, H)
        return self.readout(states[:, -1])  # the query position: (B, H) -> (B, C)


class EncoderClassifier(nn.Module):
    """Token embedding plus sinusoidal positions, our post-LN ``Encoder``, and a linear readout
    at the last (query) position.

    Args:
        d_model: D. Default: 32.
        num_heads: H. Default: 4.
        num_layers: L. Default: 2.
        d_ff: feed-forward width. Default: 4 D.
        max_len: longest sequence accepted. Default: 512.
        vocab_size, num_classes: as in :class:`RecurrentClassifier`.
        norm_first: pre-LN instead of post-LN. Default: False.
        residual: keep the residual connections. Default: True.
        positional: ``"sinusoidal"``, ``"learned"`` or ``"none"`` (see
            :class:`~transformer_course.embedding.InputEmbedding`). Default: ``"sinusoidal"``.

    Shape:
        input_ids (B, T), T <= max_len -> logits (B, C)

    Examples:
        >>> model = EncoderClassifier(d_model=8, num_heads=2, num_layers=1)
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 8)
    """

    def __init__(
        self,
        d_model: int = 32,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int | None = None,
        max_len: int = 512,
        vocab_size: int = VOCAB_SIZE,
        num_classes: int = NUM_ANSWERS,
        norm_first: bool = False,
        residual: bool = True,
        positional: str = "sinusoidal",
    ) -> None:
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.embed = InputEmbedding(vocab_size, d_model, max_len, positional=positional)
        self.encoder = Encoder(
            num_layers, d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first, residual=residual
        )
        self.readout = nn.Linear(d_model, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.embed(input_ids))  # (B, T) -> (B, T, D) -> (B, T, D)
        return self.readout(x[:, -1])  # the query position: (B, D) -> (B, C)


MODEL_KINDS = ("rnn", "lstm", "encoder")
# Fixed budgets of optimizer steps per distance (Adam, lr 3e-3, batch 64, clipping 1.0).
STEPS = {"rnn": 400, "lstm": 400, "encoder": 100}


def make_recall_model(kind: str) -> nn.Module:
    """One of the book's three models for the recall task, freshly initialised.

    ``"rnn"``: tanh RNN, H = 64; ``"lstm"``: LSTM, H = 32 (both with 16-dimensional token
    vectors); ``"encoder"``: post-LN encoder, D = 32, 4 heads, 2 layers, d_ff = 128. The
    recurrent widths are kept small so that chapter 1's grid fits its time budget on two CPU
    cores (an RNN's cost there is mostly its T sequential steps, so wider states would add
    time without changing the lesson); they already reach 100 % at short distances. Seed the
    global generator first for reproducible weights (:func:`run_distance_grid` does).

    Examples:
        >>> sum(p.numel() for p in make_recall_model("lstm").parameters())
        6936
    """
    if kind == "rnn":
        return RecurrentClassifier("rnn", hidden_size=64)
    if kind == "lstm":
        return RecurrentClassifier("lstm", hidden_size=32)
    if kind == "encoder":
        return EncoderClassifier(d_model=32, num_heads=4, num_layers=2)
    raise ValueError(f"kind: expected one of {MODEL_KINDS}, got {kind!r}")


@dataclass
class GridResult:
    """Test accuracies of one model on every distance and seed of a grid."""

    distances: tuple[int, ...]
    seeds: tuple[int, ...]
    accuracy: np.ndarray  # (len(distances), len(seeds)): final test accuracy of each run
    runs: dict[tuple[int, int], TrainResult]  # (distance, seed) -> its TrainResult
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
        model: one of :data:`MODEL_KINDS` (built by :func:`make_recall_model`), or a function
            that returns a fresh model.
        steps: optimizer steps per run. Default: ``STEPS[model]`` for a named model (required
            for a function).
        distances: the distances d. Default: :data:`~transformer_course.tasks.DISTANCES`.
        seeds: the seeds. Default: ``(0,)``.
        config: the rest of the training set-up; its ``steps`` is replaced by ``steps``.
            Default: ``TrainConfig()`` (Adam, lr 3e-3, batch 64, clipping 1.0).
        shared_symbols: draw distractors from the answer symbols (see
            :func:`~transformer_course.tasks.make_recall_data`). Default: False.
        device: as in :func:`train`.
        progress: one tqdm bar over all the steps of the grid. Default: True.
        num_threads: as in :func:`train`. Default: 1.

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
    _check_positive_int(steps, "steps")
    distances, seeds = tuple(distances), tuple(seeds)
    if not distances or not seeds:
        raise ValueError("distances, seeds: expected at least one of each")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig or None, got {type(config).__name__}")
    config = replace(config, steps=steps)
    device = resolve_device(device)

    accuracy = np.zeros((len(distances), len(seeds)))
    runs: dict[tuple[int, int], TrainResult] = {}
    models: dict[tuple[int, int], nn.Module] = {}
    start = time.perf_counter()
    total = len(distances) * len(seeds) * steps
    with _threads(num_threads), tqdm(total=total, desc="distance grid", **_bar_switch(progress)) as bar:
        for i, distance in enumerate(distances):
            for j, seed in enumerate(seeds):
                bar.set_postfix(d=distance, seed=seed)
                data = RecallTask(distance, seed=seed, shared_symbols=shared_symbols).make()
                with torch.random.fork_rng(devices=[]):  # seeded weights, caller's RNG untouched
                    torch.manual_seed(seed)
                    net = make_model()
                _check_model(net)
                run = _train(net, data, config, seed, device, bar)
                runs[(distance, seed)] = run
                models[(distance, seed)] = net
                accuracy[i, j] = run.final_accuracy
    return GridResult(distances, seeds, accuracy, runs, time.perf_counter() - start, models)


# ---------------------------------------------------------------- the encoder-decoder bottleneck


class StateBottleneck(nn.Module):
    """An encoder-decoder whose only link is one vector: an LSTM reads the whole sequence, and a
    linear decoder must rebuild every symbol from the LSTM's last hidden state alone.

    This is the bottleneck of the RNN encoder-decoders that preceded the Transformer: however long
    the input, the decoder sees ``hidden_size`` numbers.

    Args:
        length: T, the number of symbols to rebuild.
        num_symbols: V. Default: 8.
        hidden_size: H, the width of the one vector. Default: 32.
        embed_dim: width of the symbol vectors. Default: 16.

    Shape:
        input_ids (B, T) -> logits (B, T, V)

    Examples:
        >>> model = StateBottleneck(length=5)
        >>> tuple(model(torch.zeros(2, 5, dtype=torch.long)).shape)
        (2, 5, 8)
    """

    def __init__(
        self, length: int, num_symbols: int = NUM_ANSWERS, hidden_size: int = 32, embed_dim: int = 16
    ) -> None:
        super().__init__()
        for value, name in ((length, "length"), (num_symbols, "num_symbols"),
                            (hidden_size, "hidden_size"), (embed_dim, "embed_dim")):
            _check_positive_int(value, name)
        self.length, self.num_symbols = length, num_symbols
        self.embedding = nn.Embedding(num_symbols, embed_dim)
        self.encoder = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.decoder = nn.Linear(hidden_size, length * num_symbols)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.ndim != 2 or input_ids.shape[1] != self.length:
            raise ValueError(
                f"input_ids: expected shape (B, T={self.length}), got {tuple(input_ids.shape)}"
            )
        _, (h_T, _) = self.encoder(self.embedding(input_ids))  # h_T: (1, B, H), the only link
        logits = self.decoder(h_T[0])  # (B, H) -> (B, T * V)
        return logits.view(-1, self.length, self.num_symbols)  # (B, T * V) -> (B, T, V)


if __name__ == "__main__":
    # `python -m transformer_course.train` (also under torchrun) runs this file a second time, as
    # __main__, after the package has imported it as transformer_course.train. The command line
    # lives in distributed.py, which uses only the package's copy: nothing defined in this one is
    # used, so the two copies cannot disagree.
    from transformer_course.distributed import main

    raise SystemExit(main())
