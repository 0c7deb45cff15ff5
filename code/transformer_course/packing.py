"""The padding-free layout of an encoder: the real tokens of a padded batch packed into one matrix.

A padded batch (B, T, D) with a padding mask (B, T) holds N real tokens. :class:`Packing` says
where each of them goes in the packed (N, D) matrix and back, and which blocks of it attention
can take as batches without padding;
:meth:`~transformer_course.attention.MultiHeadAttention.attend_packed` and the ``encode_packed``
methods of :mod:`~transformer_course.encoder` compute on that layout.

Legend: B batch, T length, D width, N real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks

__all__ = ["Packing"]


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded batch go when they are packed into one (N, D) matrix.

    A padded batch (B, T, D) with a padding mask (B, T) holds N real tokens. Every operation of
    an encoder layer but attention treats each position on its own (the projections, the
    feed-forward network, the layer norms, the residual adds), so it can run on the (N, D)
    matrix of the real tokens alone: the padded positions are never computed. Attention mixes
    the tokens of one row only; :meth:`MultiHeadAttention.attend_packed` runs it on this layout.

    Build it once per batch with :meth:`from_mask`; :meth:`pack` and :meth:`unpack` move a
    tensor between the two layouts.

    Attributes:
        index: (N,) position b·T + t of each real token in the flattened (B·T) batch, row by row;
            None when no token is padding (N = B·T), and packing is a reshape.
        lengths: real tokens per row, B Python ints (a row of padding only has 0).
        runs: the consecutive rows of equal length, as (first token, rows r, length n): the
            block of r·n rows of the packed matrix that starts there is an (r, n) batch with no
            padding, which attention takes in one call (rows of padding only are left out).
        shape: (B, T) of the padded batch.

    Examples:
        >>> packing = Packing.from_mask(torch.tensor([[1, 1, 0], [0, 1, 1], [0, 1, 0]]))
        >>> packing.index.tolist(), packing.lengths, packing.runs
        ([0, 1, 4, 5, 7], (2, 2, 1), ((0, 2, 2), (4, 1, 1)))
        >>> x = torch.arange(9.0).view(3, 3, 1)  # (B, T, D) = (3, 3, 1)
        >>> packing.pack(x).flatten().tolist()  # (N, D): the real tokens only
        [0.0, 1.0, 4.0, 5.0, 7.0]
        >>> packing.unpack(packing.pack(x)).flatten().tolist()  # (B, T, D), 0 at the padding
        [0.0, 1.0, 0.0, 0.0, 4.0, 5.0, 0.0, 7.0, 0.0]

        Without padding, packing moves nothing, and attention takes the batch in one call:

        >>> Packing.unpadded(3, 4).runs
        ((0, 3, 4),)
    """

    index: torch.Tensor | None
    lengths: tuple[int, ...]
    runs: tuple[tuple[int, int, int], ...]
    shape: tuple[int, int]

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, shape: tuple[int, int] | None = None) -> Packing:
        """The packing of a padding mask (B, T), True / 1 = real token (checked; ``shape``, if
        given, is the (B, T) the mask must have)."""
        mask = _checks.bool_mask(attention_mask, "attention_mask")
        if mask.ndim != 2 or (shape is not None and tuple(mask.shape) != tuple(shape)):
            expected = "(B, T)" if shape is None else f"(B, T) = {tuple(shape)}"
            raise ValueError(
                f"attention_mask: the padding-free path takes a padding mask of shape {expected} "
                f"(True = real token), got {tuple(mask.shape)}"
            )
        B, T = mask.shape
        lengths = tuple(int(n) for n in mask.sum(dim=1).tolist())
        if B > 0 and T > 0 and all(n == T for n in lengths):
            return cls.unpadded(B, T)
        index = mask.reshape(-1).nonzero().squeeze(1)  # (N,), row by row
        runs: list[list[int]] = []  # [first token, rows, length] per run of equal lengths
        start = 0
        for n in lengths:
            if runs and runs[-1][2] == n:
                runs[-1][1] += 1
            elif n > 0:
                runs.append([start, 1, n])
            start += n
        return cls(index, lengths, tuple(tuple(run) for run in runs), (B, T))

    @classmethod
    def unpadded(cls, B: int, T: int) -> Packing:
        """The packing of a batch (B, T) without padding: every token is real (N = B·T)."""
        _checks.positive_int(B, "B")
        _checks.positive_int(T, "T")
        return cls(None, (T,) * B, ((0, B, T),), (B, T))

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (N, D): the real tokens, row after row."""
        flat = x.reshape(-1, x.shape[-1])  # (B, T, D) -> (B·T, D)
        return flat if self.index is None else flat.index_select(0, self.index)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (B, T, D): the real tokens back in place, zeros at the padded positions."""
        B, T = self.shape
        D = packed.shape[-1]
        if self.index is None:
            return packed.reshape(B, T, D)
        return packed.new_zeros(B * T, D).index_copy(0, self.index, packed).view(B, T, D)
