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
def gradient_matrix():
    return solution_namespace(CHAPTER, "ch2-pre-ln")["gradient_matrix"]


def test_pre_ln_solution_is_correct(gradient_matrix):
    assert evaluate("ch2-pre-ln", gradient_matrix).correct


def test_pre_ln_solution_leaves_x_alone_and_its_last_row_is_the_sweep(gradient_matrix):
    net = gradient_flow.build_model("encoder", d_model=8, num_heads=2)
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    w = torch.randn(8, dtype=torch.float64)
    before = x.clone()
    matrix = gradient_matrix(net, x, w)
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None
    assert torch.allclose(matrix[-1].log10(), gradient_flow.input_gradient_log10_norms(net, x, w)[0])


def _rows(net, x, loss_of_row):
    """Row i: the gradient norms at every input position of the loss loss_of_row(output, i)."""
    leaf = x.detach().clone().requires_grad_(True)
    out = net(leaf)  # (1, T, D)
    rows = [torch.autograd.grad(loss_of_row(out, i), leaf, retain_graph=True)[0][0].norm(dim=-1)
            for i in range(x.shape[1])]
    return torch.stack(rows)  # (T, T)


def _sum_of_outputs(net, x, w):
    """Each loss sums the output vector: no gradient through the final layer norm."""
    return _rows(net, x, lambda out, i: out[0, i].sum())


def _transposed(net, x, w):
    return _rows(net, x, lambda out, i: out[0, i] @ w).T


def _last_row_repeated(net, x, w):
    """Every row puts the loss on the last position, as the sweep did."""
    return _rows(net, x, lambda out, i: out[0, -1] @ w)


def _log10_norms(net, x, w):
    """log10 of the norms, as gradient_flow returns them, instead of the norms."""
    return _rows(net, x, lambda out, i: out[0, i] @ w).log10()


def _squared_norms(net, x, w):
    return _rows(net, x, lambda out, i: out[0, i] @ w) ** 2


def _whole_sequence(net, x, w):
    """Every loss reads every position."""
    return _rows(net, x, lambda out, i: (out[0] @ w).sum())


def _modifies_x(net, x, w):
    """Right numbers, but the caller's x is turned into a leaf that requires grad."""
    x.requires_grad_(True)
    out = net(x)
    rows = [torch.autograd.grad(out[0, i] @ w, x, retain_graph=True)[0][0].norm(dim=-1)
            for i in range(x.shape[1])]
    return torch.stack(rows)


@pytest.mark.parametrize(
    "wrong",
    [_sum_of_outputs, _transposed, _last_row_repeated, _log10_norms, _squared_norms, _whole_sequence,
     _modifies_x],
    ids=["sum", "transposed", "last-row", "log10", "squared", "whole-sequence", "modifies-x"],
)
def test_pre_ln_rejects_wrong_answers(wrong):
    assert_not_yet(evaluate("ch2-pre-ln", wrong), [])


def test_pre_ln_hints_name_the_mistake():
    assert "final layer norm" in evaluate("ch2-pre-ln", _sum_of_outputs).hint
    assert "swapped" in evaluate("ch2-pre-ln", _transposed).hint
    assert "position i" in evaluate("ch2-pre-ln", _last_row_repeated).hint
    assert "copy" in evaluate("ch2-pre-ln", _modifies_x).hint


def test_pre_ln_stub_is_not_attempted():
    assert evaluate("ch2-pre-ln", stub).status == "not attempted yet"


def _worked_answer_measurement(gradient_matrix, T):
    """At one length, averaged over seeds 0-2: (T times the mean off-diagonal entry, mean entry at
    distance >= T/2 over mean entry at distance 1, mean diagonal entry over mean off-diagonal / T)."""
    per_seed = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = encoder.Encoder(2, 32, 4, 128, dropout=0.0, norm_first=True).double().eval()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(1, T, 32, generator=generator, dtype=torch.float64)
        w = torch.randn(32, generator=generator, dtype=torch.float64)
        G = gradient_matrix(net, x, w)  # (T, T)
        distance = (torch.arange(T)[:, None] - torch.arange(T)).abs()  # (T, T)
        off = G[distance > 0].mean()
        per_seed.append((T * off.item(), (G[distance >= T // 2].mean() / G[distance == 1].mean()).item(),
                         (G.diagonal().mean() / off).item() / T))
    return np.mean(per_seed, axis=0)


def test_pre_ln_worked_answer(gradient_matrix):
    """Pre-LN, T = 8, 64, 256: T times the mean off-diagonal entry in a narrow band (1/T); entries
    far from the diagonal as large as those next to it; the diagonal over the rest grows like T."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small backward passes: one thread is fastest on a busy machine
    try:
        scaled, far_vs_near, diagonal_over_T = np.array(
            [_worked_answer_measurement(gradient_matrix, T) for T in (8, 64, 256)]).T
    finally:
        torch.set_num_threads(threads)
    assert scaled.max() / scaled.min() < 1.5  # like 1/T
    assert ((0.8 < far_vs_near) & (far_vs_near < 1.2)).all()  # distance does not matter
    assert diagonal_over_T.max() / diagonal_over_T.min() < 1.3  # diagonal / the rest grows like T
    assert diagonal_over_T.min() * 8 > 5  # the diagonal stands out already at T = 8


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
