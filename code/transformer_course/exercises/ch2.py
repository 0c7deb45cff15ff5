"""Checkers of chapter 2's exercises (the Transformer architecture).

- ``ch2-pre-ln``: ``gradient_matrix(net, x, w)``, the (T, T) gradient norms for a loss on every
  position, against the full Jacobian on pre-LN and post-LN encoders of sizes and lengths the
  chapter does not use.
- ``ch2-path-length``: ``path_layers(kind, T, width)``, the layers a stack of causal
  convolutions (contiguous or dilated, kernel width k), of restricted or of full self-attention
  needs before its last output depends on its first input, against stacks measured here at
  lengths and widths the chapter does not use, and against the measurement's rule at lengths too
  long to measure.
- ``ch2-local-attention``: ``local_attention(q, k, v, reach)`` against the package's attention
  with a band mask, at unseen sizes and reaches, and its FLOPs (counted by
  ``torch.utils.flop_counter``) against the T·(2r + 1) scores it may compute.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .. import attention, encoder, path_length
from ._core import NotYet, as_number, checker, close, expect, expect_close

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


# ---------------------------------------------------------------- ch2-path-length

PATH_KINDS = path_length.KINDS


def measured_path_layers(kind: str, T: int, width: int, d_model: int = 3) -> int:
    """Layers of ``kind`` stacked until a change of the first input changes the last output."""
    return path_length.layers_until_connected(kind, T, width, d_model, num_heads=1, seed=T + width)


def path_layers_rule(kind: str, T: int, width: int) -> int:
    """The rule the measurements follow, in exact integer arithmetic (for lengths too long to measure)."""
    if kind == "self-attention" or T == 1:
        return 1
    if kind == "convolution":
        return -(-(T - 1) // (width - 1))
    if kind == "restricted self-attention":
        return -(-(T - 1) // width)
    layers = 1
    while width**layers < T:  # k^L positions reached after L dilated layers
        layers += 1
    return layers


_PATH_MEASURED = [  # (kind, T, width): lengths and widths the chapter does not use
    ("convolution", 23, 4), ("convolution", 41, 5), ("convolution", 12, 2),
    ("dilated convolution", 30, 2), ("dilated convolution", 27, 3), ("dilated convolution", 28, 3),
    ("dilated convolution", 50, 4),
    ("restricted self-attention", 29, 3), ("restricted self-attention", 25, 6),
    ("restricted self-attention", 13, 12),
    ("self-attention", 37, 1),
]
_PATH_LONG = [  # too long to measure here: the rule the measured cases follow
    ("convolution", 100_000, 7), ("dilated convolution", 3**12, 3), ("dilated convolution", 3**12 + 1, 3),
    ("dilated convolution", 5**3, 5), ("dilated convolution", 10**15 + 1, 10),  # where math.log rounds
    ("restricted self-attention", 4097, 128), ("self-attention", 10**6, 1),
]


@checker("ch2-path-length")
def check_path_length(path_layers) -> None:
    """Layers to connect the first input to the last output, measured on stacks the chapter did not build."""
    for kind, T, width in _PATH_MEASURED + _PATH_LONG:
        expected = measured_path_layers(kind, T, width) if T <= 64 else path_layers_rule(kind, T, width)
        got = as_number(path_layers(kind, T, width), "path_layers", whole=True)
        if got == expected:
            continue
        call = f"path_layers({kind!r}, {T}, {width})"
        if got in (expected + 1, expected - 1) and kind != "dilated convolution":
            if kind == "convolution" and got == -(-T // (width - 1)):
                raise NotYet(f"{call} is one too many: the first and the last position are T - 1 apart, "
                             "not T")
            if kind == "restricted self-attention" and got == -(-T // width):
                raise NotYet(f"{call} is one too many: the first and the last position are T - 1 apart, "
                             "not T")
            if got == expected - 1:
                raise NotYet(f"{call} is one too few: a layer that brings a signal only part of the way "
                             "still counts as a whole layer (round up)")
        if kind == "convolution" and got == -(-(T - 1) // width):
            raise NotYet(f"{call} is wrong: a causal kernel of width k reads k positions, the output's own "
                         "and k - 1 before it, so one layer moves a signal k - 1 positions")
        if kind == "restricted self-attention" and got == -(-(T - 1) // (2 * width + 1)):
            raise NotYet(f"{call} is wrong: the window has 2r + 1 keys, but a signal moves at most r "
                         "positions towards the end in one layer")
        if kind == "dilated convolution":
            if got == math.ceil(math.log(T, width)):
                raise NotYet(f"{call} is one off: math.log rounds, and here its rounding crosses a whole "
                             "number; use exact integer arithmetic (the smallest L with k**L >= T)")
            raise NotYet(f"{call} is wrong: after L dilated layers of width k, how many positions back "
                         "can the last output read?")
        raise NotYet(f"{call} is wrong: how many positions towards the end does one layer of this kind move "
                     "a signal, and how far apart are the first and the last position?")


# ---------------------------------------------------------------- ch2-local-attention


def _band(T: int, reach: int) -> torch.Tensor:
    return (torch.arange(T)[:, None] - torch.arange(T)).abs() <= reach  # (T, T), True = may attend


def _local_reference(q, k, v, reach: int, scale: bool = True, window_of_zeros: bool = False) -> torch.Tensor:
    """Band-masked attention; with ``window_of_zeros``, the zero keys and values beyond the ends count too."""
    if not scale:
        q = q * math.sqrt(q.shape[-1])
    if window_of_zeros:
        T = q.shape[-2]
        pad = (0, 0, reach, reach)
        k, v = nn.functional.pad(k, pad), nn.functional.pad(v, pad)  # (B, T + 2r, d)
        offset = torch.arange(T + 2 * reach)[None, :] - torch.arange(T)[:, None]  # key j' = i + offset
        return attention.scaled_dot_product_attention(q, k, v, (offset >= 0) & (offset <= 2 * reach))[0]
    return attention.scaled_dot_product_attention(q, k, v, _band(q.shape[-2], reach))[0]


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return close(got, expected, atol=1e-9, rtol=1e-6)  # float64 inputs: a tighter test than float32's


@checker("ch2-local-attention")
def check_local_attention(local_attention) -> None:
    """Outputs against band-masked attention at unseen sizes; FLOPs against the window's size."""
    generator = torch.Generator().manual_seed(77)
    for B, T, d, reach in ((2, 13, 5, 2), (1, 9, 3, 0), (3, 11, 4, 1), (1, 6, 7, 5), (2, 17, 6, 3)):
        q, k, v = (torch.randn(B, T, d, generator=generator, dtype=torch.float64) for _ in range(3))
        given = [t.clone() for t in (q, k, v)]
        got = local_attention(*given, reach)
        expect(isinstance(got, torch.Tensor),
               f"local_attention should return a tensor, got {type(got).__name__}")
        expect(tuple(got.shape) == (B, T, d),
               f"local_attention should return (B, T, D_h) = ({B}, {T}, {d}), got {tuple(got.shape)}")
        expect(all(torch.equal(a, b) for a, b in zip(given, (q, k, v), strict=True)),
               "local_attention changed its inputs")
        got = got.detach()
        expected = _local_reference(q, k, v, reach)
        if _close(got, expected):
            continue
        if _close(got, _local_reference(q, k, v, reach, scale=False)):
            raise NotYet("the scores are not scaled: divide q . k by the square root of D_h")
        if reach > 0 and _close(got, _local_reference(q, k, v, reach - 1)):
            raise NotYet(f"with reach = {reach} query i must see the keys i - reach .. i + reach, both ends "
                         "included")
        if _close(got, _local_reference(q, k, v, reach, window_of_zeros=True)):
            raise NotYet("the first and last positions are wrong: the zeros padded beyond the ends of the "
                         "sequence got weights; give them none (a score of -inf)")
        inner = slice(reach, T - reach)
        if T > 2 * reach and not _close(got[:, inner], expected[:, inner]):
            raise NotYet(f"wrong outputs for B = {B}, T = {T}, D_h = {d}, reach = {reach}, away from the "
                         "ends too: query i attends (softmax of q . k / sqrt(D_h)) to keys j with "
                         "|i - j| <= reach")
        raise NotYet(f"wrong outputs near the ends of the sequence for T = {T}, reach = {reach}: the "
                     "window of query i holds only the positions that exist")
    # The cost: a window of 2r + 1 keys per query, not all T.
    T, d, reach = 512, 8, 3
    q, k, v = (torch.randn(1, T, d, generator=generator) for _ in range(3))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        local_attention(q, k, v, reach)
    window_flops = 2 * 2 * T * (2 * reach + 1) * d  # scores and weighted sum, a multiply-add = 2 FLOPs
    expect(counter.get_total_flops() <= 2 * window_flops,
           f"right outputs, but at T = {T} with reach = {reach} your function does "
           f"{counter.get_total_flops() / window_flops:.0f} times the work of the windows: it computes all "
           "T x T scores (a mask only throws them away); compute the 2 reach + 1 scores of each query only")
