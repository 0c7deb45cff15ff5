"""Chapter 2's exercises: the instructor's solutions pass their checkers, plausible wrong answers
get "not yet" with a hint that does not give the answer away, stubs are "not attempted yet", and
the claims of the worked answers hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_not_yet_hiding as assert_not_yet
from conftest import exercise_stub as stub
from conftest import solution_namespace

from transformer_course import attention, encoder, gradient_flow
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


# ---------------------------------------------------------------- ch2-path-length


@pytest.fixture(scope="module")
def path_layers():
    return solution_namespace(CHAPTER, "ch2-path-length")["path_layers"]


def test_path_length_solution_is_correct(path_layers):
    assert evaluate("ch2-path-length", path_layers).correct


def test_path_length_rule_is_the_measurement():
    """The checker's rule for long sequences agrees with measured stacks, at every small size."""
    from transformer_course.exercises import ch2

    for kind in ch2.PATH_KINDS:
        for T in (2, 5, 9, 16, 17):
            for width in (2, 3, 5):
                assert ch2.measured_path_layers(kind, T, width) == ch2.path_layers_rule(kind, T, width), (
                    kind, T, width)


def test_path_length_solution_gives_the_chapter_table(path_layers):
    """k = 3, r = 4, T = 8 .. 64: the counts the chapter measured."""
    lengths = (8, 16, 32, 64)
    assert [path_layers("convolution", T, 3) for T in lengths] == [4, 8, 16, 32]
    assert [path_layers("dilated convolution", T, 3) for T in lengths] == [2, 3, 4, 4]
    assert [path_layers("restricted self-attention", T, 4) for T in lengths] == [2, 4, 8, 16]
    assert [path_layers("self-attention", T, 1) for T in lengths] == [1, 1, 1, 1]


def _mistake(solution, kind, wrong):
    """The solution, with `wrong(T, width)` for one kind."""
    def path_layers(k, T, width):
        return wrong(T, width) if k == kind else solution(k, T, width)
    return path_layers


@pytest.mark.parametrize(
    ("kind", "wrong", "hint"),
    [
        ("convolution", lambda T, w: -(-T // (w - 1)), "T - 1 apart"),
        ("convolution", lambda T, w: (T - 1) // (w - 1), "round up"),
        ("convolution", lambda T, w: -(-(T - 1) // w), "k - 1 positions"),
        ("restricted self-attention", lambda T, w: -(-(T - 1) // (2 * w + 1)), "2r + 1 keys"),
        ("restricted self-attention", lambda T, w: -(-T // w), "T - 1 apart"),
        ("dilated convolution", lambda T, w: math.ceil(math.log(T, w)), "math.log rounds"),
        ("dilated convolution", lambda T, w: math.ceil(math.log2(T)), "dilated layers"),
        ("self-attention", lambda T, w: 2, "how many positions"),
    ],
    ids=["conv-T", "conv-floor", "conv-k", "restricted-window", "restricted-T", "dilated-float-log",
         "dilated-log2", "attention-two"],
)
def test_path_length_rejects_wrong_rules_with_their_hint(path_layers, kind, wrong, hint):
    verdict = evaluate("ch2-path-length", _mistake(path_layers, kind, wrong))
    assert_not_yet(verdict, [])
    assert hint in verdict.hint, verdict.hint


def test_path_length_stub_is_not_attempted():
    assert evaluate("ch2-path-length", stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch2-local-attention


@pytest.fixture(scope="module")
def local_attention():
    return solution_namespace(CHAPTER, "ch2-local-attention")["local_attention"]


def test_local_attention_solution_is_correct(local_attention):
    assert evaluate("ch2-local-attention", local_attention).correct


def test_local_attention_cost_is_linear_in_T(local_attention):
    """FLOPs counted: 4 T (2r + 1) D_h, doubling with T; the masked full version grows like T^2."""
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for T in (256, 512, 1024):
        q = torch.randn(1, T, 8)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            local_attention(q, q, q, 3)
        counts.append(counter.get_total_flops())
        assert counts[-1] == 4 * T * 7 * 8
    assert counts[2] == 2 * counts[1] == 4 * counts[0]


def _band_masked(q, k, v, reach):
    """Right outputs, but all T x T scores."""
    T = q.shape[1]
    band = (torch.arange(T)[:, None] - torch.arange(T)).abs() <= reach
    return attention.scaled_dot_product_attention(q, k, v, band)[0]


def _windows(q, k, v, reach, scale=True, mask_edges=True, left=None, right=None):
    """The solution's windows, with one mistake switched on."""
    left = reach if left is None else left
    right = reach if right is None else right
    B, T, d = q.shape
    pad = (0, 0, reach, reach)
    keys = torch.nn.functional.pad(k, pad).unfold(1, 2 * reach + 1, 1)
    values = torch.nn.functional.pad(v, pad).unfold(1, 2 * reach + 1, 1)
    scores = torch.einsum("btd,btdw->btw", q, keys) / (math.sqrt(d) if scale else 1.0)
    offset = torch.arange(-reach, reach + 1)
    position = torch.arange(T)[:, None] + offset
    keep = (offset >= -left) & (offset <= right)
    if mask_edges:
        keep = keep & (position >= 0) & (position < T)
    else:
        keep = keep.expand(T, -1)
    weights = scores.masked_fill(~keep, float("-inf")).softmax(-1)
    return torch.einsum("btw,btdw->btd", weights, values)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_band_masked, "all T x T scores"),
        (lambda q, k, v, r: _windows(q, k, v, r, scale=False), "not scaled"),
        (lambda q, k, v, r: _windows(q, k, v, r, mask_edges=False), "padded beyond the ends"),
        (lambda q, k, v, r: _windows(q, k, v, r, left=max(r - 1, 0), right=max(r - 1, 0)), "both ends"),
        (lambda q, k, v, r: _windows(q, k, v, r, left=r, right=0), "away from the ends"),
        (lambda q, k, v, r: _windows(q, k, v, r)[:, :-1], "(B, T, D_h)"),
    ],
    ids=["band-mask", "no-scale", "edges", "narrow", "one-sided", "shape"],
)
def test_local_attention_rejects_wrong_answers_with_their_hint(wrong, hint):
    verdict = evaluate("ch2-local-attention", wrong)
    assert_not_yet(verdict, [])
    assert hint in verdict.hint, verdict.hint


def test_local_attention_stub_is_not_attempted():
    assert evaluate("ch2-local-attention", stub).status == "not attempted yet"


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
