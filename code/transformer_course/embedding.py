"""Input embeddings: from token ids to vectors, with their positions added.

An embedding table is a (V, D) matrix; looking up id i returns row i, which is exactly the
one-hot vector of i times the matrix, done without the multiplication.

Legend: B batch, T length, D model width, V vocabulary size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import _check_positive_int
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding

__all__ = ["TokenEmbedding", "InputEmbedding", "check_token_ids"]


def check_token_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    """Raise a clear error unless ``input_ids`` is an integer tensor of ids in [0, vocab_size)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"{name}: expected a LongTensor of token ids, got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
        raise TypeError(f"{name}: expected an integer dtype (torch.long), got {input_ids.dtype}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(
            f"{name}: ids must lie in [0, {vocab_size}) (the vocabulary size), "
            f"got values in [{int(input_ids.min())}, {int(input_ids.max())}]"
        )


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
        _check_positive_int(vocab_size, "vocab_size")
        _check_positive_int(d_model, "d_model")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.scale = scale
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        if scale:
            # Start rows at std 1/√D, so that after the √D scale token vectors have std 1,
            # the same size as the ±1 sinusoids they are added to.
            with torch.no_grad():
                self.embedding.weight.normal_(0.0, d_model**-0.5)
                if padding_idx is not None:
                    self.embedding.weight[padding_idx].zero_()

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(input_ids, self.vocab_size)
        x = self.embedding(input_ids)  # (B, T) -> (B, T, D)
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
    ) -> None:
        super().__init__()
        if positional not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"positional: expected 'sinusoidal', 'learned' or 'none', got {positional!r}")
        # The fixed ±1 sinusoids are paired with √D-scaled token vectors of the same size.
        self.tokens = TokenEmbedding(
            vocab_size, d_model, padding_idx=padding_idx, scale=positional != "learned"
        )
        if positional == "sinusoidal":
            self.positions: nn.Module = SinusoidalPositionalEncoding(d_model, max_len)
        elif positional == "learned":
            self.positions = LearnedPositionalEncoding(max_len, d_model)
        else:
            self.positions = nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.positions(self.tokens(input_ids)))  # (B, T) -> (B, T, D)
