"""The Transformer decoder: a layer that reads its own prefix and the encoder's output, and the stack.

Follows "Attention Is All You Need" (Vaswani et al., 2017), section 3.1. A decoder layer has three
sub-layers where an encoder layer has two:

1. **masked self-attention** over the decoder's own positions: position i may attend to positions
   0..i only (the look-ahead, or causal, mask), so that training on a whole target sequence at once
   never lets a position see the tokens it must predict;
2. **cross-attention**: the queries come from the decoder, the keys and values from the encoder's
   output (the "memory"), so that every target position can read every source position;
3. the position-wise **feed-forward** network of the encoder.

Each is wrapped in a residual connection and layer normalization, post-LN or pre-LN as in
:mod:`~transformer_course.encoder`. With M the memory:

    post-LN:  x = LN(x + SelfAttn(x, causal)),  x = LN(x + CrossAttn(x, M, M)),  x = LN(x + FFN(x))
    pre-LN:   x = x + SelfAttn(LN(x), causal),  x = x + CrossAttn(LN(x), M, M),  x = x + FFN(LN(x))

Parameter names follow ``torch.nn.TransformerDecoderLayer`` except that its ``multihead_attn`` is
called ``cross_attn`` here; ``from_torch`` copies the weights. As in the encoder, ``forward`` checks
once and calls ``decode``, which computes without checking.

Legend: B batch, Tq decoder (target) length, Tk encoder (memory) length, D model width, H heads,
L layers. Masks: True = may attend.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _checks
from .attention import MultiHeadAttention, expand_mask
from .encoder import FeedForward, layer_from_torch, stack_from_torch

__all__ = ["causal_mask", "DecoderLayer", "Decoder"]


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The look-ahead mask: query i may attend to keys 0..i (True on and below the diagonal).

    Shape:
        (T, T) bool, broadcastable to the (B, H, T, T) scores.

    Examples:
        >>> causal_mask(3)
        tensor([[ True, False, False],
                [ True,  True, False],
                [ True,  True,  True]])
    """
    _checks.int_at_least(length, "length", 0)  # 0: an empty target, as an empty encoder input
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class DecoderLayer(nn.Module):
    """One decoder layer: masked self-attention, cross-attention to the memory, feed-forward.

    Post-LN (``norm_first=False``, the 2017 paper)::

        x = norm1(x + dropout1(self_attn(x, x, x, causal)))
        x = norm2(x + dropout2(cross_attn(x, memory, memory)))
        x = norm3(x + dropout3(feed_forward(x)))

    Pre-LN (``norm_first=True``)::

        x = x + dropout1(self_attn(norm1(x), ..., causal))
        x = x + dropout2(cross_attn(norm2(x), memory, memory))
        x = x + dropout3(feed_forward(norm3(x)))

    The memory is used as it comes (a pre-LN encoder has already normalised it with its final norm).

    Args:
        d_model: width D of the decoder and of the memory.
        num_heads: attention heads H of both attentions; D must be divisible by H.
        d_ff: hidden width of the feed-forward network.
        dropout: dropout on attention weights, inside the feed-forward and on each sub-layer's
            output. Default: 0.1.
        activation: ``"relu"`` or ``"gelu"``. Default: ``"relu"``.
        norm_first: pre-LN if True, post-LN if False. Default: False.
        layer_norm_eps: the epsilon of the three layer norms. Default: 1e-5.

    Shape:
        x: (B, Tq, D); memory: (B, Tk, D); memory_mask (True = may attend): (B, Tk).
        Returns x (B, Tq, D), or (x, self weights (B, H, Tq, Tq), cross weights (B, H, Tq, Tk))
        with ``return_attention=True``.

    Examples:
        >>> layer = DecoderLayer(d_model=8, num_heads=2, d_ff=32)
        >>> out, self_weights, cross_weights = layer(torch.randn(2, 3, 8), torch.randn(2, 5, 8),
        ...                                          return_attention=True)
        >>> tuple(out.shape), tuple(self_weights.shape), tuple(cross_weights.shape)
        ((2, 3, 8), (2, 2, 3, 3), (2, 2, 3, 5))
        >>> self_weights[0, 0, 0].tolist()  # the first position sees only itself
        [1.0, 0.0, 0.0]
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        _checks.boolean(norm_first, "norm_first")
        self.d_model = d_model
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, activation=activation, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        causal: bool = True,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self_mask, cross_mask = _check_decoder_input(
            x, memory, memory_mask, causal, self.d_model, self.self_attn.num_heads
        )
        x, self_weights, cross_weights = self.decode(x, memory, self_mask, cross_mask, return_attention)
        return (x, self_weights, cross_weights) if return_attention else x

    def decode(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The computation of :meth:`forward`, without checks.

        Shape:
            x: (B, Tq, D); memory: (B, Tk, D); self_mask: None or bool broadcastable to
            (B, H, Tq, Tq); cross_mask: None or bool broadcastable to (B, H, Tq, Tk).
            Returns x (B, Tq, D) and the self and cross weights (None without ``need_weights``).
        """
        if self.norm_first:  # pre-LN: x + sublayer(norm(x))
            h = self.norm1(x)
            y, self_weights = self.self_attn.attend(h, h, h, self_mask, need_weights)
            x = x + self.dropout1(y)
            y, cross_weights = self.cross_attn.attend(self.norm2(x), memory, memory, cross_mask, need_weights)
            x = x + self.dropout2(y)
            x = x + self.dropout3(self.feed_forward.transform(self.norm3(x)))
        else:  # post-LN: norm(x + sublayer(x))
            y, self_weights = self.self_attn.attend(x, x, x, self_mask, need_weights)
            x = self.norm1(x + self.dropout1(y))
            y, cross_weights = self.cross_attn.attend(x, memory, memory, cross_mask, need_weights)
            x = self.norm2(x + self.dropout2(y))
            x = self.norm3(x + self.dropout3(self.feed_forward.transform(x)))
        return x, self_weights, cross_weights

    @classmethod
    def from_torch(cls, torch_layer: nn.TransformerDecoderLayer) -> DecoderLayer:
        """A copy of a ``torch.nn.TransformerDecoderLayer`` (batch-first) with the same weights.

        Examples:
            >>> theirs = nn.TransformerDecoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
            >>> x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
            >>> ours = DecoderLayer.from_torch(theirs)
            >>> look_ahead = nn.Transformer.generate_square_subsequent_mask(3)  # -inf above the diagonal
            >>> torch.allclose(ours(x, memory), theirs(x, memory, tgt_mask=look_ahead), atol=1e-6)
            True
        """
        return layer_from_torch(cls, torch_layer, nn.TransformerDecoderLayer,
                                norms=("norm1", "norm2", "norm3"), cross_attention="multihead_attn")


class Decoder(nn.Module):
    """A stack of ``num_layers`` decoder layers, each reading the same memory.

    Every layer's cross-attention reads the encoder's final output (not the encoder layer at the
    same depth). A pre-LN stack (``norm_first=True``) ends with a final LayerNorm (``self.norm``);
    a post-LN stack has none (``self.norm is None``).

    Args:
        num_layers: number of layers L.
        d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps: as in
            :class:`DecoderLayer`.

    Shape:
        x: (B, Tq, D); memory: (B, Tk, D); memory_mask (True = may attend): (B, Tk).
        Returns x (B, Tq, D), or (x, self weights, cross weights) with ``return_attention=True``,
        lists of L tensors (B, H, Tq, Tq) and (B, H, Tq, Tk).

    Examples:
        >>> decoder = Decoder(num_layers=2, d_model=8, num_heads=2, d_ff=32)
        >>> memory = torch.randn(2, 5, 8)
        >>> padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # 1 = a real source token
        >>> out, _, cross = decoder(torch.randn(2, 3, 8), memory, padding, return_attention=True)
        >>> tuple(out.shape), len(cross), cross[1][0, :, :, 3:].abs().max().item()
        ((2, 3, 8), 2, 0.0)
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        _checks.positive_int(num_layers, "num_layers")
        self.d_model = d_model
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm_first else None

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        causal: bool = True,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        heads = self.layers[0].self_attn.num_heads
        self_mask, cross_mask = _check_decoder_input(  # once for all L layers
            x, memory, memory_mask, causal, self.d_model, heads
        )
        x, self_weights, cross_weights = self.decode(x, memory, self_mask, cross_mask, return_attention)
        return (x, self_weights, cross_weights) if return_attention else x

    def decode(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, list[torch.Tensor] | None]:
        """The computation of :meth:`forward`, without checks: every layer in turn, then the
        final norm of a pre-LN stack.

        Shape:
            as :meth:`DecoderLayer.decode`; the weights are lists of L tensors (or None).
        """
        self_weights, cross_weights = [], []
        for layer in self.layers:
            x, w_self, w_cross = layer.decode(x, memory, self_mask, cross_mask, need_weights)
            self_weights.append(w_self)
            cross_weights.append(w_cross)
        if self.norm is not None:
            x = self.norm(x)
        if not need_weights:
            return x, None, None
        return x, self_weights, cross_weights

    @classmethod
    def from_torch(cls, torch_decoder: nn.TransformerDecoder) -> Decoder:
        """A copy of a ``torch.nn.TransformerDecoder`` (batch-first): every layer and its final norm.

        Examples:
            >>> layer = nn.TransformerDecoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
            >>> theirs = nn.TransformerDecoder(layer, num_layers=2)
            >>> x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
            >>> look_ahead = nn.Transformer.generate_square_subsequent_mask(3)
            >>> expected = theirs(x, memory, tgt_mask=look_ahead, tgt_is_causal=True)
            >>> torch.allclose(Decoder.from_torch(theirs)(x, memory), expected, atol=1e-6)
            True
        """
        if not isinstance(torch_decoder, nn.TransformerDecoder):
            raise TypeError(
                f"torch_decoder: expected torch.nn.TransformerDecoder, "
                f"got {type(torch_decoder).__name__}"
            )
        return stack_from_torch(cls, [DecoderLayer.from_torch(layer) for layer in torch_decoder.layers],
                                torch_decoder)


# ---------------------------------------------------------------- argument checks


def _check_decoder_input(
    x: object,
    memory: object,
    memory_mask: torch.Tensor | None,
    causal: object,
    d_model: int,
    num_heads: int,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check the decoder's input, memory and masks; return the self- and cross-attention masks."""
    _checks.float_tensor(x, "x", f"(B, Tq, D={d_model})", width=d_model)
    _checks.float_tensor(memory, "memory", f"(B, Tk, D={d_model})", width=d_model)
    _checks.boolean(causal, "causal")
    B, Tq, _ = x.shape
    if memory.shape[0] != B:
        raise ValueError(
            f"x and memory: expected the same batch size B, got x {tuple(x.shape)} "
            f"and memory {tuple(memory.shape)}"
        )
    if memory.dtype != x.dtype or memory.device != x.device:
        raise TypeError(
            f"x and memory: expected the same dtype and device, got x {x.dtype} on {x.device} "
            f"and memory {memory.dtype} on {memory.device}"
        )
    self_mask = causal_mask(Tq, device=x.device)[None, None] if causal else None  # (1, 1, Tq, Tq)
    cross_mask = None
    if memory_mask is not None:
        mask = _checks.bool_mask(memory_mask, "memory_mask")
        if tuple(mask.shape) != (B, memory.shape[1]):
            raise ValueError(
                f"memory_mask: expected the encoder's padding mask of shape (B, Tk) = "
                f"({B}, {memory.shape[1]}), got {tuple(mask.shape)}"
            )
        cross_mask = expand_mask(mask, B, num_heads, Tq, memory.shape[1])  # (B, 1, 1, Tk)
    return self_mask, cross_mask
