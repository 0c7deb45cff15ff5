"""The padding-free layout of an encoder: the real tokens of a padded batch packed into one matrix.

A padded batch (B, T, D) with a padding mask (B, T) holds N real tokens. :class:`Packing` says
where each of them goes in the packed (N, D) matrix and back, and how attention puts the rows
side by side again; :meth:`~transformer_course.attention.MultiHeadAttention.attend_packed` and
the ``encode_packed`` methods of :mod:`~transformer_course.encoder` compute on that layout.

Legend: B batch, T length, D width, N real tokens, T_max the most real tokens in a row.
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
        index: (N,) position b·T + t of each real token in the flattened (B·T) batch, row by row.
        lengths: real tokens per row, B Python ints (a row of padding only has 0).
        width: the most real tokens in any row, T_max.
        slots: (N,) position b·T_max + j of each real token once the rows are put side by side
            at width T_max with their real tokens first; None when every row has T_max real
            tokens (then the packed matrix is already that (B, T_max) batch).
        key_mask: (B, 1, 1, T_max) True on the filled slots, for attention; None with ``slots``.
        shape: (B, T) of the padded batch.

    Examples:
        >>> packing = Packing.from_mask(torch.tensor([[1, 1, 0], [0, 1, 0]]))
        >>> packing.index.tolist(), packing.lengths, packing.width, packing.slots.tolist()
        ([0, 1, 4], (2, 1), 2, [0, 1, 2])
        >>> x = torch.arange(6.0).view(2, 3, 1)  # (B, T, D) = (2, 3, 1)
        >>> packing.pack(x).flatten().tolist()  # (N, D): the real tokens only
        [0.0, 1.0, 4.0]
        >>> packing.unpack(packing.pack(x)).flatten().tolist()  # (B, T, D), 0 at the padding
        [0.0, 1.0, 0.0, 0.0, 4.0, 0.0]
    """

    index: torch.Tensor
    lengths: tuple[int, ...]
    width: int
    slots: torch.Tensor | None
    key_mask: torch.Tensor | None
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
        counts = mask.sum(dim=1)  # (B,)
        lengths = tuple(int(n) for n in counts.tolist())
        width = max(lengths, default=0)
        index = mask.reshape(-1).nonzero().squeeze(1)  # (N,), row by row
        if all(n == width for n in lengths):
            return cls(index, lengths, width, None, None, (B, T))
        rank = mask.cumsum(dim=1) - 1  # (B, T): j of the j-th real token of its row
        row_start = torch.arange(B, device=mask.device)[:, None] * width  # (B, 1)
        slots = (row_start + rank)[mask]  # (N,)
        key_mask = torch.arange(width, device=mask.device) < counts[:, None]  # (B, T_max)
        return cls(index, lengths, width, slots, key_mask[:, None, None, :], (B, T))

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (N, D): the real tokens, row after row."""
        return x.reshape(-1, x.shape[-1]).index_select(0, self.index)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (B, T, D): the real tokens back in place, zeros at the padded positions."""
        B, T = self.shape
        D = packed.shape[-1]
        return packed.new_zeros(B * T, D).index_copy(0, self.index, packed).view(B, T, D)
