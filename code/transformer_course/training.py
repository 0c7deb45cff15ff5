"""Training and scoring: the one training loop of the package, and the distance grid of chapters 1 and 5.

- :class:`TrainConfig` and :func:`train`: mini-batch training with Adam (or plain SGD), optional
  gradient-norm clipping and a fixed step budget; the test accuracy is recorded every few steps.
  Defaults: Adam, lr 3e-3, batch 64, clipping at norm 1.0. :class:`MiniBatches` orders the
  batches (seeded and resumable); :func:`evaluate` scores a model.
- :func:`run_distance_grid`: train a fresh model for every distance of
  :data:`~transformer_course.tasks.DISTANCES` and every seed, and collect the test accuracies.
  Chapter 1 runs it for the RNN and the LSTM, chapter 5 for the encoder, with the same data,
  budgets (:data:`STEPS`) and seeds.

:func:`train` is also the loop of the command-line trainer (:mod:`~transformer_course.cli`):
mixed precision, several processes, checkpoints and resuming plug into it through its
keyword-only arguments (``autocast_dtype``, ``scaler``, ``shard``, ``wrap``, ``reduce_loss``,
``optimizer``, ``batches``, ``start_step``, ``on_step``), so that a run from the shell takes the
same steps as a run in a chapter. This module knows nothing of processes or files: it imports
only the tasks, the models and the device resolver.

It is over 500 lines because the grid stays beside the loop it repeats, and the loop's hooks are
documented where they are used.

Legend: B batch, T length, C classes, N examples.
"""

from __future__ import annotations

import contextlib
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

from . import _checks
from .models import MODEL_KINDS, make_recall_model
from .runtime import resolve_device
from .tasks import DISTANCES, RecallTask, SplitData

__all__ = [
    "TrainConfig",
    "TrainResult",
    "MiniBatches",
    "make_optimizer",
    "evaluate",
    "warmup_cosine",
    "train",
    "STEPS",
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
        _checks.positive_int(self.steps, "steps")
        _checks.positive_int(self.batch_size, "batch_size")
        _checks.positive_int(self.eval_every, "eval_every")
        _checks.positive_number(self.lr, "lr")
        _checks.positive_number(self.clip_norm, "clip_norm", allow_none=True)
        _checks.one_of(self.optimizer, _OPTIMIZERS, "optimizer")


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


def _check_autocast_dtype(dtype: object) -> None:
    """Raise a TypeError unless ``dtype`` is None or a floating-point torch dtype."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"autocast_dtype: expected None or a floating-point torch.dtype, got {dtype!r}")


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; None: a context that changes nothing."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int = 1024,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Accuracy of ``model`` (in eval mode) on ``inputs``: the fraction of targets it gets right.

    The inputs are scored ``batch_size`` at a time on the model's device; the model's
    training/eval mode is restored afterwards.

    Args:
        model: maps ids (B, T) to logits (B, C) or (B, T, C).
        inputs, targets: the examples and their answers.
        batch_size: examples per forward pass. Default: 1024.
        autocast_dtype: run the forward passes under ``torch.autocast`` to this dtype
            (``torch.bfloat16``, ``torch.float16``); None: the model's own dtype. Default: None.

    Shape:
        inputs (N, T) ids; targets (N,) or (N, T).

    Examples:
        >>> from transformer_course.models import RecurrentClassifier
        >>> from transformer_course.tasks import make_recall_data
        >>> data = make_recall_data(distance=2, num_train=8, num_test=32)
        >>> accuracy = evaluate(RecurrentClassifier("rnn", hidden_size=8), data.test_inputs,
        ...                     data.test_targets)
        >>> 0.0 <= accuracy <= 1.0
        True
    """
    _check_model(model)
    _checks.positive_int(batch_size, "batch_size")
    _check_autocast_dtype(autocast_dtype)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(inputs), batch_size):
        with _autocast(device, autocast_dtype):
            logits = model(inputs[start : start + batch_size].to(device))  # (b, T) -> (b, C)
        correct += _loss_and_correct(logits, targets[start : start + batch_size].to(device))[1].item()
    model.train(was_training)
    return correct / targets.numel()


@contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads (None: leave them), then restore."""
    if num_threads is None:
        yield
        return
    _checks.positive_int(num_threads, "num_threads")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bar_switch(progress: bool) -> dict[str, bool]:
    """tqdm's ``disable`` argument: given only to turn the bar off, so that ``TQDM_DISABLE=1``
    (set when the chapters are executed and tested) can still turn it off otherwise."""
    _checks.boolean(progress, "progress")
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
        _checks.positive_int(num_examples, "num_examples")
        _checks.positive_int(batch_size, "batch_size")
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



def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer :func:`train` uses for ``model``: ``torch.optim.Adam``, or plain SGD (no
    momentum), at ``config.lr``.

    Build it yourself to restore a saved state before training (the command line does).

    Examples:
        >>> make_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="sgd", lr=0.1)).defaults["lr"]
        0.1
    """
    _check_model(model)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """A learning-rate schedule for :func:`train`: a linear warm-up over the first ``warmup``
    steps, then a cosine decay that reaches 0 at step ``total``.

    Adam's first steps rest on poor estimates of the gradient's scale; rising from a small
    learning rate lets them settle, and decaying at the end lets the weights settle too.

    Returns:
        ``factor(step)`` for steps 1 .. ``total``: step / warmup during the warm-up, then
        (1 + cos(pi (step - warmup) / (total - warmup))) / 2.

    Examples:
        >>> factor = warmup_cosine(warmup=10, total=110)
        >>> [round(factor(step), 2) for step in (1, 10, 60, 110)]
        [0.1, 1.0, 0.5, 0.0]
    """
    _checks.int_at_least(warmup, "warmup", 0)
    _checks.positive_int(total, "total")
    if warmup >= total:
        raise ValueError(f"warmup: expected fewer warm-up steps than total={total}, got {warmup}")

    def factor(step: int) -> float:
        if step <= warmup:
            return step / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    return factor


def _train(
    model: nn.Module,
    data: SplitData,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    bar,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    batches: MiniBatches | None = None,
    start_step: int = 0,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    reduce_loss: Callable[[torch.Tensor], float] | None = None,
    on_step: Callable[[int, TrainResult], None] | None = None,
    batch_fn: Callable[[int], tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]] | None = None,
    score_fn: Callable[[nn.Module], float] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
) -> TrainResult:
    """The loop of :func:`train` (arguments checked there); ``bar`` is a tqdm bar advanced by one
    per step."""
    model.to(device).train()
    optimizer = make_optimizer(model, config) if optimizer is None else optimizer
    forward = model if wrap is None else wrap(model)  # e.g. DistributedDataParallel(model)
    if batch_fn is None:
        train_inputs, train_targets = data.train_inputs.to(device), data.train_targets.to(device)
        batches = MiniBatches(len(train_inputs), config.batch_size, seed) if batches is None else batches
    if score_fn is None:
        def score_fn(model: nn.Module) -> float:
            return evaluate(model, data.test_inputs, data.test_targets, autocast_dtype=autocast_dtype)
    clip = math.inf if config.clip_norm is None else config.clip_norm
    result = TrainResult()
    start = time.perf_counter()
    for step in range(start_step + 1, config.steps + 1):
        if batch_fn is None:
            index = next(batches)  # (B,) indices into the training set
            if shard is not None:
                index = shard(index)  # (B,) -> (B / W,): this process's part of the global batch
            index = index.to(device)
            inputs, targets = train_inputs[index], train_targets[index]
        else:  # a batch the caller draws, e.g. a new length every step; inputs may be a tuple
            inputs, targets = batch_fn(step)
            inputs = tuple(t.to(device) for t in inputs) if isinstance(inputs, tuple) else inputs.to(device)
            targets = targets.to(device)
        with _autocast(device, autocast_dtype):
            # (B, T) -> (B, C), or (B, T, C); several inputs are passed as several arguments
            logits = forward(*inputs) if isinstance(inputs, tuple) else forward(inputs)
        # The loss in float32 whatever the autocast dtype (.float() is a no-op in float32).
        loss, _ = _loss_and_correct(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
        else:  # float16: a scaled loss keeps small gradients from underflowing
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # the true gradients, so that clipping sees their real norm
        # Returns the norm before clipping; with clip = inf it only measures.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
        result.losses.append(loss.item() if reduce_loss is None else reduce_loss(loss))
        result.grad_norms.append(grad_norm)
        # An fp16 overflow is the scaler's business: it skips that step and lowers its scale.
        if not math.isfinite(result.losses[-1]) or (scaler is None and not math.isfinite(grad_norm)):
            result.diverged = True  # a NaN step would poison every weight: stop here
            break
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_schedule(step)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # the optimizer's step, skipped if the gradient overflowed
            scaler.update()
        bar.update(1)
        if step % config.eval_every == 0 and step < config.steps:
            result.eval_steps.append(step)
            result.test_accuracy.append(score_fn(model))
        if on_step is not None:
            on_step(step, result)
    if not result.diverged:  # the accuracy at the end, also when there was no step left to take
        result.eval_steps.append(start_step + len(result.losses))
        result.test_accuracy.append(score_fn(model))
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
    *,
    optimizer: torch.optim.Optimizer | None = None,
    batches: MiniBatches | None = None,
    start_step: int = 0,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    reduce_loss: Callable[[torch.Tensor], float] | None = None,
    on_step: Callable[[int, TrainResult], None] | None = None,
    batch_fn: Callable[[int], tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]] | None = None,
    score_fn: Callable[[nn.Module], float] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train_*`` for ``config.steps`` steps, scoring ``data.test_*``.

    Each step draws a mini-batch (every training example once per pass, in an order seeded by
    ``seed``), computes the mean cross-entropy, backpropagates, clips the gradient to norm
    ``config.clip_norm`` (if set) and takes one optimizer step. The test accuracy is measured
    every ``config.eval_every`` steps and after the last one. If a loss or a gradient norm
    becomes inf or NaN, training stops there and ``diverged`` is set. The model is left in eval
    mode, on ``device``.

    The keyword-only arguments let a longer run use the same loop: the command line
    (:mod:`~transformer_course.cli`) passes them to train in mixed precision, in several
    processes and from a checkpoint. Left at their defaults, they change nothing.

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
        optimizer: the optimizer to step, e.g. one restored from a checkpoint. Default:
            :func:`make_optimizer` (``config.optimizer`` at ``config.lr``).
        batches: the :class:`MiniBatches` to draw from, e.g. restored from a checkpoint (``seed``
            is then unused). Default: a fresh ``MiniBatches(N, config.batch_size, seed)``.
        start_step: optimizer steps already taken; training runs steps ``start_step + 1`` to
            ``config.steps``, and ``losses`` holds those steps only. Default: 0.
        autocast_dtype: run the forward passes under ``torch.autocast`` to this dtype
            (``torch.bfloat16``, ``torch.float16``); the loss is computed in float32. None: no
            autocast. Default: None.
        scaler: a ``torch.amp.GradScaler`` for float16, which underflows without a scaled loss;
            a non-finite gradient is then the scaler's to handle (it skips the step), not a
            divergence. Default: None.
        shard: maps each batch of indices (B,) to the part this process trains on (such as
            :func:`~transformer_course.distributed.shard`). Default: None, the whole batch.
        wrap: called once with the model on ``device``; the training forward passes go through
            what it returns (such as ``DistributedDataParallel``), while clipping, the optimizer
            and the evaluation use ``model`` itself. Default: None.
        reduce_loss: turns this process's loss (a 0-d tensor) into the number recorded in
            ``losses``, such as the mean over processes. Default: None, ``loss.item()``.
        on_step: called as ``on_step(step, result)`` after every optimizer step, e.g. to save
            a checkpoint. Default: None.
        batch_fn: called as ``batch_fn(step)``, returns that step's ``(inputs, targets)``, for
            tasks whose batches are drawn as training goes (chapter 6's copy task: a new length
            every step). ``inputs`` may be a tuple of tensors, passed to the model as separate
            arguments (a source and a decoder input). ``data`` may then be None, and ``batches``
            and ``shard`` are not used. Default: None, mini-batches of ``data.train_*``.
        score_fn: called as ``score_fn(model)`` where the test accuracy is measured; returns the
            number recorded in ``test_accuracy``. Default: None, :func:`evaluate` on
            ``data.test_*``.
        lr_schedule: called as ``lr_schedule(step)`` before every optimizer step; the learning
            rate of that step is ``config.lr`` times what it returns (e.g.
            :func:`warmup_cosine`). Default: None, a constant ``config.lr``.

    Returns:
        A :class:`TrainResult`: accuracy history, losses, gradient norms, divergence, time.

    Examples:
        >>> from transformer_course.models import RecurrentClassifier
        >>> from transformer_course.tasks import make_recall_data
        >>> data = make_recall_data(distance=2, num_train=64, num_test=32)
        >>> _ = torch.manual_seed(0)
        >>> model = RecurrentClassifier("lstm", hidden_size=8)
        >>> result = train(model, data, TrainConfig(steps=3, eval_every=2), device="cpu")
        >>> result.eval_steps, len(result.losses)
        ([2, 3], 3)
    """
    _check_model(model)
    for hook, name in ((batch_fn, "batch_fn"), (score_fn, "score_fn"), (lr_schedule, "lr_schedule")):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name}: expected a callable or None, got {type(hook).__name__}")
    hooks_replace_data = batch_fn is not None and score_fn is not None
    if not isinstance(data, SplitData) and not (data is None and hooks_replace_data):
        raise TypeError(
            f"data: expected a tasks.SplitData (or None with both batch_fn and score_fn), "
            f"got {type(data).__name__}"
        )
    if batch_fn is not None and (batches is not None or shard is not None):
        raise ValueError("batch_fn: draws every batch itself; do not pass batches or shard with it")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig or None, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    _checks.int_at_least(start_step, "start_step", 0)
    _check_autocast_dtype(autocast_dtype)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer: expected a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
        )
    if batches is not None and not isinstance(batches, MiniBatches):
        raise TypeError(f"batches: expected a MiniBatches or None, got {type(batches).__name__}")
    device = resolve_device(device)
    with _threads(num_threads), tqdm(
        total=config.steps, initial=min(start_step, config.steps), desc=desc, leave=False,
        **_bar_switch(progress),
    ) as bar:
        return _train(
            model, data, config, seed, device, bar, optimizer=optimizer, batches=batches,
            start_step=start_step, autocast_dtype=autocast_dtype, scaler=scaler, shard=shard,
            wrap=wrap, reduce_loss=reduce_loss, on_step=on_step, batch_fn=batch_fn, score_fn=score_fn,
            lr_schedule=lr_schedule,
        )


# ---------------------------------------------------------------- the distance grid


STEPS = {"rnn": 400, "lstm": 400, "encoder": 100}  # optimizer steps per distance, with TrainConfig()


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
    _checks.positive_int(steps, "steps")
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
