"""Input embeddings: from token ids to vectors, with their positions added.

An embedding table is a (V, D) matrix; looking up id i returns row i, which is exactly the
one-hot vector of i times the matrix, done without the multiplication.

Legend: B batch, T length, D model width, V vocabulary size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding

__all__ = ["TokenEmbedding", "InputEmbedding"]


class TokenEmbedding(nn.Module):
    """Look up one learned D-dimensional vector per token id.

    Args:
        vocab_size: number of ids V.
        d_model: width D.
        padding_idx: optional id whose vector stays zero and gets no gradient.
        scale: multiply by √D, as "Attention Is All You Need" does (section 3.4). Default: False.

    Shape:
        input_ids: (B, T) integer ids in [0, V) -> (B, T, D)

    Examples:
        >>> embed = TokenEmbedding(vocab_size=10, d_model=4)
        >>> tuple(embed(torch.tensor([[1, 2, 3]])).shape)
        (1, 3, 4)
    """

    def __init__(
        self, vocab_size: int, d_model: int, padding_idx: int | None = None, scale: bool = False
    ) -> None:
        super().__init__()
        _checks.positive_int(vocab_size, "vocab_size")
        _checks.positive_int(d_model, "d_model")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.scale = scale
        self.table = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)  # (V, D)
        if scale:
            # Start rows at std 1/√D, so that after the √D scale token vectors have std 1,
            # the same size as the ±1 sinusoids they are added to.
            with torch.no_grad():
                self.table.weight.normal_(0.0, d_model**-0.5)
                if padding_idx is not None:
                    self.table.weight[padding_idx].zero_()

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _checks.token_ids(input_ids, self.vocab_size)
        x = self.table(input_ids)  # (B, T) -> (B, T, D): row i of the table for id i
        return x * math.sqrt(self.d_model) if self.scale else x


class InputEmbedding(nn.Module):
    """Token embedding plus positional encoding, then dropout: what enters the encoder.

    Args:
        vocab_size: number of ids V.
        d_model: width D.
        max_len: longest sequence accepted.
        positional: ``"sinusoidal"`` (fixed table), ``"learned"`` (one vector per position) or
            ``"none"`` (no positions at all: the same scaled token vectors as ``"sinusoidal"``
            without the table, so that an experiment changes only one thing).
        dropout: dropout probability on the sum. Default: 0.0.
        padding_idx: optional id of the padding token.
        position_init_std: the initial scale of a learned table (see
            :class:`~transformer_course.positional.LearnedPositionalEncoding`). Default: 0.02.

    Shape:
        input_ids: (B, T) integer ids, T <= max_len (any T with ``"none"``) -> (B, T, D)

    Examples:
        >>> embed = InputEmbedding(vocab_size=10, d_model=8, max_len=16)
        >>> tuple(embed(torch.tensor([[1, 2, 3]])).shape)
        (1, 3, 8)
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        positional: str = "sinusoidal",
        dropout: float = 0.0,
        padding_idx: int | None = None,
        position_init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if positional not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"positional: expected 'sinusoidal', 'learned' or 'none', got {positional!r}")
        # The fixed ±1 sinusoids are paired with √D-scaled token vectors of the same size.
        self.token_embedding = TokenEmbedding(
            vocab_size, d_model, padding_idx=padding_idx, scale=positional != "learned"
        )
        if positional == "sinusoidal":
            self.position_encoding: nn.Module = SinusoidalPositionalEncoding(max_len, d_model)
        elif positional == "learned":
            self.position_encoding = LearnedPositionalEncoding(max_len, d_model, init_std=position_init_std)
        else:
            self.position_encoding = nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(input_ids)  # (B, T) -> (B, T, D)
        return self.dropout(self.position_encoding(x))  # x + PE[:T] (x alone with "none"): (B, T, D)
