"""Chapter 2's exercises: the instructor's solutions pass their checkers, plausible wrong answers
get "not yet" with a hint that does not give the answer away, stubs are "not attempted yet", and
the claims of the worked answers hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_not_yet_hiding as assert_not_yet
from conftest import exercise_stub as stub
from conftest import solution_namespace

from transformer_course import encoder, gradient_flow
from transformer_course.exercises import evaluate

CHAPTER = "02_transformer_architecture"


# ---------------------------------------------------------------- ch2-pre-ln


@pytest.fixture(scope="module")
def gradient_norms():
    return solution_namespace(CHAPTER, "ch2-pre-ln")["gradient_norms"]


def test_pre_ln_solution_is_correct(gradient_norms):
    assert evaluate("ch2-pre-ln", gradient_norms).correct


def test_pre_ln_solution_leaves_x_alone(gradient_norms):
    net = gradient_flow.build_model("encoder", d_model=8, num_heads=2)
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    before = x.clone()
    gradient_norms(net, x, torch.ones(8, dtype=torch.float64))
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None


def _grad(net, x, loss_of_output):
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of_output(net(leaf)), leaf)
    return grad[0]  # (T, D)


def _sum_of_outputs(net, x, w):
    """The loss sums the last output: no gradient through the final layer norm."""
    return _grad(net, x, lambda out: out[0, -1].sum()).norm(dim=-1)


def _first_position(net, x, w):
    """The loss reads position 0 instead of the last one."""
    return _grad(net, x, lambda out: out[0, 0] @ w).norm(dim=-1)


def _log10_norms(net, x, w):
    """log10 of the norms, as gradient_flow returns them, instead of the norms."""
    return _grad(net, x, lambda out: out[0, -1] @ w).norm(dim=-1).log10()


def _squared_norms(net, x, w):
    return _grad(net, x, lambda out: out[0, -1] @ w).pow(2).sum(-1)


def _whole_sequence(net, x, w):
    """The loss reads every position."""
    return _grad(net, x, lambda out: (out[0] @ w).sum()).norm(dim=-1)


@pytest.mark.parametrize(
    "wrong",
    [_sum_of_outputs, _first_position, _log10_norms, _squared_norms, _whole_sequence],
    ids=["sum", "first-position", "log10", "squared", "whole-sequence"],
)
def test_pre_ln_rejects_wrong_answers(wrong):
    assert_not_yet(evaluate("ch2-pre-ln", wrong), [])


def test_pre_ln_hints_name_the_mistake():
    assert "final layer norm" in evaluate("ch2-pre-ln", _sum_of_outputs).hint
    assert "last position" in evaluate("ch2-pre-ln", _first_position).hint


def test_pre_ln_stub_is_not_attempted():
    assert evaluate("ch2-pre-ln", stub).status == "not attempted yet"


def test_pre_ln_worked_answer(gradient_norms):
    """Pre-LN: T |g_0| in a narrow band for T = 8, 64, 512; |g_0| close to the average of the
    positions between the first and the last; the last position stands out."""
    t_times_g0, first_vs_middle, last_vs_rest = [], [], []
    for T in (8, 64, 512):
        log_g0, log_middle, log_last = [], [], []
        for seed in range(3):
            torch.manual_seed(seed)
            net = encoder.Encoder(2, 32, 4, 128, dropout=0.0, norm_first=True).double().eval()
            generator = torch.Generator().manual_seed(seed)
            x = torch.randn(1, T, 32, generator=generator, dtype=torch.float64)
            w = torch.randn(32, generator=generator, dtype=torch.float64)
            norms = gradient_norms(net, x, w)
            log_g0.append(norms[0].log10().item())
            log_middle.append(norms[1:-1].mean().log10().item())
            log_last.append(norms[-1].log10().item() - norms[:-1].mean().log10().item())
        t_times_g0.append(T * 10 ** np.mean(log_g0))
        first_vs_middle.append(10 ** (np.mean(log_g0) - np.mean(log_middle)))
        last_vs_rest.append(10 ** np.mean(log_last))
    assert max(t_times_g0) / min(t_times_g0) < 2  # like 1/T
    assert all(0.7 < r < 1.3 for r in first_vs_middle)  # distance does not matter
    assert min(last_vs_rest) > 5  # the residual path to the last position


# ---------------------------------------------------------------- ch2-attention-memory


@pytest.fixture(scope="module")
def counts():
    ns = solution_namespace(CHAPTER, "ch2-attention-memory")
    return ns["attention_weight_count"], ns["hidden_number_count"]


def test_attention_memory_solution_is_correct(counts):
    assert evaluate("ch2-attention-memory", *counts).correct


def test_attention_memory_worked_answer(counts):
    """The numbers of the worked answer, and the encoder of the sweep agrees with them."""
    attention_weight_count, hidden_number_count = counts
    assert attention_weight_count(2, 4, 1024) == 8_388_608
    assert hidden_number_count(1024, 32) == 32_768
    assert attention_weight_count(2, 4, 1024) == 256 * hidden_number_count(1024, 32)
    net = gradient_flow.build_model("encoder")
    with torch.no_grad():
        _, weights = net(torch.randn(1, 64, 32, dtype=torch.float64), return_attention=True)
    assert sum(w.numel() for w in weights) == attention_weight_count(2, 4, 64)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda num_layers, num_heads, T: num_heads * T * T, "number of layers"),  # one layer only
        (lambda num_layers, num_heads, T: num_layers * num_heads * T, "grows like T"),  # T, not T^2
        (lambda num_layers, num_heads, T: num_layers * T * T, "return_attention"),  # heads forgotten
        (lambda num_layers, num_heads, T: num_layers * num_heads * T * (T - 1), "return_attention"),
    ],
    ids=["no-layers", "linear-in-T", "no-heads", "no-diagonal"],
)
def test_attention_memory_rejects_wrong_weight_counts(counts, wrong, hint):
    verdict = evaluate("ch2-attention-memory", wrong, counts[1])
    assert_not_yet(verdict, [3 * 2 * 7 * 7])
    assert hint in verdict.hint


@pytest.mark.parametrize(
    "wrong",
    [lambda T, d_model: T + d_model, lambda T, d_model: d_model, lambda T, d_model: (T + 1) * d_model],
    ids=["sum", "last-state-only", "with-h0"],
)
def test_attention_memory_rejects_wrong_hidden_counts(counts, wrong):
    verdict = evaluate("ch2-attention-memory", counts[0], wrong)
    assert_not_yet(verdict, [7 * 8])
    assert "hidden_number_count" in verdict.hint


def test_attention_memory_stubs_are_not_attempted(counts):
    assert evaluate("ch2-attention-memory", stub, stub).status == "not attempted yet"
    assert evaluate("ch2-attention-memory", counts[0], stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch2-orthogonal-rnn (conceptual)


def test_orthogonal_rnn_worked_answer():
    """Orthogonal W_hh: still exponential in T, but losing less per step than the default init."""
    log_g0 = {"orthogonal": {}, "default": {}}
    for T in (8, 64, 512):
        for kind in log_g0:
            values = []
            for seed in range(3):
                rnn = gradient_flow.build_model("rnn", seed=seed)
                if kind == "orthogonal":
                    orthogonal_generator = torch.Generator().manual_seed(seed)
                    with torch.no_grad():
                        torch.nn.init.orthogonal_(rnn.weight_hh_l0, generator=orthogonal_generator)
                generator = torch.Generator().manual_seed(seed)
                x = torch.randn(1, T, 32, generator=generator, dtype=torch.float64)
                w = torch.randn(32, generator=generator, dtype=torch.float64)
                values.append(gradient_flow.input_gradient_log10_norms(rnn, x, w)[0, 0].item())
            log_g0[kind][T] = float(np.mean(values))
    factor = {kind: 10 ** ((v[512] - v[64]) / (512 - 64)) for kind, v in log_g0.items()}
    assert log_g0["orthogonal"][512] < log_g0["orthogonal"][64] - 30  # still exponential
    assert factor["default"] < factor["orthogonal"] < 0.9  # slower, but a factor below 1 per step
    # a straight line in T: the slope between 8 and 64 is close to the one between 64 and 512
    early = (log_g0["orthogonal"][64] - log_g0["orthogonal"][8]) / 56
    late = (log_g0["orthogonal"][512] - log_g0["orthogonal"][64]) / 448
    assert abs(early - late) < 0.25 * abs(late)
