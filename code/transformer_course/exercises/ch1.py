"""Checkers of chapter 1's exercises (the limits of recurrent networks).

- ``ch1-predict-norm``: ``predicted_norm(radius, steps)`` is compared with the exact norm of a
  product of Jacobians ``radius * Q`` (Q orthogonal), and ``measured_norm(cell, w, steps)`` with
  :func:`~transformer_course.rnn.hidden_state_gradients` on cells of other sizes, some with
  biases (non-zero states, so tanh' < 1) and a recurrent matrix that is not orthogonal.
- ``ch1-clip``: ``clip_by_global_norm(parameters, max_norm)`` against
  ``torch.nn.utils.clip_grad_norm_`` on gradients of other shapes and sizes: above and below the
  threshold, passed as a generator, with a parameter that has no gradient, all zero.
- ``ch1-train-loop``: ``fit(model, optimizer, data, steps, eval_every, batch_size, clip_norm,
  seed)`` trains a fresh RNN on a recall task of a distance and seed the chapter does not use;
  the model and the optimizer are watched (its mode and the rows of every forward pass, the
  gradients at every step) and the trained model must reach 90 % on the test set.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import models, rnn, runtime, tasks, training
from ._core import NotYet, as_number, checker, expect, expect_close

# ---------------------------------------------------------------- ch1-predict-norm


def _orthogonal(size: int, generator: torch.Generator) -> torch.Tensor:
    """A random (size, size) orthogonal matrix in float64."""
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # fix the signs of the columns: Haar-distributed


def _make_cell(input_size: int, hidden_size: int, weight_hh: torch.Tensor, biases: bool,
               generator: torch.Generator) -> rnn.ElmanRNN:
    """A float64 ElmanRNN with the given W_hh and, if ``biases``, seeded non-zero biases."""
    with torch.random.fork_rng(devices=[]):  # the constructor's init must not move the student's RNG
        cell = rnn.ElmanRNN(input_size, hidden_size).double()
    bound = 1 / math.sqrt(hidden_size)

    def uniform(*shape: int) -> torch.Tensor:  # PyTorch's init, from the checker's generator
        return bound * (2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1)

    with torch.no_grad():
        cell.weight_hh.copy_(weight_hh)
        cell.weight_ih.copy_(uniform(hidden_size, input_size))
        for bias in (cell.bias_ih, cell.bias_hh):
            bias.copy_(uniform(hidden_size) if biases else torch.zeros(hidden_size, dtype=torch.float64))
    return cell


@checker("ch1-predict-norm")
def check_predict_norm(predicted_norm, measured_norm) -> None:
    """Prediction at unseen radii and step counts; measurement against the package's autograd."""
    for radius, steps in ((0.7, 13), (1.15, 9), (0.95, 31), (0.5, 1), (1.0, 40)):
        got = as_number(predicted_norm(radius, steps), "predicted_norm")
        expect_close(
            got, radius**steps,
            f"predicted_norm({radius}, {steps}) is not the norm of the gradient: with zero states, "
            "what is each Jacobian, and what does one multiplication by it do to a vector's norm?",
            atol=0, rtol=1e-9,
        )

    generator = torch.Generator().manual_seed(1701)
    cases = [  # (I, N_h, steps, radius, orthogonal W_hh, biases)
        (3, 11, 17, 0.8, True, False),
        (5, 7, 12, 1.1, False, True),
        (2, 9, 6, 0.9, False, False),
        (4, 6, 20, 1.3, True, True),
    ]
    for input_size, hidden, steps, radius, orthogonal, biases in cases:
        if orthogonal:
            weight_hh = radius * _orthogonal(hidden, generator)
        else:
            random = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
            weight_hh = rnn.scale_spectral_radius(random, radius)
        cell = _make_cell(input_size, hidden, weight_hh, biases, generator)
        w = torch.randn(hidden, generator=generator, dtype=torch.float64)
        w = w / w.norm()
        x = torch.zeros(1, steps, input_size, dtype=torch.float64)  # (1, T, I)
        expected = rnn.hidden_state_gradients(cell, x, w)[0, 0].norm().item()  # d loss / d h_0
        got = as_number(measured_norm(cell, w.clone(), steps), "measured_norm")
        kind = ("an orthogonal" if orthogonal else "a non-orthogonal") + " W_hh " + (
            "and non-zero biases" if biases else "and zero biases")
        hint = (f"measured_norm is off for a cell with N_h = {hidden}, {kind}, {steps} steps: "
                "multiply the row vector w by one step Jacobian per step, from the loss back to h_0, "
                "each taken at the state that step produced")
        if orthogonal and not biases:
            hint += " (here the measurement should equal your prediction)"
        expect_close(got, expected, hint, atol=0, rtol=1e-7)


# ---------------------------------------------------------------- ch1-clip


def _gradients(shapes: list[tuple[int, ...]], total_norm: float, generator: torch.Generator,
               dtype: torch.dtype = torch.float64) -> list[nn.Parameter]:
    """Parameters of ``shapes`` whose gradients, all together, have norm ``total_norm``."""
    params = [nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype)) for shape in shapes]
    grads = [torch.randn(*shape, generator=generator, dtype=dtype) * (1 + i)  # unequal sizes
             for i, shape in enumerate(shapes)]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    for p, g in zip(params, grads, strict=True):
        p.grad = g * (total_norm / norm)
    return params


def _copies(params: list[nn.Parameter]) -> list[nn.Parameter]:
    """The same parameters and gradients, as new tensors (the reference clips these)."""
    copies = []
    for p in params:
        q = nn.Parameter(p.detach().clone())
        q.grad = None if p.grad is None else p.grad.clone()
        copies.append(q)
    return copies


def _grads(params: list[nn.Parameter]) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def _same_grads(got: list[torch.Tensor | None], expected: list[torch.Tensor | None]) -> bool:
    if any((g is None) != (e is None) for g, e in zip(got, expected, strict=True)):
        return False
    return all(g is None or (g.shape == e.shape and torch.allclose(g, e, rtol=1e-5, atol=1e-12))
               for g, e in zip(got, expected, strict=True))


def _run_clip(clip_by_global_norm, params: list[nn.Parameter], max_norm: float, as_generator: bool):
    """Call the student's function; (returned norm as a float, gradients after it)."""
    argument = (p for p in params) if as_generator else params
    returned = clip_by_global_norm(argument, max_norm)
    return as_number(returned, "clip_by_global_norm"), _grads(params)


@checker("ch1-clip")
def check_clip(clip_by_global_norm) -> None:
    """Gradients above and below the threshold, per-tensor norms that mislead, generators, None, zeros."""
    generator = torch.Generator().manual_seed(4242)
    cases = [  # (shapes, total norm of all gradients, max_norm)
        ([(7, 3), (3,), (2, 5, 4)], 7.3, 2.0),  # above: every gradient is scaled by 2 / 7.3
        ([(11,), (4, 4)], 0.8, 1.0),  # below: nothing changes
        ([(6, 2), (9,), (3, 3), (1,)], 12.0, 5.5),  # each tensor is below 5.5, all together above
    ]
    for shapes, total, max_norm in cases:
        params = _gradients(shapes, total, generator)
        reference = _copies(params)
        expected_norm = torch.nn.utils.clip_grad_norm_(reference, max_norm).item()
        expected = _grads(reference)
        before = _grads(params)
        got_norm, got = _run_clip(clip_by_global_norm, params, max_norm, as_generator=False)
        if not _same_grads(got, expected):
            if total <= max_norm:
                raise NotYet(f"the gradients changed although their norm, {total}, is already below "
                             f"max_norm = {max_norm}: only a gradient longer than max_norm is rescaled")
            per_tensor = [g * min(1.0, max_norm / g.norm().item()) for g in before]
            if _same_grads(got, per_tensor) or all(g.norm() <= max_norm * (1 + 1e-6) for g in got):
                raise NotYet("each tensor was clipped by its own norm: clip by the norm of all gradients "
                             "together (the square root of the sum of every squared entry of every tensor)")
            if _same_grads(got, before):
                raise NotYet("the gradients did not change: rescale each p.grad in place (p.grad.mul_(...))")
            raise NotYet(f"wrong gradients after clipping {len(shapes)} tensors of total norm {total} at "
                         f"max_norm = {max_norm}: each gradient should keep its direction and all of them "
                         "together should have norm max_norm")
        if not math.isclose(got_norm, expected_norm, rel_tol=1e-5):
            if math.isclose(got_norm, min(total, max_norm), rel_tol=1e-5):
                raise NotYet("return the norm of the gradients before clipping (as clip_grad_norm_ does), "
                             "not after")
            if math.isclose(got_norm, expected_norm**2, rel_tol=1e-5):
                raise NotYet("the returned norm is squared: take the square root of the sum of squares")
            raise NotYet("the returned norm is not the norm of all the gradients together, before clipping")

    # model.parameters() is a generator: it can be read once only.
    params = _gradients([(5, 5), (5,)], 9.0, generator)
    reference = _copies(params)
    torch.nn.utils.clip_grad_norm_(reference, 3.0)
    got_norm, got = _run_clip(clip_by_global_norm, params, 3.0, as_generator=True)
    expect(_same_grads(got, _grads(reference)) and math.isclose(got_norm, 9.0, rel_tol=1e-5),
           "right with a list, wrong with model.parameters(): that is a generator, which can be iterated "
           "over once only; make a list of it first")

    # A parameter that took no part in the loss has no gradient: it is skipped.
    params = _gradients([(4, 3), (3,)], 6.0, generator) + [nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    reference = _copies(params)
    torch.nn.utils.clip_grad_norm_(reference, 1.5)
    try:
        got_norm, got = _run_clip(clip_by_global_norm, params, 1.5, as_generator=False)
    except (AttributeError, TypeError) as error:
        raise NotYet(f"your code raised {type(error).__name__} on a parameter whose .grad is None (it took "
                     "no part in the loss): skip such parameters") from None
    expect(_same_grads(got, _grads(reference)) and math.isclose(got_norm, 6.0, rel_tol=1e-5),
           "wrong when one parameter has no gradient (p.grad is None): skip it, and clip the others")

    # All gradients zero: nothing to clip, and no division by zero.
    params = [nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(2)]
    for p in params:
        p.grad = torch.zeros_like(p)
    try:
        got_norm, got = _run_clip(clip_by_global_norm, params, 1.0, as_generator=False)
    except ZeroDivisionError:
        raise NotYet("every gradient is zero and your code divided by their norm, 0: a zero gradient is "
                     "below any max_norm and stays as it is") from None
    expect(all(torch.equal(g, torch.zeros(3, dtype=torch.float64)) for g in got) and got_norm == 0,
           "every gradient is zero: they must stay zero (no NaN from dividing by a zero norm), and the norm "
           "returned is 0")


# ---------------------------------------------------------------- ch1-train-loop

TRAIN_LOOP_TASK = tasks.RecallTask(distance=8, num_train=2048, num_test=256, seed=31)  # unseen by chapter 1
TRAIN_LOOP_RUN = {"steps": 240, "eval_every": 60, "batch_size": 48, "clip_norm": 0.5, "seed": 31}
TRAIN_LOOP_TARGET = 0.9  # test accuracy the trained model must reach


class _Stop(Exception):
    """Raised inside the student's loop to stop it with a hint (carried as the message)."""


class _Watched(nn.Module):
    """A model that records, at each forward pass, its mode and which examples it read."""

    def __init__(self, model: nn.Module, data: tasks.SplitData) -> None:
        super().__init__()
        self.model = model
        self.train_rows = {tuple(row) for row in data.train_inputs.tolist()}
        self.test_rows = {tuple(row) for row in data.test_inputs.tolist()}
        self.trained_on: set[tuple[int, ...]] = set()
        self.batch_sizes: list[int] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = [tuple(row) for row in inputs.tolist()]
        if torch.is_grad_enabled():
            if any(row not in self.train_rows for row in rows):
                raise _Stop("a forward pass with gradients read examples that are not training examples: "
                            "train on data.train_inputs and data.train_targets only")
            if not self.training:
                raise _Stop("a training step ran with the model in eval mode: after evaluating, switch "
                            "back with model.train()")
            self.trained_on.update(rows)
            self.batch_sizes.append(len(rows))
        else:
            if any(row not in self.test_rows for row in rows):
                raise _Stop("the evaluation read training examples: score the model on data.test_inputs "
                            "and data.test_targets, which it never trained on")
            if self.training:
                raise _Stop("the evaluation ran in training mode: call model.eval() before scoring "
                            "(dropout, for one, behaves differently in training)")
        return self.model(inputs)


class _WatchedAdam(torch.optim.Adam):
    """Adam that checks the gradients it is given at every step, then marks them as used."""

    def __init__(self, params, lr: float, clip_norm: float) -> None:
        super().__init__(params, lr=lr)
        self.clip_norm = clip_norm
        self.steps = 0

    def step(self, closure=None):  # noqa: D102 (Adam's step, with checks)
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            raise _Stop("the optimizer stepped without gradients: call loss.backward() before "
                        "the optimizer's step(), and clear the old gradients before backward(), not between "
                        "backward() and step()")
        if any(torch.isnan(g).any() for g in grads):
            raise _Stop("the gradients of the previous step were still there at this step: clear them at "
                        "every step (optimizer.zero_grad()) before loss.backward()")
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
        if norm == 0:
            raise _Stop("every gradient was zero at the step: clear the gradients before loss.backward(), "
                        "not between backward() and step()")
        if norm > self.clip_norm * (1 + 1e-4):
            raise _Stop("the gradient was not clipped: rescale it to norm clip_norm when it is longer, "
                        "between loss.backward() and the optimizer's step()")
        result = super().step(closure)
        self.steps += 1
        for g in grads:  # used: a loop that does not clear them will add to NaN
            g.fill_(float("nan"))
        return result


@checker("ch1-train-loop")
def check_train_loop(fit) -> None:
    """Train a fresh RNN on an unseen recall task through the student's loop, watching every step."""
    data = TRAIN_LOOP_TASK.make()
    run = TRAIN_LOOP_RUN
    # One thread, as training.train uses: a small RNN only waits for a second thread at every step.
    with torch.random.fork_rng(devices=[]), runtime.num_threads(1):
        torch.manual_seed(run["seed"])
        inner = models.make_recall_model("rnn")
        watched = _Watched(inner, data)
        optimizer = _WatchedAdam(watched.parameters(), lr=3e-3, clip_norm=run["clip_norm"])
        try:
            history = fit(watched, optimizer, data, run["steps"], run["eval_every"], run["batch_size"],
                          run["clip_norm"], run["seed"])
        except _Stop as stop:
            raise NotYet(str(stop)) from None
        finally:
            for p in watched.parameters():
                p.grad = None
    steps = run["steps"]
    expect(optimizer.steps > 0, "the optimizer never stepped: call its step() after loss.backward()")
    expect(optimizer.steps == steps,
           f"fit took {optimizer.steps} optimizer steps; it should take steps = {steps}")
    expect(set(watched.batch_sizes) == {run["batch_size"]},
           "every training step should read batch_size examples, no more and no fewer")
    expect(len(watched.trained_on) > len(data.train_inputs) // 2,
           "the steps read only a few of the training examples: draw a new batch at every step")
    with runtime.num_threads(1):
        accuracy = training.evaluate(inner, data.test_inputs, data.test_targets)
    expect(accuracy >= TRAIN_LOOP_TARGET,
           f"after {steps} steps the model answers {accuracy:.0%} of the test set, below "
           f"{TRAIN_LOOP_TARGET:.0%}: is the loss the cross-entropy between the logits and the targets, "
           "and does every step use the batch it drew?")
    expect(isinstance(history, list) and all(isinstance(e, tuple | list) and len(e) == 2 for e in history),
           "fit should return a list of (step, test accuracy) pairs")
    expected_steps = list(range(run["eval_every"], steps + 1, run["eval_every"]))
    got_steps = [int(as_number(step, "the step of a history entry", whole=True)) for step, _ in history]
    expect(got_steps == expected_steps,
           f"with steps = {steps} and eval_every = {run['eval_every']} the history should hold the steps "
           f"{expected_steps} (counted from 1), got {got_steps}")
    last = as_number(history[-1][1], "the accuracy of a history entry")
    expect(math.isclose(last, accuracy, abs_tol=1e-6),
           "the last accuracy of the history is not the trained model's accuracy on the test set: "
           "evaluate after the step, on all of data.test_inputs, as a fraction between 0 and 1")
