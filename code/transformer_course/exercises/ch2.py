"""Checkers of chapter 2's exercises (the Transformer architecture).

- ``ch2-pre-ln``: ``gradient_matrix(net, x, w)``, the (T, T) gradient norms for a loss on every
  position, against the full Jacobian on pre-LN and post-LN encoders of sizes and lengths the
  chapter does not use.
- ``ch2-attention-memory``: ``attention_weight_count(num_layers, num_heads, T)`` against the
  number of weights an actual encoder returns with ``return_attention=True``, and
  ``hidden_number_count(T, d_model)`` against the size of an actual RNN's sequence of states.
"""

from __future__ import annotations

import torch

from .. import encoder
from ._core import NotYet, as_number, checker, expect, expect_close

# ---------------------------------------------------------------- ch2-pre-ln


def _encoder(num_layers: int, d_model: int, num_heads: int, norm_first: bool, seed: int) -> encoder.Encoder:
    """A seeded float64 encoder in eval mode, built without moving the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = encoder.Encoder(num_layers, d_model, num_heads, 2 * d_model, dropout=0.0, norm_first=norm_first)
    return net.double().eval()


def _gradient_matrix(net: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The reference answer: |d (y_i . w) / d x_t| for every i and t, from the full Jacobian: (T, T)."""
    jacobian = torch.autograd.functional.jacobian(lambda leaf: net(leaf)[0] @ w, x)  # (T, 1, T, D)
    return jacobian[:, 0].norm(dim=-1)  # (T, T, D) -> (T, T): row i = loss position, column t = input


@checker("ch2-pre-ln")
def check_pre_ln(gradient_matrix) -> None:
    """Gradient norms for every loss position and input position, on unseen encoders."""
    cases = [  # (L, D, H, T, norm_first, seed)
        (3, 24, 3, 19, True, 11),
        (1, 16, 2, 7, False, 12),
        (2, 20, 4, 33, True, 13),
    ]
    for num_layers, d_model, num_heads, T, norm_first, seed in cases:
        net = _encoder(num_layers, d_model, num_heads, norm_first, seed)
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(1, T, d_model, generator=generator, dtype=torch.float64)  # (1, T, D)
        w = torch.randn(d_model, generator=generator, dtype=torch.float64)  # (D,)
        expected = _gradient_matrix(net, x, w).detach()  # (T, T)
        given = x.clone()
        got = gradient_matrix(net, given, w.clone())
        expect(torch.equal(given, x) and not given.requires_grad and given.grad is None,
               "gradient_matrix changed its input x (its values, requires_grad or .grad): work on a copy")
        expect(isinstance(got, torch.Tensor),
               f"gradient_matrix should return a torch.Tensor of shape (T, T), got {type(got).__name__}")
        got = got.detach().to(expected.dtype)
        expect(tuple(got.shape) == (T, T),
               f"gradient_matrix should return shape (T, T) = ({T}, {T}): one row per loss position, one "
               f"column per input position; got {tuple(got.shape)}")
        kind = "pre-LN" if norm_first else "post-LN"
        if got.abs().max() < 1e-12:
            raise NotYet("every gradient is zero: a loss that sums the outputs has no gradient through the "
                         "final layer norm; read position i in the direction w")
        if torch.allclose(got, expected.T, rtol=1e-6, atol=1e-12):
            raise NotYet("rows and columns are swapped: entry [i, t] is for the loss on position i and the "
                         "input x_t")
        if torch.allclose(got, got[-1].expand(T, T)):
            raise NotYet("every row is the same: row i must put the loss on position i, not on the last one")
        expect_close(got, expected,
                     f"wrong norms for a {kind} encoder with L = {num_layers}, D = {d_model}, T = {T}: entry "
                     "[i, t] is one norm of the gradient of y_i . w with respect to the input vector x_t",
                     atol=1e-12, rtol=1e-6)


# ---------------------------------------------------------------- ch2-attention-memory


@checker("ch2-attention-memory")
def check_attention_memory(attention_weight_count, hidden_number_count) -> None:
    """Counts against what an actual encoder and an actual RNN produce, at unseen sizes."""
    for num_layers, num_heads, T, d_model in ((3, 2, 7, 8), (1, 5, 12, 10), (4, 3, 5, 6)):
        net = _encoder(num_layers, d_model, num_heads, norm_first=False, seed=0)
        with torch.no_grad():
            _, weights = net(torch.zeros(1, T, d_model, dtype=torch.float64), return_attention=True)
            with torch.random.fork_rng(devices=[]):
                recurrent = torch.nn.RNN(d_model, d_model, batch_first=True)
            states, _ = recurrent(torch.zeros(1, T, d_model))  # (1, T, D): h_1 .. h_T
        n_weights = sum(w.numel() for w in weights)  # L x (1, H, T, T)
        name = "attention_weight_count"
        got = as_number(attention_weight_count(num_layers, num_heads, T), name, whole=True)
        if got != n_weights:
            more_layers = as_number(attention_weight_count(2 * num_layers, num_heads, T), name, whole=True)
            longer = as_number(attention_weight_count(num_layers, num_heads, 2 * T), name, whole=True)
            if more_layers == got:
                raise NotYet("attention_weight_count does not grow with the number of layers: every layer "
                             "has its own attention weights")
            if longer == 2 * got:
                raise NotYet("attention_weight_count grows like T: how many weights does one head "
                             "compute for T queries and T keys?")
            raise NotYet(f"attention_weight_count({num_layers}, {num_heads}, {T}) is not the number of "
                         "weights the encoder returns with return_attention=True for one sequence")
        got = as_number(hidden_number_count(T, d_model), "hidden_number_count", whole=True)
        expect(got == states.numel(),
               f"hidden_number_count({T}, {d_model}) is not the number of values in the RNN's hidden "
               "states h_1 .. h_T for one sequence")
    # Long sequences, where building the encoder would be slow: the formula the encoder obeyed.
    for num_layers, num_heads, T, d_model in ((6, 8, 4096, 512), (12, 12, 512, 768)):
        got = as_number(attention_weight_count(num_layers, num_heads, T), "attention_weight_count",
                        whole=True)
        expect(got == num_layers * num_heads * T * T,
               f"attention_weight_count({num_layers}, {num_heads}, {T}) is wrong for a long sequence: "
               "use exact integer arithmetic")
        got = as_number(hidden_number_count(T, d_model), "hidden_number_count", whole=True)
        expect(got == T * d_model, f"hidden_number_count({T}, {d_model}) is wrong for a long sequence")
