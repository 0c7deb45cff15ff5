"""The path-length column of the 2017 paper's Table 1, measured: how many stacked layers a signal
needs to travel from the first position of a sequence to the last.

Four kinds of layer (chapter 2 measures them and its exercise ``ch2-path-length`` checks a rule
against them): a causal convolution of kernel width k, the same dilated by k^depth in a stack
(WaveNet's layout), self-attention restricted to the keys within ``reach`` positions, and full
self-attention. :func:`layers_until_connected` stacks fresh random layers of one kind and asks
forward-mode autograd after each whether a change of the first input changes the last output.

Legend: T length, D width (``d_model``), k kernel width, r reach.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from . import runtime
from .attention import MultiHeadAttention

__all__ = ["KINDS", "CausalConv", "RestrictedAttention", "make_layer", "layers_until_connected"]

KINDS = ("convolution", "dilated convolution", "restricted self-attention", "self-attention")


class CausalConv(nn.Module):
    """Output t from inputs t - (k-1) d, ..., t - d, t (d: dilation): (1, T, D) -> (1, T, D).

    Examples:
        >>> conv = CausalConv(d_model=4, kernel_size=3, dilation=2)
        >>> tuple(conv(torch.randn(1, 9, 4)).shape)
        (1, 9, 4)
    """

    def __init__(self, d_model: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.left = (kernel_size - 1) * dilation  # zeros in front: the output keeps length T
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x.transpose(1, 2), (self.left, 0))  # (1, D, T + left)
        return self.conv(x).transpose(1, 2)  # (1, D, T) -> (1, T, D)


class RestrictedAttention(nn.Module):
    """Self-attention in which query i sees only keys j with |i - j| <= reach (None: all of them).

    The band is a mask: the masked scores are still computed, so the cost is full attention's.

    Examples:
        >>> layer = RestrictedAttention(d_model=4, num_heads=2, reach=1)
        >>> tuple(layer(torch.randn(1, 6, 4)).shape)
        (1, 6, 4)
    """

    def __init__(self, d_model: int, num_heads: int, reach: int | None = None) -> None:
        super().__init__()
        self.reach, self.attention = reach, MultiHeadAttention(d_model, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        distance = (torch.arange(T)[:, None] - torch.arange(T)).abs()  # (T, T): |i - j|
        band = distance <= (T if self.reach is None else self.reach)  # True = may attend
        return self.attention(x, attention_mask=band[None], need_weights=True)[0]


def make_layer(kind: str, width: int | None, depth: int, d_model: int, num_heads: int = 1) -> nn.Module:
    """A fresh layer of ``kind`` (one of :data:`KINDS`) at place ``depth`` (0 for the first) of a
    stack: ``width`` is the kernel width k of a convolution, the reach r of restricted attention
    (ignored by full attention); a dilated convolution at depth n has dilation k^n."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind == "convolution":
        return CausalConv(d_model, width)
    if kind == "dilated convolution":
        return CausalConv(d_model, width, dilation=width**depth)
    return RestrictedAttention(d_model, num_heads, width if kind == "restricted self-attention" else None)


def layers_until_connected(
    kind: str, T: int, width: int | None, d_model: int, num_heads: int = 1, seed: int = 0
) -> int:
    """Layers of ``kind`` stacked until the last output depends on the first input.

    Random layers (weights and input drawn after ``torch.manual_seed(seed)``; the caller's random
    state is left as it was) run in float64; after each, forward-mode autograd carries a change
    of the first input up the stack, and the count stops when the last output's change is not
    exactly 0. One torch thread (many small layers).

    Examples:
        >>> layers_until_connected("convolution", T=9, width=3, d_model=2)  # 8 positions, 2 per layer
        4
        >>> layers_until_connected("self-attention", T=9, width=None, d_model=2)
        1
    """
    with torch.random.fork_rng(devices=[]), runtime.num_threads(1), warnings.catch_warnings():
        # torch's forward mode loads decompositions through torch.jit.script, which warns once
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        torch.manual_seed(seed)
        y = torch.randn(1, T, d_model, dtype=torch.float64)  # (1, T, D)
        change = torch.zeros_like(y)
        change[0, 0] = 1.0  # a change of the first input only
        for depth in range(T):
            layer = make_layer(kind, width, depth, d_model, num_heads).double()  # one more layer on top
            y, change = torch.func.jvp(layer, (y,), (change,))  # its output, and how it changes
            if change[0, -1].abs().max() > 0:  # x_0 reaches the last output
                return depth + 1
    raise AssertionError(f"{kind}: not connected after {T} layers")  # never: each layer moves a signal
