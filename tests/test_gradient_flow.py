"""gradient_flow: autograd depth, seeded models, input-gradient norms that never underflow, and
per-layer statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transformer_course import encoder, gradient_flow, models, tasks


def _plain_log10_norms(model: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Reference: ordinary autograd, log10 of each position's gradient norm, (B, T)."""
    leaf = x.clone().requires_grad_(True)
    out = model(leaf)
    out = out[0] if isinstance(model, nn.RNN) else out
    (out[:, -1] @ w).sum().backward()
    return leaf.grad.norm(dim=-1).log10()


def _inputs(B: int, T: int, D: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=generator, dtype=torch.float64)
    w = torch.randn(D, generator=generator, dtype=torch.float64)
    return x, w


# ------------------------------------------------------------------------------ autograd_depth


def test_autograd_depth_counts_operations_on_the_longest_path():
    x = torch.ones(3, requires_grad=True)
    assert gradient_flow.autograd_depth((2 * x).exp().sum(), x) == 3
    # Two branches of different lengths: the longest one counts.
    y = x.exp().exp().exp() + x
    assert gradient_flow.autograd_depth(y.sum(), x) == 5


def test_rnn_depth_grows_linearly_with_length_and_encoder_depth_does_not():
    def depth(kind: str, T: int) -> int:
        model = gradient_flow.build_model(kind, d_model=8, num_heads=2)
        x = torch.randn(1, T, 8, dtype=torch.float64, requires_grad=True)
        out = model(x)[0] if kind == "rnn" else model(x)
        return gradient_flow.autograd_depth(out[:, -1].sum(), x)

    rnn = [depth("rnn", T) for T in (5, 10, 20)]
    assert rnn[1] - rnn[0] == 5 * 3 and rnn[2] - rnn[1] == 10 * 3  # matmul, add, tanh per step
    assert len({depth("encoder", T) for T in (5, 10, 20)}) == 1


def test_autograd_depth_rejects_bad_input():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="output"):
        gradient_flow.autograd_depth(1.0, x)
    with pytest.raises(ValueError, match="inputs: expected a leaf"):
        gradient_flow.autograd_depth((2 * x).sum(), 2 * x)
    with pytest.raises(ValueError, match="no grad_fn"):
        gradient_flow.autograd_depth(torch.ones(3), x)
    other = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="does not depend on inputs"):
        gradient_flow.autograd_depth((2 * other).sum(), x)


# ------------------------------------------------------------------------------ build_model


def test_build_model_is_seeded_eval_float64_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = gradient_flow.build_model("encoder", d_model=8, num_heads=2, seed=5)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG did not move
    b = gradient_flow.build_model("encoder", d_model=8, num_heads=2, seed=5)
    c = gradient_flow.build_model("encoder", d_model=8, num_heads=2, seed=6)
    assert isinstance(a, encoder.Encoder) and not a.training
    assert all(p.dtype == torch.float64 for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    rnn = gradient_flow.build_model("rnn", d_model=8, num_layers=3)
    assert isinstance(rnn, nn.RNN) and rnn.num_layers == 1 and rnn.batch_first
    assert rnn.nonlinearity == "tanh"
    # PyTorch's default RNN init: every weight uniform in ±1/√D.
    assert rnn.weight_hh_l0.abs().max() <= 1 / math.sqrt(8)


def test_the_encoder_is_the_recall_encoder_at_its_sizes():
    built = gradient_flow.build_model("encoder", dtype=torch.float32)
    trained = models.make_recall_model("encoder").encoder  # the encoder chapter 5 trains
    assert [p.shape for p in built.parameters()] == [p.shape for p in trained.parameters()]
    def layout(stack):
        return [(layer.norm_first, layer.residual) for layer in stack.layers]

    assert layout(built) == layout(trained)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model_kind": "lstm"}, ValueError, "model_kind"),
        ({"model_kind": "rnn", "d_model": 0}, ValueError, "d_model"),
        ({"model_kind": "encoder", "num_layers": 1.5}, TypeError, "num_layers"),
        ({"model_kind": "encoder", "seed": True}, TypeError, "seed"),
        ({"model_kind": "encoder", "dtype": torch.int64}, TypeError, "dtype"),
        ({"model_kind": "encoder", "d_model": 10, "num_heads": 4}, ValueError, "divisible"),
    ],
)
def test_build_model_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gradient_flow.build_model(**kwargs)


# ------------------------------------------------------------------------------ gradient norms


@pytest.mark.parametrize("chunk_length", [1, 7, 16, 64, 1000])
def test_chunked_rnn_gradients_equal_plain_autograd(chunk_length):
    rnn = gradient_flow.build_model("rnn", d_model=6, seed=1)
    x, w = _inputs(B=2, T=50, D=6, seed=1)
    ours = gradient_flow.input_gradient_log10_norms(rnn, x, w, chunk_length=chunk_length)
    assert ours.shape == (2, 50)
    assert torch.allclose(ours, _plain_log10_norms(rnn, x, w), atol=1e-9)


def test_chunked_gradients_work_for_a_multi_layer_rnn():
    torch.manual_seed(0)
    rnn = nn.RNN(5, 5, num_layers=2, batch_first=True).double()
    x, w = _inputs(B=3, T=40, D=5)
    ours = gradient_flow.input_gradient_log10_norms(rnn, x, w, chunk_length=9)
    assert torch.allclose(ours, _plain_log10_norms(rnn, x, w), atol=1e-9)


def test_encoder_gradients_equal_plain_autograd_and_leave_parameters_alone():
    model = gradient_flow.build_model("encoder", d_model=8, num_heads=2)
    x, w = _inputs(B=2, T=12, D=8)
    ours = gradient_flow.input_gradient_log10_norms(model, x, w)
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad  # the caller's tensor is not modified
    assert torch.allclose(ours, _plain_log10_norms(model, x, w), atol=1e-9)


def test_rnn_gradient_below_float64_range_is_still_measured():
    rnn = gradient_flow.build_model("rnn", d_model=32)
    x, w = _inputs(B=1, T=1024, D=32)
    leaf = x.clone().requires_grad_(True)
    (rnn(leaf)[0][:, -1] @ w).sum().backward()
    assert (leaf.grad[0, 0] == 0).all()  # plain autograd underflows to exactly zero
    ours = gradient_flow.input_gradient_log10_norms(rnn, x, w)[0]
    assert torch.isfinite(ours).all()
    assert ours[0] < -308 < ours[-1]
    # Exponential decay: log10 of the norm falls by a steady amount per step back in time.
    per_step = (ours[200] - ours[-200]) / (1024 - 400)
    assert -0.5 < per_step < -0.2


def test_batch_rows_are_independent():
    rnn = gradient_flow.build_model("rnn", d_model=4)
    x, w = _inputs(B=3, T=30, D=4)
    together = gradient_flow.input_gradient_log10_norms(rnn, x, w, chunk_length=8)
    alone = torch.cat([gradient_flow.input_gradient_log10_norms(rnn, x[i : i + 1], w, 8) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-12)


def test_zero_direction_gives_minus_infinity_not_nan():
    rnn = gradient_flow.build_model("rnn", d_model=4)
    x, _ = _inputs(B=1, T=20, D=4)
    out = gradient_flow.input_gradient_log10_norms(rnn, x, torch.zeros(4, dtype=torch.float64), 8)
    assert torch.isneginf(out).all()


def test_gradient_vs_position_shows_the_chapter_claims():
    T = 64
    rnn = gradient_flow.gradient_vs_position("rnn", T, seed=0)
    enc = gradient_flow.gradient_vs_position("encoder", T, seed=0)
    assert rnn.shape == enc.shape == (T,) and rnn.dtype == torch.float64
    assert torch.equal(enc, gradient_flow.gradient_vs_position("encoder", T, seed=0))  # seeded
    assert rnn[-2] - rnn[0] > 10  # the RNN: ten orders of magnitude between the ends
    middle = torch.log10((10 ** enc[1:-1]).mean())
    assert abs(enc[0] - middle) < math.log10(2)  # the encoder: position 0 like any other
    assert abs(enc[0] + math.log10(T)) < 1.5  # and of order 1/T


_grads = gradient_flow.input_gradient_log10_norms


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, w: _grads("rnn", x, w), TypeError, "model"),
        (lambda m, x, w: _grads(m, x[0], w), ValueError, r"x: expected shape \(B, T, D\)"),
        (lambda m, x, w: _grads(m, x, w[None]), ValueError, r"w: expected shape \(D,\)"),
        (lambda m, x, w: _grads(m, x.long(), w), TypeError, "floating-point"),
        (lambda m, x, w: _grads(m, x, w, chunk_length=0), ValueError, "chunk_length"),
        (lambda m, x, w: _grads(m, x[..., :3], w), ValueError, "x, w"),
        (lambda m, x, w: _grads(nn.LSTM(4, 4, batch_first=True).double(), x, w), TypeError, "nn.RNN"),
        (lambda m, x, w: _grads(nn.RNN(4, 4).double(), x, w), ValueError, "batch_first"),
        (lambda m, x, w: _grads(nn.Linear(4, 3).double(), x, w), ValueError, "model: expected an output"),
        (lambda m, x, w: gradient_flow.gradient_vs_position("gru", 8), ValueError, "model_kind"),
        (lambda m, x, w: gradient_flow.gradient_vs_position("rnn", 0), ValueError, "T"),
    ],
)
def test_gradient_functions_reject_bad_input(call, error, match):
    model = gradient_flow.build_model("rnn", d_model=4)
    x, w = _inputs(B=1, T=6, D=4)
    with pytest.raises(error, match=match):
        call(model, x, w)


# ------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (-347.47, 3, "3.39e-348"),
        (math.log10(2.5e-3), 3, "2.50e-03"),
        (math.log10(9.9996), 3, "1.00e+01"),  # the mantissa rounds up: carry into the exponent
        (0.0, 2, "1.0e+00"),
        (float("-inf"), 3, "0"),
        (torch.tensor(-1.0), 1, "1e-01"),
    ],
)
def test_format_power_of_ten(value, digits, expected):
    assert gradient_flow.format_power_of_ten(value, digits) == expected


def test_format_power_of_ten_rejects_bad_input():
    with pytest.raises(TypeError, match="log10_value"):
        gradient_flow.format_power_of_ten("1e-3")
    with pytest.raises(TypeError, match="log10_value"):
        gradient_flow.format_power_of_ten(True)
    with pytest.raises(ValueError, match="finite"):
        gradient_flow.format_power_of_ten(float("nan"))
    with pytest.raises(ValueError, match="digits"):
        gradient_flow.format_power_of_ten(1.0, digits=0)


def _recall_batch(distance=10, n=128):
    data = tasks.RecallTask(distance, num_train=n, num_test=16).make()
    return data.train_inputs, data.train_targets


def test_position_spread_is_zero_for_identical_positions_and_scale_free():
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
    assert gradient_flow.position_spread(x.mean(dim=1, keepdim=True).expand(3, 6, 4)) < 1e-6
    assert math.isclose(gradient_flow.position_spread(x), gradient_flow.position_spread(5 * x), rel_tol=1e-5)
    assert 0.5 < gradient_flow.position_spread(x) <= 1.0
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, D\), got \(6, 4\)"):
        gradient_flow.position_spread(x[0])


def test_layer_statistics_gradients_equal_autograd_and_leave_no_grad_behind():
    ids, targets = _recall_batch()
    torch.manual_seed(0)
    model = models.EncoderClassifier(d_model=16, num_heads=2, num_layers=3)
    stats = gradient_flow.layer_statistics(model, ids, targets)
    assert len(stats.input_grad_norms) == len(stats.param_grad_norms) == 3 and len(stats.spread) == 4
    assert all(p.grad is None for p in model.parameters())
    # By hand: the gradient reaching layer 1's input is the gradient at the embeddings' output.
    x = model.embedding(ids).detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model.readout(model.encoder(x)[:, -1]), targets)
    (grad_x,) = torch.autograd.grad(loss, x, retain_graph=True)
    assert math.isclose(stats.input_grad_norms[0], grad_x.norm().item(), rel_tol=1e-5)
    assert math.isclose(stats.loss, loss.item(), rel_tol=1e-6)
    loss.backward()
    by_hand = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.encoder.layers[2].parameters()))
    assert math.isclose(stats.param_grad_norms[2], by_hand, rel_tol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_without_residuals_every_position_collapses_to_one_vector(norm_first):
    ids, targets = _recall_batch()
    spreads = {}
    for residual in (True, False):
        torch.manual_seed(0)
        model = models.EncoderClassifier(d_model=32, num_heads=4, num_layers=6, norm_first=norm_first,
                                        residual=residual)
        spreads[residual] = gradient_flow.layer_statistics(model, ids, targets).spread
    assert min(spreads[True]) > 0.3  # with residuals the tokens stay distinguishable
    assert max(spreads[False][3:]) < 0.01  # without, a few layers of averaging erase them


def test_layer_statistics_rejects_other_models():
    ids, targets = _recall_batch(n=8)
    with pytest.raises(TypeError, match=r"model: expected a module with \.embedding.*without \.embedding"):
        gradient_flow.layer_statistics(nn.Linear(2, 2), ids, targets)
    model = models.EncoderClassifier(d_model=8, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match=r"input_ids, targets: expected shapes"):
        gradient_flow.layer_statistics(model, ids, targets[:3])


@pytest.mark.parametrize("norm_first", [False, True])
def test_residuals_carry_the_gradient_to_the_first_layer(norm_first):
    """Chapter 5's claim at its depth (12 layers): at initialisation the gradient reaching the input
    of layer 1 is at least twice as large with the residual connections as without, every seed."""
    ids, targets = _recall_batch()
    for seed in range(3):
        first = {}
        for residual in (True, False):
            torch.manual_seed(seed)
            model = models.EncoderClassifier(d_model=32, num_heads=4, num_layers=12, norm_first=norm_first,
                                            residual=residual)
            first[residual] = gradient_flow.layer_statistics(model, ids, targets).input_grad_norms[0]
        assert first[True] >= 2 * first[False], f"seed {seed}: {first}"


def test_layer_statistics_of_a_stack_without_layer_norm():
    """Chapter 5 replaces every norm by the identity (residuals kept): the statistics still work,
    the positions stay apart, and the vectors grow with depth, since nothing resets their scale."""
    ids, targets = _recall_batch()
    torch.manual_seed(0)
    model = models.EncoderClassifier(d_model=32, num_heads=4, num_layers=12)
    for layer in model.encoder.layers:
        layer.norm1, layer.norm2 = nn.Identity(), nn.Identity()
    assert model.encoder.norm is None  # post-LN: no final norm to remove
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    stats = gradient_flow.layer_statistics(model, ids, targets)
    assert min(stats.spread) > 0.3  # the residuals keep the positions apart
    assert all(math.isfinite(g) and g > 0 for g in stats.input_grad_norms)
    with torch.no_grad():
        x = model.embedding(ids)  # (B, T, D)
        y = model.encoder(x)  # (B, T, D)
    assert y.norm(dim=-1).mean() > 1.5 * x.norm(dim=-1).mean()
