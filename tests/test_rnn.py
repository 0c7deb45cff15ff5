"""rnn: the explicit-loop Elman RNN equals torch.nn.RNN, forward and backward; BPTT tools."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer_course import rnn


def _pair(width: int = 3, H: int = 5, bias: bool = True, seed: int = 0) -> tuple[nn.RNN, rnn.ElmanRNN]:
    torch.manual_seed(seed)
    reference = nn.RNN(width, H, bias=bias, batch_first=True).double()
    return reference, rnn.ElmanRNN.from_torch(reference)


def _x(B: int = 4, T: int = 9, width: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("bias", [True, False])
def test_forward_equals_torch_rnn(bias):
    reference, ours = _pair(bias=bias)
    x = _x()
    h0 = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out_ref, h_ref = reference(x, h0[None])  # torch takes and returns (1, B, N_h)
    out, h_T = ours(x, h0)
    assert out.shape == (4, 9, 5) and h_T.shape == (4, 5)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_T, h_ref[0], rtol=0, atol=1e-12)
    assert torch.equal(out[:, -1], h_T)


def test_backward_equals_torch_rnn():
    reference, ours = _pair()
    x_ref, x_ours = _x().requires_grad_(True), _x().requires_grad_(True)
    weights = torch.randn(4, 9, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (reference(x_ref)[0] * weights).sum().backward()
    (ours(x_ours)[0] * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=0, atol=1e-12)
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, getattr(reference, f"{name}_l0").grad, rtol=0, atol=1e-12)


def test_states_are_the_sequential_loop():
    _, ours = _pair()
    x = _x(T=6)
    states = ours.states(x)
    assert len(states) == 7 and torch.equal(states[0], torch.zeros(4, 5, dtype=torch.float64))
    for t in range(1, 7):  # each state is one step from the previous one
        assert torch.equal(states[t], ours.step(x[:, t - 1], states[t - 1]))


def test_default_init_is_uniform_in_one_over_sqrt_h():
    torch.manual_seed(0)
    cell = rnn.ElmanRNN(10, 100)
    for parameter in cell.parameters():
        assert parameter.abs().max() <= 0.1 and parameter.abs().max() > 0.09


def test_same_seed_same_weights_and_outputs():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        outputs.append(rnn.ElmanRNN(3, 4)(_x().float())[0])
    assert torch.equal(outputs[0], outputs[1])


def test_step_jacobian_matches_autograd():
    _, ours = _pair()
    h_prev = torch.randn(2, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_t = _x(B=2, T=1)[:, 0]
    h_t = ours.step(x_t, h_prev)
    for b in range(2):
        def one_step(h, b=b):
            return ours.step(x_t[b : b + 1], h[None])[0]

        jac = torch.autograd.functional.jacobian(one_step, h_prev[b])
        torch.testing.assert_close(rnn.step_jacobian(ours, h_t)[b], jac, rtol=0, atol=1e-12)


def test_hidden_state_gradients_equal_the_product_of_jacobians():
    _, ours = _pair(width=3, H=5)
    x = _x(B=2, T=8)
    w = torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    grads = rnn.hidden_state_gradients(ours, x, w)  # (B, T + 1, H)
    assert grads.shape == (2, 9, 5)
    with torch.no_grad():
        states = ours.states(x)
        g = w.expand(2, 5)
        torch.testing.assert_close(grads[:, 8], g)
        for t in range(8, 0, -1):
            g = torch.einsum("bi,bij->bj", g, rnn.step_jacobian(ours, states[t]))  # (B, N_h)
            torch.testing.assert_close(grads[:, t - 1], g, rtol=1e-10, atol=1e-14)
    assert all(p.grad is None for p in ours.parameters())  # parameters' .grad untouched


def test_zero_state_gradient_scales_exactly_like_the_radius():
    cell = rnn.ElmanRNN(8, 8).double()
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    with torch.no_grad():
        cell.weight_hh.copy_(1.3 * Q)
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    w = torch.ones(8, dtype=torch.float64) / 8**0.5
    norms = rnn.hidden_state_gradients(cell, torch.zeros(1, 10, 8, dtype=torch.float64), w)[0].norm(dim=-1)
    expected = 1.3 ** torch.arange(10, -1, -1, dtype=torch.float64)  # k = T - t steps back
    torch.testing.assert_close(norms, expected, rtol=1e-12, atol=0)


def test_spectral_radius_and_rescaling():
    W = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    scaled = rnn.scale_spectral_radius(W, 0.5)
    assert abs(rnn.spectral_radius(scaled) - 0.5) < 1e-6
    assert not scaled.requires_grad and scaled.shape == W.shape


BAD_CALLS = {
    "x of rank 2": (lambda c: c(torch.randn(5, 3)), ValueError, r"x: .*\(B, T, I=3\).*\(5, 3\)"),
    "x of wrong width": (lambda c: c(torch.randn(2, 5, 4)), ValueError, r"x: .*I=3.*\(2, 5, 4\)"),
    "empty sequence": (lambda c: c(torch.randn(2, 0, 3)), ValueError, r"x: .*T >= 1"),
    "integer x": (lambda c: c(torch.ones(2, 5, 3, dtype=torch.long)), TypeError, r"x: .*floating.*int64"),
    "x not a tensor": (lambda c: c([[1.0]]), TypeError, r"x: expected a torch.Tensor, got list"),
    "x of other dtype": (lambda c: c(torch.randn(2, 5, 3, dtype=torch.float64)), TypeError,
                         r"x: .*float32 \(that of the weights\).*float64"),
    "h0 of wrong shape": (lambda c: c(torch.randn(2, 5, 3), torch.zeros(1, 2, 4)), ValueError,
                          r"h0: .*\(2, 4\).*\(1, 2, 4\)"),
    "h0 of other dtype": (lambda c: c(torch.randn(2, 5, 3), torch.zeros(2, 4, dtype=torch.float64)),
                          TypeError, r"h0: .*float32.*float64"),
    "zero hidden size": (lambda c: rnn.ElmanRNN(3, 0), ValueError, r"hidden_size: .*got 0"),
    "float input size": (lambda c: rnn.ElmanRNN(3.0, 4), TypeError, r"input_size: .*got float"),
    "from a GRU": (lambda c: rnn.ElmanRNN.from_torch(nn.GRU(3, 4)), TypeError, r"torch_rnn: .*got GRU"),
    "from a 2-layer RNN": (lambda c: rnn.ElmanRNN.from_torch(nn.RNN(3, 4, 2, batch_first=True)),
                           ValueError, r"torch_rnn: expected num_layers=1"),
    "from a time-first RNN": (lambda c: rnn.ElmanRNN.from_torch(nn.RNN(3, 4)), ValueError,
                              r"batch_first=True"),
    "jacobian of a wrong state": (lambda c: rnn.step_jacobian(c, torch.zeros(2, 5)), ValueError,
                                  r"h_t: .*\(B, N_h=4\).*\(2, 5\)"),
    "gradient direction of wrong size": (
        lambda c: rnn.hidden_state_gradients(c, torch.randn(1, 3, 3), torch.ones(5)), ValueError,
        r"w: .*\(N_h=4,\).*\(5,\)"),
    "non-square matrix": (lambda c: rnn.spectral_radius(torch.zeros(2, 3)), ValueError, r"matrix: .*square"),
    "negative radius": (lambda c: rnn.scale_spectral_radius(torch.eye(2), -1.0), ValueError,
                        r"radius: .*positive"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_named_in_the_error(case):
    call, error, pattern = BAD_CALLS[case]
    with pytest.raises(error, match=pattern):
        call(rnn.ElmanRNN(3, 4))
