"""Chapter 1's exercises: the instructor's solutions pass their checkers, plausible wrong answers
get "not yet" with a hint that does not give the answer away, stubs are "not attempted yet", and
the claims of the worked answers hold."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_not_yet_hiding as assert_not_yet
from conftest import exercise_stub as stub
from conftest import solution_namespace

from transformer_course import models, rnn, tasks
from transformer_course.exercises import evaluate

CHAPTER = "01_rnn_limits"


# ---------------------------------------------------------------- ch1-predict-norm


@pytest.fixture(scope="module")
def predict_norm():
    ns = solution_namespace(CHAPTER, "ch1-predict-norm")
    return ns["predicted_norm"], ns["measured_norm"]


def test_predict_norm_solution_is_correct(predict_norm):
    assert evaluate("ch1-predict-norm", *predict_norm).correct


def test_predict_norm_solution_gives_the_chapter_numbers(predict_norm):
    """The worked answer: 0.9^20 at zero states, and the measurement agrees on such a cell."""
    predicted_norm, measured_norm = predict_norm
    assert predicted_norm(0.9, 20) == pytest.approx(0.9**20, rel=1e-12)
    generator = torch.Generator().manual_seed(0)
    cell = rnn.ElmanRNN(16, 16).double()
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        cell.weight_hh.copy_(0.9 * Q)
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    w = torch.randn(16, generator=generator, dtype=torch.float64)
    assert measured_norm(cell, w / w.norm(), 20) == pytest.approx(0.9**20, rel=1e-10)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda radius, steps: radius * steps,  # adds instead of multiplying
        lambda radius, steps: radius ** (steps - 1),  # one Jacobian too few
        lambda radius, steps: math.sqrt(steps) * radius**steps,  # a norm that grows with k
    ],
    ids=["radius-times-steps", "one-step-short", "sqrt-k-factor"],
)
def test_predict_norm_rejects_wrong_predictions(predict_norm, wrong):
    verdict = evaluate("ch1-predict-norm", wrong, predict_norm[1])
    assert_not_yet(verdict, [0.7**13])
    assert "predicted_norm" in verdict.hint


def _radius_power(cell, w, steps):
    """Ignores tanh' and assumes W_hh keeps norms: the prediction, not a measurement."""
    return rnn.spectral_radius(cell.weight_hh) ** steps


def _jacobians_on_the_wrong_side(cell, w, steps):
    """J @ g instead of g @ J: the transposed product, wrong for a non-symmetric W_hh."""
    states = cell.states(torch.zeros(1, steps, cell.input_size, dtype=w.dtype))
    g = w
    for t in range(steps, 0, -1):
        g = rnn.step_jacobian(cell, states[t])[0] @ g
    return g.norm().item()


def _jacobian_at_the_previous_state(cell, w, steps):
    """tanh' taken at h_{t-1} instead of h_t: wrong as soon as the states are not zero."""
    states = cell.states(torch.zeros(1, steps, cell.input_size, dtype=w.dtype))
    g = w[None]
    for t in range(steps, 0, -1):
        g = g @ rnn.step_jacobian(cell, states[t - 1])[0]
    return g.detach().norm().item()


def _one_jacobian_short(cell, w, steps):
    """Stops at h_1 instead of h_0."""
    x = torch.zeros(1, steps, cell.input_size, dtype=w.dtype)
    return rnn.hidden_state_gradients(cell, x, w)[0, 1].norm().item()


@pytest.mark.parametrize(
    "wrong",
    [_radius_power, _jacobians_on_the_wrong_side, _jacobian_at_the_previous_state, _one_jacobian_short],
    ids=["radius-power", "wrong-side", "previous-state", "one-short"],
)
def test_predict_norm_rejects_wrong_measurements(predict_norm, wrong):
    verdict = evaluate("ch1-predict-norm", predict_norm[0], wrong)
    assert_not_yet(verdict, [0.8**17])
    assert "measured_norm" in verdict.hint


def test_predict_norm_stubs_are_not_attempted(predict_norm):
    assert evaluate("ch1-predict-norm", stub, stub).status == "not attempted yet"
    assert evaluate("ch1-predict-norm", predict_norm[0], stub).status == "not attempted yet"


def test_checkers_leave_the_global_random_state_alone(predict_norm):
    before = torch.get_rng_state()
    evaluate("ch1-predict-norm", *predict_norm)
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------- ch1-default-radius (conceptual)


def test_default_radius_worked_answer():
    """About 1/sqrt(3) whatever N_h, scattering less for larger N_h: below 1, so gradients vanish."""
    target = 1 / math.sqrt(3)
    spread = {}
    for hidden_size in (16, 64, 256):
        radii = []
        for seed in range(5):
            torch.manual_seed(seed)
            radii.append(rnn.spectral_radius(rnn.ElmanRNN(hidden_size, hidden_size).weight_hh))
        assert all(abs(r - target) < 0.2 for r in radii) and max(radii) < 1
        spread[hidden_size] = max(abs(r - target) for r in radii)
    assert spread[256] < 0.05 and spread[256] < spread[16]


# ---------------------------------------------------------------- ch1-clip


@pytest.fixture(scope="module")
def clip_by_global_norm():
    return solution_namespace(CHAPTER, "ch1-clip")["clip_by_global_norm"]


def test_clip_solution_is_correct(clip_by_global_norm):
    assert evaluate("ch1-clip", clip_by_global_norm).correct


def test_clip_solution_is_what_the_training_loop_does(clip_by_global_norm):
    """On a real model's gradients it gives clip_grad_norm_'s gradients and norm."""
    torch.manual_seed(3)
    model, twin = models.make_recall_model("rnn"), models.make_recall_model("rnn")
    twin.load_state_dict(model.state_dict())
    data = tasks.RecallTask(distance=4, num_train=64, num_test=8).make()
    for net in (model, twin):
        F.cross_entropy(net(data.train_inputs), data.train_targets).backward()
    norm = clip_by_global_norm(model.parameters(), 0.1)
    expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.1)
    assert float(norm) == pytest.approx(expected.item(), rel=1e-6) and float(norm) > 0.1
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-9)


def _grads_of(parameters):
    return [p.grad for p in parameters if p.grad is not None]


def _global_norm(grads):
    return torch.sqrt(sum((g**2).sum() for g in grads)).item() if grads else 0.0


def _per_tensor(parameters, max_norm):
    grads = _grads_of(parameters)
    total = _global_norm(grads)
    for g in grads:
        g.mul_(min(1.0, max_norm / max(g.norm().item(), 1e-12)))
    return total


def _always_rescaled(parameters, max_norm):
    """Scales every gradient to norm max_norm, even a shorter one."""
    grads = _grads_of(parameters)
    total = _global_norm(grads)
    for g in grads:
        g.mul_(max_norm / (total + 1e-6))
    return total


def _two_passes(parameters, max_norm):
    """Right on a list; a generator is empty by the second loop."""
    total = math.sqrt(sum((p.grad**2).sum().item() for p in parameters if p.grad is not None))
    if total > max_norm:
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(max_norm / total)
    return total


def _norm_after(parameters, max_norm):
    grads = _grads_of(parameters)
    total = _global_norm(grads)
    for g in grads:
        g.mul_(min(1.0, max_norm / (total + 1e-6)))
    return _global_norm(grads)


def _squared_norm(parameters, max_norm):
    grads = _grads_of(parameters)
    total = _global_norm(grads)
    for g in grads:
        g.mul_(min(1.0, max_norm / (total + 1e-6)))
    return total**2


def _grad_none_crashes(parameters, max_norm):
    """Assumes every parameter has a gradient."""
    grads = [p.grad for p in parameters]
    total = math.sqrt(sum((g**2).sum().item() for g in grads))
    for g in grads:
        g.mul_(min(1.0, max_norm / (total + 1e-6)))
    return total


def _no_epsilon(parameters, max_norm):
    """Divides by the norm without a guard: a zero gradient divides by zero."""
    grads = _grads_of(parameters)
    total = math.sqrt(sum((g**2).sum().item() for g in grads))
    for g in grads:
        g.mul_(min(1.0, max_norm / total))
    return total


def _nan_at_zero(parameters, max_norm):
    """The same division, on tensors: 0 / 0 is NaN, not an error."""
    grads = _grads_of(parameters)
    total = torch.sqrt(sum((g**2).sum() for g in grads))
    for g in grads:
        g.mul_(torch.clamp(max_norm * g.norm() / (total * g.norm()), max=1.0))
    return total


def _unchanged(parameters, max_norm):
    """Computes the norm, never rescales (p.grad * c, thrown away)."""
    grads = _grads_of(parameters)
    total = _global_norm(grads)
    for g in grads:
        g = g * min(1.0, max_norm / total)
    return total


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_per_tensor, "each tensor was clipped by its own norm"),
        (_always_rescaled, "already below max_norm"),
        (_two_passes, "generator"),
        (_norm_after, "before clipping"),
        (_squared_norm, "squared"),
        (_grad_none_crashes, "whose .grad is None"),
        (_no_epsilon, "divided by their norm, 0"),
        (_nan_at_zero, "no NaN"),
        (_unchanged, "in place"),
    ],
    ids=["per-tensor", "always-rescaled", "two-passes", "norm-after", "squared", "grad-none", "no-epsilon",
         "nan-at-zero", "unchanged"],
)
def test_clip_rejects_wrong_answers_with_their_hint(wrong, hint):
    verdict = evaluate("ch1-clip", wrong)
    assert_not_yet(verdict, [2 / 7.3, 2.0 / 7.3])
    assert hint in verdict.hint, verdict.hint


def test_clip_stub_is_not_attempted():
    assert evaluate("ch1-clip", stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch1-train-loop


@pytest.fixture(scope="module")
def fit():
    return solution_namespace(CHAPTER, "ch1-train-loop")["fit"]


def test_train_loop_solution_is_correct(fit):
    assert evaluate("ch1-train-loop", fit).correct


def test_train_loop_check_uses_a_task_the_chapter_does_not(fit):
    """Another seed and distance than chapter 1's runs, and a budget that runs in seconds."""
    from transformer_course.exercises import ch1

    assert ch1.TRAIN_LOOP_TASK.seed not in (0, 1, 2) and ch1.TRAIN_LOOP_TASK.distance not in tasks.DISTANCES
    assert ch1.TRAIN_LOOP_RUN["seed"] not in (0, 1, 2)
    assert ch1.TRAIN_LOOP_RUN["steps"] * ch1.TRAIN_LOOP_RUN["batch_size"] <= 12_000


def _loop(model, optimizer, data, steps, eval_every, batch_size, clip_norm, seed, *, zero_grad=True,
          back_to_train=True, to_eval=True, eval_on_train=False, step=True, clip=True, backward=True,
          zero_before_step=False, same_batch=False, first_step=1, use_generator=True):
    """The solution's loop with one mistake switched on by a keyword."""
    generator = torch.Generator().manual_seed(seed)
    n = len(data.train_inputs)
    history = []
    model.train()
    for s in range(first_step, steps + first_step):
        if same_batch:
            index = torch.arange(batch_size)
        elif use_generator:
            index = torch.randint(n, (batch_size,), generator=generator)
        else:
            index = torch.randperm(n)[:batch_size]
        loss = F.cross_entropy(model(data.train_inputs[index]), data.train_targets[index])
        if zero_grad and not zero_before_step:
            optimizer.zero_grad()
        if backward:
            loss.backward()
        if zero_before_step:
            optimizer.zero_grad()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        if step:
            optimizer.step()
        if s % eval_every == 0:
            if to_eval:
                model.eval()
            inputs, targets = (data.train_inputs, data.train_targets) if eval_on_train else (
                data.test_inputs, data.test_targets)
            with torch.no_grad():
                answers = model(inputs).argmax(-1)
            history.append((s, (answers == targets).float().mean().item()))
            if back_to_train:
                model.train()
    return history


def _with(**mistake):
    def loop(*args):
        return _loop(*args, **mistake)
    return loop


def test_train_loop_accepts_other_correct_loops():
    """Batches from the global generator, or passes in a fresh order, train just as well."""
    assert evaluate("ch1-train-loop", _loop).correct
    assert evaluate("ch1-train-loop", _with(use_generator=False)).correct


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"zero_grad": False}, "zero_grad"),
        ({"back_to_train": False}, "model.train()"),
        ({"to_eval": False}, "model.eval()"),
        ({"eval_on_train": True}, "data.test_inputs"),
        ({"step": False}, "never stepped"),
        ({"clip": False}, "not clipped"),
        ({"backward": False}, "loss.backward()"),
        ({"zero_before_step": True}, "between backward() and step()"),
        ({"same_batch": True}, "new batch at every step"),
        ({"first_step": 0}, "counted from 1"),
    ],
    ids=["no-zero-grad", "stays-in-eval", "no-eval", "eval-on-train", "no-step", "no-clip", "no-backward",
         "zero-before-step", "same-batch", "from-zero"],
)
def test_train_loop_rejects_wrong_loops_with_their_hint(mistake, hint):
    verdict = evaluate("ch1-train-loop", _with(**mistake))
    assert verdict.status == "not yet", verdict
    assert hint in verdict.hint, verdict.hint


def test_train_loop_rejects_a_wrong_loss():
    """A loss that does not train (the mean logit) ends below the target, with the accuracy hint."""
    def wrong_loss(model, optimizer, data, steps, eval_every, batch_size, clip_norm, seed):
        generator = torch.Generator().manual_seed(seed)
        history = []
        model.train()
        for s in range(1, steps + 1):
            index = torch.randint(len(data.train_inputs), (batch_size,), generator=generator)
            loss = model(data.train_inputs[index]).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            if s % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    answers = model(data.test_inputs).argmax(-1)
                history.append((s, (answers == data.test_targets).float().mean().item()))
                model.train()
        return history

    verdict = evaluate("ch1-train-loop", wrong_loss)
    assert verdict.status == "not yet" and "cross-entropy" in verdict.hint, verdict


def test_train_loop_leaves_the_global_random_state_alone(fit):
    before = torch.get_rng_state()
    evaluate("ch1-train-loop", _with(use_generator=False))
    assert torch.equal(torch.get_rng_state(), before)


def test_train_loop_stub_is_not_attempted():
    assert evaluate("ch1-train-loop", stub).status == "not attempted yet"


def test_train_loop_watcher_is_invisible_to_a_model_without_mistakes():
    """The watched model and optimizer give the loop's numbers: same losses as a plain model and Adam."""
    from transformer_course.exercises import ch1

    data = tasks.RecallTask(distance=3, num_train=128, num_test=32, seed=5).make()
    torch.manual_seed(5)
    plain = models.make_recall_model("rnn")
    twin = models.make_recall_model("rnn")
    twin.load_state_dict(plain.state_dict())
    watched = ch1._Watched(twin, data)
    runs = []
    for model, optimizer in ((plain, torch.optim.Adam(plain.parameters(), lr=3e-3)),
                             (watched, ch1._WatchedAdam(watched.parameters(), lr=3e-3, clip_norm=1.0))):
        runs.append(_loop(model, optimizer, data, 20, 10, 16, 1.0, seed=5))
    assert runs[0] == runs[1]
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), twin.parameters(), strict=True))
