"""Training: the one training loop of the package, the objects that plug into it, and scoring.

- :class:`TrainConfig` and :func:`train`: mini-batch training with Adam (or plain SGD), optional
  gradient-norm clipping and a fixed step budget; the test accuracy is recorded every few steps.
  Defaults: Adam, lr 3e-3, batch 64, clipping at norm 1.0, one thread. :class:`MiniBatches`
  orders the batches (seeded and resumable), :class:`SplitBatches` draws them from a
  :class:`~transformer_course.tasks.SplitData`; :func:`evaluate` scores a model.
- Callbacks: what a run adds to the loop without changing it. A :class:`Callback` is called at
  the start and end of training and before and after every step, with the loop's
  :class:`TrainState`, which it may read and change. Here: :class:`ProgressBar`,
  :class:`LearningRateSchedule` (with :func:`warmup_cosine`) and :class:`MixedPrecision`;
  elsewhere: several processes (:class:`~transformer_course.distributed.DataParallel`) and
  checkpoints (:class:`~transformer_course.checkpoint.Checkpoints`). The command line
  (:mod:`~transformer_course.cli`) trains with them, so a run from the shell takes the same
  steps as a run in a chapter.

The distance grid of chapters 1 and 5, which repeats this loop, is in
:mod:`~transformer_course.distance_grid`. This module knows nothing of processes or files. It is
over 500 lines because the callbacks stay beside the loop they plug into.

Legend: B batch, T length, C classes, N examples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks, runtime
from .runtime import resolve_device
from .tasks import SplitData

__all__ = [
    "TrainConfig",
    "TrainResult",
    "MiniBatches",
    "SplitBatches",
    "make_optimizer",
    "evaluate",
    "loss_and_correct",
    "TrainState",
    "Callback",
    "ProgressBar",
    "LearningRateSchedule",
    "warmup_cosine",
    "MixedPrecision",
    "train",
]

_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` trains: optimizer, learning rate, batch size, clipping, step budget, threads."""

    steps: int = 400  # fixed budget of optimizer steps (no early stopping)
    batch_size: int = 64  # examples per step
    lr: float = 3e-3  # learning rate
    clip_norm: float | None = 1.0  # rescale the gradient to at most this norm; None: no clipping
    optimizer: str = "adam"  # "adam" (torch.optim.Adam) or "sgd" (plain, no momentum)
    eval_every: int = 100  # measure the test accuracy every this many steps, and at the end
    # torch's CPU threads while training (restored afterwards); None: leave them. The book's
    # models are small: a second thread gains nothing and only waits at every time step (and
    # stalls badly when another program uses the other core). One thread also gives the same
    # numbers whatever the machine's thread count.
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        _checks.positive_int(self.steps, "steps")
        _checks.positive_int(self.batch_size, "batch_size")
        _checks.positive_int(self.eval_every, "eval_every")
        _checks.positive_number(self.lr, "lr")
        _checks.positive_number(self.clip_norm, "clip_norm", allow_none=True)
        _checks.one_of(self.optimizer, _OPTIMIZERS, "optimizer")
        if self.num_threads is not None:
            _checks.positive_int(self.num_threads, "num_threads")


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


def loss_and_correct(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and the number of right answers.

    Targets of -100 are left out of the loss (``F.cross_entropy``'s ``ignore_index``).

    Shape:
        logits (..., C), targets (...) -> a 0-d loss and a 0-d count

    Examples:
        >>> loss, correct = loss_and_correct(torch.tensor([[5.0, 0.0], [0.0, 5.0]]), torch.tensor([0, 0]))
        >>> round(loss.item(), 3), correct.item()
        (2.507, 1)
    """
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
    device = next(model.parameters()).device
    correct = 0
    with runtime.eval_mode(model):
        for start in range(0, len(inputs), batch_size):
            with runtime.autocast(device, autocast_dtype):
                logits = model(inputs[start : start + batch_size].to(device))  # (b, T) -> (b, C)
            correct += loss_and_correct(logits, targets[start : start + batch_size].to(device))[1].item()
    return correct / targets.numel()


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



class SplitBatches:
    """Endless mini-batches ``(inputs, targets)`` of a split's training examples, in the order
    of a :class:`MiniBatches`.

    :func:`train` builds one from a :class:`~transformer_course.tasks.SplitData` and its seed;
    build it yourself to continue a saved order (the command line does).

    Args:
        data: the split; its test examples are what :func:`train` scores by default.
        order: the indices of each batch. Default: ``MiniBatches(N, batch_size, seed)``.
        batch_size, seed: used when ``order`` is None.

    Shape:
        each batch: inputs (B, T), targets (B,) or (B, T)

    Examples:
        >>> from transformer_course.tasks import make_recall_data
        >>> data = make_recall_data(distance=2, num_train=8, num_test=4)
        >>> inputs, targets = next(SplitBatches(data, batch_size=4, seed=0))
        >>> tuple(inputs.shape), tuple(targets.shape)
        ((4, 4), (4,))
    """

    def __init__(
        self, data: SplitData, order: MiniBatches | None = None, batch_size: int = 64, seed: int = 0
    ) -> None:
        if not isinstance(data, SplitData):
            raise TypeError(f"data: expected a tasks.SplitData, got {type(data).__name__}")
        if order is not None and not isinstance(order, MiniBatches):
            raise TypeError(f"order: expected a MiniBatches or None, got {type(order).__name__}")
        self.data = data
        self.order = MiniBatches(len(data.train_inputs), batch_size, seed) if order is None else order

    def __iter__(self) -> SplitBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = next(self.order)  # (B,) indices into the training set
        return self.data.train_inputs[index], self.data.train_targets[index]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer :func:`train` uses for ``model``: ``torch.optim.Adam``, or plain SGD (no
    momentum), at ``config.lr``.

    Build it yourself to restore a saved state before training (the command line does), and
    pass it to :func:`train`.

    Examples:
        >>> make_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="sgd", lr=0.1)).defaults["lr"]
        0.1
    """
    _check_model(model)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


# ---------------------------------------------------------------- the loop and its callbacks


@dataclass
class TrainState:
    """What :func:`train` works with while it runs; every callback gets it and may change it.

    A callback that changes how the loop runs does so in ``on_train_start``: e.g. wrapping the
    model for several processes (``forward``, ``loss_value``, ``batches``), mixed precision
    (``autocast_dtype``, ``scaler``) or continuing a saved run (``step``).
    """

    model: nn.Module  # the model being trained (clipped, stepped and scored)
    config: TrainConfig
    optimizer: torch.optim.Optimizer
    batches: Iterator  # yields (inputs, targets); inputs may be a tuple of tensors
    result: TrainResult = field(default_factory=TrainResult)  # filled in as training goes
    step: int = 0  # optimizer steps taken so far (the loop runs until config.steps)
    forward: Callable[..., torch.Tensor] | None = None  # the training forward pass; None: model
    loss_value: Callable[[torch.Tensor], float] = torch.Tensor.item  # the loss recorded per step
    autocast_dtype: torch.dtype | None = None  # forward passes under torch.autocast to this dtype
    scaler: torch.amp.GradScaler | None = None  # float16's loss scaling (skips overflowing steps)


class Callback:
    """Something a run adds to :func:`train`: each method is called with the :class:`TrainState`
    and does nothing unless overridden. Callbacks are called in the order given to :func:`train`.
    """

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step (the model is on its device, in training mode)."""

    def on_step_start(self, state: TrainState) -> None:
        """Before step ``state.step`` draws its batch."""

    def on_step_end(self, state: TrainState) -> None:
        """After step ``state.step`` (and its scoring, if any); not after a step that diverged."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step and the final scoring."""


class ProgressBar(Callback):
    """A tqdm bar advanced by one per step (a widget in Jupyter); ``TQDM_DISABLE=1`` hides it.

    Args:
        desc: the bar's label.
        bar: an open bar to advance instead (e.g. one bar over several runs); it is left open.
    """

    def __init__(self, desc: str | None = None, bar: object | None = None) -> None:
        self.desc, self.bar, self.owned = desc, bar, bar is None

    def on_train_start(self, state: TrainState) -> None:
        if self.owned:  # a continued run's bar starts at the step it continues from
            self.bar = runtime.progress_bar(state.config.steps, self.desc, initial=state.step, leave=False)

    def on_step_end(self, state: TrainState) -> None:
        self.bar.update(1)

    def on_train_end(self, state: TrainState) -> None:
        if self.owned:
            self.bar.close()


class LearningRateSchedule(Callback):
    """Set the learning rate of every step to ``config.lr`` times ``factor(step)``.

    Args:
        factor: maps the step (1, 2, ...) to a multiplier, e.g. :func:`warmup_cosine`.

    Examples:
        >>> model = nn.Linear(2, 2)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> state = TrainState(model, TrainConfig(lr=0.1), optimizer, iter(()), step=4)
        >>> LearningRateSchedule(lambda step: 1 / step).on_step_start(state)
        >>> optimizer.param_groups[0]["lr"]
        0.025
    """

    def __init__(self, factor: Callable[[int], float]) -> None:
        if not callable(factor):
            raise TypeError(f"factor: expected a callable, got {type(factor).__name__}")
        self.factor = factor

    def on_step_start(self, state: TrainState) -> None:
        for group in state.optimizer.param_groups:
            group["lr"] = state.config.lr * self.factor(state.step)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """A learning-rate schedule for :class:`LearningRateSchedule`: a linear warm-up over the first ``warmup``
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


class MixedPrecision(Callback):
    """Run the forward passes (training and the default scoring) under ``torch.autocast``.

    The loss is computed in float32 whatever the dtype.

    Args:
        dtype: ``torch.bfloat16`` (float32's exponent range: no scaling needed) or
            ``torch.float16``.
        scaler: a ``torch.amp.GradScaler``, needed with float16, whose small gradients underflow
            without a scaled loss; a non-finite gradient is then the scaler's to handle (it skips
            the step), not a divergence. Default: None.
    """

    def __init__(self, dtype: torch.dtype, scaler: torch.amp.GradScaler | None = None) -> None:
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"scaler: expected a torch.amp.GradScaler or None, got {type(scaler).__name__}")
        self.dtype, self.scaler = dtype, scaler

    def on_train_start(self, state: TrainState) -> None:
        state.autocast_dtype, state.scaler = self.dtype, self.scaler


def train(
    model: nn.Module,
    data: SplitData | Iterator,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    callbacks: Sequence[Callback] = (),
    *,
    optimizer: torch.optim.Optimizer | None = None,
    score: Callable[[nn.Module], float] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps, scoring it as it goes.

    Each step draws a mini-batch, computes the mean cross-entropy, backpropagates, clips the
    gradient to norm ``config.clip_norm`` (if set) and takes one optimizer step. The model is
    scored every ``config.eval_every`` steps and after the last one. If a loss or a gradient norm
    becomes inf or NaN, training stops there and ``diverged`` is set. The model is left in eval
    mode, on ``device``.

    Args:
        model: maps ids (B, T) to logits (B, C), or (B, T, C) for per-position targets; a model
            of several inputs gets them as separate arguments.
        data: a :class:`~transformer_course.tasks.SplitData` (mini-batches of its training
            examples in an order seeded by ``seed``, scored on its test examples), a
            :class:`SplitBatches`, or any iterator of ``(inputs, targets)`` batches (then
            ``score`` is required), such as batches drawn as training goes.
        config: a :class:`TrainConfig`. Default: ``TrainConfig()`` (Adam, lr 3e-3, batch 64,
            clipping 1.0, 400 steps, one thread).
        seed: seeds the order of a SplitData's mini-batches. Default: 0. (Seed the model's
            initial weights when you build it.)
        device: where to train; ``None`` picks CUDA when present. Default: None.
        callbacks: :class:`Callback` objects, called in this order. Default: none.
        optimizer: the optimizer to step, e.g. one restored from a checkpoint. Default:
            :func:`make_optimizer` (``config.optimizer`` at ``config.lr``).
        score: ``score(model) -> float``, recorded in ``test_accuracy``. Default: :func:`evaluate`
            on the test examples of ``data``.

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
    config, batches = _check_train_arguments(model, data, config, seed, callbacks, optimizer, score)
    device = resolve_device(device)
    model.to(device).train()
    optimizer = make_optimizer(model, config) if optimizer is None else optimizer
    state = TrainState(model, config, optimizer, batches)
    if score is None:  # the test examples of data, under the autocast a callback may set
        def score(model: nn.Module) -> float:
            test = batches.data
            return evaluate(model, test.test_inputs, test.test_targets, autocast_dtype=state.autocast_dtype)
    clip = math.inf if config.clip_norm is None else config.clip_norm
    result = state.result
    with runtime.num_threads(config.num_threads):
        for callback in callbacks:
            callback.on_train_start(state)
        forward = model if state.forward is None else state.forward  # e.g. DistributedDataParallel
        start = time.perf_counter()
        while state.step < config.steps:
            state.step += 1
            for callback in callbacks:
                callback.on_step_start(state)
            inputs, targets = next(state.batches)
            inputs = inputs if isinstance(inputs, tuple) else (inputs,)  # one input or several
            inputs = tuple(t.to(device) for t in inputs)
            with runtime.autocast(device, state.autocast_dtype):
                logits = forward(*inputs)  # (B, T) -> (B, C), or (B, T, C)
            # The loss in float32 whatever the autocast dtype (.float() is a no-op in float32).
            loss, _ = loss_and_correct(logits.float(), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler = state.scaler
            if scaler is None:
                loss.backward()
            else:  # float16: a scaled loss keeps small gradients from underflowing
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # the true gradients, so that clipping sees their real norm
            # Returns the norm before clipping; with clip = inf it only measures.
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
            result.losses.append(state.loss_value(loss))
            result.grad_norms.append(grad_norm)
            # An fp16 overflow is the scaler's business: it skips that step and lowers its scale.
            if not math.isfinite(result.losses[-1]) or (scaler is None and not math.isfinite(grad_norm)):
                result.diverged = True  # a NaN step would poison every weight: stop here
                break
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)  # the optimizer's step, skipped if the gradient overflowed
                scaler.update()
            if state.step % config.eval_every == 0 and state.step < config.steps:
                result.eval_steps.append(state.step)
                result.test_accuracy.append(score(model))
            for callback in callbacks:
                callback.on_step_end(state)
        if not result.diverged:  # the score at the end, also when there was no step left to take
            result.eval_steps.append(state.step)
            result.test_accuracy.append(score(model))
        result.seconds = time.perf_counter() - start
        for callback in callbacks:
            callback.on_train_end(state)
    model.eval()
    return result


def _check_train_arguments(
    model: object, data: object, config: object, seed: object, callbacks: object, optimizer: object,
    score: object,
) -> tuple[TrainConfig, Iterator]:
    """Check :func:`train`'s arguments; return the config (default filled in) and the batches."""
    _check_model(model)
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig or None, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if isinstance(callbacks, Callback) or not all(isinstance(c, Callback) for c in callbacks):
        raise TypeError("callbacks: expected a sequence of training.Callback objects")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer: expected a torch.optim.Optimizer or None, got {type(optimizer).__name__}"
        )
    if score is not None and not callable(score):
        raise TypeError(f"score: expected a callable or None, got {type(score).__name__}")
    if isinstance(data, SplitData):
        return config, SplitBatches(data, batch_size=config.batch_size, seed=seed)
    if not isinstance(data, Iterator):
        raise TypeError(
            "data: expected a tasks.SplitData, a SplitBatches or an iterator of batches, "
            f"got {type(data).__name__}"
        )
    if score is None and not isinstance(data, SplitBatches):
        raise TypeError("score: required when data is an iterator of batches (there is no test set)")
    return config, data
