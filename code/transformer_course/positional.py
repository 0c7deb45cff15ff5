"""Positional encodings: how an order-blind attention layer learns where each token sits.

Self-attention treats its input as a set (permute the tokens and the outputs permute the same
way), so the position of each token is added to its embedding. Two kinds are taught:

- the fixed sinusoidal table of "Attention Is All You Need" (section 3.5), and
- a learned table, one trainable vector per position (as in BERT).

Legend: B batch, T length, D model width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks

__all__ = [
    "sinusoidal_encoding", "relative_shift_matrix", "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
]


def _inverse_frequencies(d_model: int) -> torch.Tensor:
    """1 / 10000^(2i/D) for i = 0 .. ceil(D/2) - 1, in float64: the frequency of each column pair."""
    return torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))


def sinusoidal_encoding(max_len: int, d_model: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The sinusoidal table PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(same).

    Each pair of columns (2i, 2i+1) is a point on a circle turning at its own frequency, so
    PE[pos + k] is PE[pos] rotated by an angle that depends on k only.

    Args:
        max_len: number of positions (rows).
        d_model: width D (columns); an odd D drops the last cosine column.
        dtype: the floating dtype of the result; the table is computed in float64 and rounded
            once. Default: torch.float32.

    Shape:
        Returns (max_len, d_model), of ``dtype``.

    Examples:
        >>> pe = sinusoidal_encoding(4, 6)
        >>> tuple(pe.shape)
        (4, 6)
        >>> pe[0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    """
    _checks.positive_int(max_len, "max_len")
    _checks.positive_int(d_model, "d_model")
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    inv_freq = _inverse_frequencies(d_model)  # computed in float64, rounded once at the end
    angles = position * inv_freq  # (max_len, 1) * (ceil(D/2),) -> (max_len, ceil(D/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(dtype)


def relative_shift_matrix(k: int, d_model: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The fixed linear map M_k that moves every sinusoidal encoding k positions on.

    Each column pair (2i, 2i+1) of the table holds (sin(pos w_i), cos(pos w_i)); adding k to
    pos turns that point by the angle k w_i, whatever pos is:

        [sin((pos+k) w)]   [ cos(k w)  sin(k w)] [sin(pos w)]
        [cos((pos+k) w)] = [-sin(k w)  cos(k w)] [cos(pos w)]

    so M_k is block-diagonal with one 2×2 rotation per pair, and PE(pos + k) = M_k PE(pos) for
    every position (Vaswani et al., 2017, section 3.5). M_k is orthogonal, M_0 = I,
    M_a M_b = M_(a+b) and M_(-k) = M_k^T.

    Args:
        k: the offset, any integer (negative moves back).
        d_model: width D, even (an odd D has a sine column with no cosine partner, and no such
            linear map exists).
        dtype: floating dtype of the result; computed in float64. Default: torch.float64.

    Shape:
        Returns (D, D); with ``pe = sinusoidal_encoding(n, D)``, ``pe[k:] == pe[:-k] @ M_k.T``
        (rows are positions) up to rounding.

    Examples:
        >>> pe = sinusoidal_encoding(100, 8, dtype=torch.float64)
        >>> m = relative_shift_matrix(3, 8)
        >>> torch.allclose(pe[:-3] @ m.T, pe[3:])
        True
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    _checks.positive_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(
            f"d_model: expected an even width (each sine column needs its cosine partner), got {d_model}"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    angle = k * _inverse_frequencies(d_model)  # (D/2,): the turn of each column pair
    cos, sin = torch.cos(angle), torch.sin(angle)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    m[0::2, 0::2] = torch.diag(cos)  # sin((pos+k) w) = cos(k w) sin(pos w) + sin(k w) cos(pos w)
    m[0::2, 1::2] = torch.diag(sin)
    m[1::2, 0::2] = torch.diag(-sin)  # cos((pos+k) w) = -sin(k w) sin(pos w) + cos(k w) cos(pos w)
    m[1::2, 1::2] = torch.diag(cos)
    return m.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sinusoidal table to token embeddings: x + PE[:T].

    Args:
        max_len: longest sequence accepted (the rows of the table).
        d_model: width D.

    Shape:
        x: (B, T, D) with T <= max_len -> (B, T, D)

    Examples:
        >>> add_positions = SinusoidalPositionalEncoding(max_len=16, d_model=8)
        >>> out = add_positions(torch.zeros(2, 5, 8))
        >>> tuple(out.shape), out[0, 0].tolist()  # position 0: sin 0 = 0, cos 0 = 1
        ((2, 5, 8), [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        # A buffer follows .to(device); non-persistent because it is recomputed, not learned.
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_embeddings(x, self.d_model, self.max_len)
        return x + self.pe[: x.shape[1]].to(x.dtype)  # (B, T, D) + (T, D) -> (B, T, D)


class LearnedPositionalEncoding(nn.Module):
    """Add one trainable vector per position to token embeddings (as BERT does).

    Args:
        max_len: longest sequence accepted.
        d_model: width D.
        init_std: the standard deviation of the initial vectors (normal, mean 0). Default: 0.02,
            BERT's.

    Shape:
        x: (B, T, D) with T <= max_len -> (B, T, D)

    Examples:
        >>> add_positions = LearnedPositionalEncoding(max_len=16, d_model=8)
        >>> tuple(add_positions(torch.zeros(2, 5, 8)).shape), tuple(add_positions.weight.shape)
        ((2, 5, 8), (16, 8))
        >>> _ = torch.manual_seed(0)
        >>> round(LearnedPositionalEncoding(max_len=64, d_model=64, init_std=1.0).weight.std().item(), 1)
        1.0
    """

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02) -> None:
        super().__init__()
        _checks.positive_int(max_len, "max_len")
        _checks.positive_int(d_model, "d_model")
        _checks.positive_number(init_std, "init_std")
        self.d_model = d_model
        self.max_len = max_len
        self.init_std = init_std
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * init_std)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, init_std={self.init_std}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_embeddings(x, self.d_model, self.max_len)
        return x + self.weight[: x.shape[1]]  # (B, T, D) + (T, D) -> (B, T, D)


def _check_embeddings(x: torch.Tensor, d_model: int, max_len: int) -> None:
    """Check that ``x`` is (B, T, D) with D = d_model and T <= max_len."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"x: expected shape (B, T, D={d_model}), got {tuple(x.shape)}")
    if x.shape[1] > max_len:
        raise ValueError(
            f"x: sequence length T={x.shape[1]} exceeds the positional table's max_len={max_len}"
        )
