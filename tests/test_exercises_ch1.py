"""Chapter 1's exercises: the instructor's solutions pass their checkers, plausible wrong answers
get "not yet" with a hint that does not give the answer away, stubs are "not attempted yet", and
the claims of the worked answers hold."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_not_yet_hiding as assert_not_yet
from conftest import exercise_stub as stub
from conftest import solution_namespace

from transformer_course import rnn, tasks
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


# ---------------------------------------------------------------- ch1-chance


@pytest.fixture(scope="module")
def constant_answer_accuracy():
    return solution_namespace(CHAPTER, "ch1-chance")["constant_answer_accuracy"]


def test_chance_solution_is_correct(constant_answer_accuracy):
    assert evaluate("ch1-chance", constant_answer_accuracy).correct


def test_chance_worked_answer(constant_answer_accuracy):
    """On the recall task the constant answer is within sampling noise (3 sigma) of 1/8."""
    data = tasks.RecallTask(distance=50).make()
    accuracy = constant_answer_accuracy(data.train_targets, data.test_targets)
    sigma = math.sqrt(tasks.CHANCE * (1 - tasks.CHANCE) / len(data.test_targets))
    assert abs(accuracy - tasks.CHANCE) < 3 * sigma


def _test_set_mode(train, test):
    return (test == torch.bincount(test).argmax()).float().mean().item()


def _count(train, test):
    return (test == torch.bincount(train).argmax()).sum().item()


def _one_over_classes(train, test):
    return 1 / len(torch.unique(train))


def _train_accuracy(train, test):
    return (train == torch.bincount(train).argmax()).float().mean().item()


@pytest.mark.parametrize(
    "wrong",
    [_test_set_mode, _count, _one_over_classes, _train_accuracy],
    ids=["test-set-mode", "count", "one-over-classes", "train-accuracy"],
)
def test_chance_rejects_wrong_answers(wrong):
    verdict = evaluate("ch1-chance", wrong)
    assert_not_yet(verdict, [11 / 60])


def test_chance_hint_names_the_mistake():
    assert "training answers only" in evaluate("ch1-chance", _test_set_mode).hint
    assert "between 0 and 1" in evaluate("ch1-chance", _count).hint


def test_chance_stub_is_not_attempted():
    assert evaluate("ch1-chance", stub).status == "not attempted yet"
