"""The Transformer encoder: feed-forward network, encoder layer and the stack of layers.

Follows "Attention Is All You Need" (Vaswani et al., 2017), section 3.1: each layer is
multi-head self-attention, then a position-wise feed-forward network, each wrapped in a residual
connection and layer normalization. Two placements of the norm are taught:

- post-LN (the 2017 paper, BERT): ``x = norm(x + sublayer(x))``;
- pre-LN (most models since GPT-2): ``x = x + sublayer(norm(x))``, plus one final norm.

In formulas, with FFN(x) = W_2 act(W_1 x + b_1) + b_2 applied to every position on its own:

    post-LN:  x = LayerNorm(x + MultiHead(x, x, x)),   x = LayerNorm(x + FFN(x))
    pre-LN:   x = x + MultiHead(LN(x), LN(x), LN(x)),   x = x + FFN(LN(x))

Parameter names follow ``torch.nn.TransformerEncoderLayer`` so that ``from_torch`` is a copy.
Each module's ``forward`` checks its input and calls the method that computes (``transform`` or
``encode``); the stack checks once and calls its layers' ``encode``, which do not check again.

Legend: B batch, T length, D model width, H heads, L layers. Masks: True = may attend.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks, fused
from .attention import MultiHeadAttention, expand_mask
from .packing import Packing

__all__ = ["FeedForward", "EncoderLayer", "Encoder", "layer_from_torch", "stack_from_torch"]

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """The position-wise feed-forward network: linear2(dropout(activation(linear1(x)))).

    The same two-layer MLP is applied to every position on its own; nothing mixes positions.

    Args:
        d_model: width D of input and output.
        d_ff: hidden width (4 D in the 2017 paper and in BERT).
        activation: ``"relu"`` (2017 paper) or ``"gelu"`` (BERT). Default: ``"relu"``.
        dropout: dropout probability after the activation. Default: 0.0.

    Shape:
        x: (..., D) -> (..., D)

    Examples:
        >>> ff = FeedForward(d_model=8, d_ff=32)
        >>> tuple(ff(torch.randn(2, 5, 8)).shape)
        (2, 5, 8)
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        _checks.positive_int(d_model, "d_model")
        _checks.positive_int(d_ff, "d_ff")
        _checks.one_of(activation, _ACTIVATIONS, "activation")
        self.d_model = d_model
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def extra_repr(self) -> str:
        return f"activation={self.activation_name!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.shape[-1:] != (self.d_model,):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected shape (..., D={self.d_model}), got {shape}")
        return self.transform(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The computation of :meth:`forward`, without the check: (..., D) -> (..., D)."""
        hidden = self.dropout(self.activation(self.linear1(x)))  # (..., D) -> (..., d_ff)
        return self.linear2(hidden)  # (..., d_ff) -> (..., D)

    def transform_fused(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`transform` with ``linear1`` and the activation in one kernel when no gradient is
        recorded (:func:`~transformer_course.fused.linear_activation`; in bfloat16 on the CPU both
        on oneDNN, :func:`~transformer_course.fused.linear`). The padding-free path calls it.

        Shape:
            x (..., D) -> (..., D)
        """
        hidden = self.dropout(fused.linear_activation(x, self.linear1, self.activation_name))
        return fused.linear(hidden, self.linear2)  # (..., d_ff) -> (..., D)


class EncoderLayer(nn.Module):
    """One encoder layer: self-attention then feed-forward, each with residual + layer norm.

    Post-LN (``norm_first=False``, the 2017 paper and BERT)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(feed_forward(x)))

    Pre-LN (``norm_first=True``)::

        x = x + dropout1(self_attn(norm1(x)))
        x = x + dropout2(feed_forward(norm2(x)))

    With ``residual=False`` the ``x +`` of both sub-layers is dropped (post-LN:
    ``x = norm1(self_attn(x))``; pre-LN: ``x = self_attn(norm1(x))``). No model uses that; it
    exists so that chapter 5 can measure what the residual connections buy.

    Args:
        d_model: width D.
        num_heads: attention heads H; D must be divisible by H.
        d_ff: hidden width of the feed-forward network.
        dropout: dropout on attention weights, inside the feed-forward and on each sub-layer's
            output. Default: 0.1.
        activation: ``"relu"`` or ``"gelu"``. Default: ``"relu"``.
        norm_first: pre-LN if True, post-LN if False. Default: False.
        layer_norm_eps: the epsilon of both layer norms. Default: 1e-5.
        residual: keep the residual connections (every real model does). Default: True.

    Shape:
        x: (B, T, D); attention_mask (True = may attend): (B, T) or broadcastable to
        (B, H, T, T). Returns x (B, T, D), or (x, weights (B, H, T, T)) with
        ``return_attention=True``.

    Examples:
        >>> layer = EncoderLayer(d_model=8, num_heads=2, d_ff=32)
        >>> tuple(layer(torch.randn(2, 5, 8)).shape)
        (2, 5, 8)
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
        residual: bool = True,
    ) -> None:
        super().__init__()
        _checks.boolean(residual, "residual")
        self.d_model = d_model
        self.norm_first = norm_first
        self.residual = residual
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, activation=activation, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}" + ("" if self.residual else ", residual=False")

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mask = _check_encoder_input(x, attention_mask, self.d_model, self.self_attn.num_heads)
        x, weights = self.encode(x, mask, need_weights=return_attention)
        return (x, weights) if return_attention else x

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The computation of :meth:`forward`, without checks.

        Shape:
            x: (B, T, D); mask: None or bool, broadcastable to (B, H, T, T) (as
            :func:`~transformer_course.attention.expand_mask` returns it).
            Returns x (B, T, D) and weights (B, H, T, T), or None without ``need_weights``.
        """
        return self._sublayers(x, lambda h: self.self_attn.attend(h, h, h, mask, need_weights),
                               self.feed_forward.transform)

    def _sublayers(
        self,
        x: torch.Tensor,
        self_attend: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
        feed_forward: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The two sub-layers, each with its residual add and norm in this layer's placement;
        ``self_attend(h)`` returns self-attention's output for ``h`` and its weights (or None),
        ``feed_forward(h)`` the feed-forward network's. Every step but ``self_attend`` treats each
        token on its own, so x may be (B, T, D) or the packed (N, D) of the padding-free path."""
        if self.norm_first:  # pre-LN: x + sublayer(norm(x))
            y, weights = self_attend(self.norm1(x))
            x = x + self.dropout1(y) if self.residual else self.dropout1(y)
            y = feed_forward(self.norm2(x))
            x = x + self.dropout2(y) if self.residual else self.dropout2(y)
        else:  # post-LN: norm(x + sublayer(x))
            y, weights = self_attend(x)
            x = self.norm1(x + self.dropout1(y) if self.residual else self.dropout1(y))
            y = feed_forward(x)
            x = self.norm2(x + self.dropout2(y) if self.residual else self.dropout2(y))
        return x, weights

    def encode_packed(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """:meth:`encode` on the real tokens only (the padding-free path; no checks).

        The same sub-layers in the same order: the norms, the feed-forward network and the
        residual adds act on each token alone, and attention runs on the packed layout
        (:meth:`~transformer_course.attention.MultiHeadAttention.attend_packed`). When no
        gradient is recorded, steps run fused (:mod:`~transformer_course.fused`): Q, K and V in
        one matmul, linear1 with its activation, and in bfloat16 each bias inside its matmul.

        Shape:
            x (N, D), the packed real tokens (then any zero rows, ``fused.bucket_rows``) -> (N, D)
        """
        return self._sublayers(x, lambda h: (self.self_attn.attend_packed(h, packing), None),
                               self.feed_forward.transform_fused)[0]

    @classmethod
    def from_torch(cls, torch_layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A copy of a ``torch.nn.TransformerEncoderLayer`` (batch-first) with the same weights.

        Examples:
            >>> theirs = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
            >>> x = torch.randn(2, 5, 8)
            >>> torch.allclose(EncoderLayer.from_torch(theirs)(x), theirs(x), atol=1e-6)
            True
        """
        return layer_from_torch(cls, torch_layer, nn.TransformerEncoderLayer, norms=("norm1", "norm2"))


class Encoder(nn.Module):
    """A stack of ``num_layers`` identical (but separately trained) encoder layers.

    The number of layers between any two positions is ``num_layers``, whatever the length T:
    unlike an RNN, information never passes through T sequential steps. A pre-LN stack
    (``norm_first=True``) ends with a final LayerNorm (``self.norm``); a post-LN stack has none
    (``self.norm is None``), since its layers already end with a norm.

    Args:
        num_layers: number of layers L.
        d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps, residual:
            as in :class:`EncoderLayer`.

    Shape:
        x: (B, T, D); attention_mask (True = may attend): (B, T) or broadcastable to
        (B, H, T, T). Returns x (B, T, D), or (x, weights) with ``return_attention=True``,
        weights a list of L tensors (B, H, T, T).

    The padding-free path (``padding_free=True``, with a padding mask (B, T) or none): the
    padded path above computes all B·T positions and masks the padded keys inside attention;
    this one packs the N real tokens into one matrix and computes only them
    (:meth:`encode_packed`)::

        x (B, T, D) --pack--> (N, D) --L layers--> (N, D) --unpack--> (B, T, D), 0 at padding

    On the real tokens both paths give the same output (to float rounding); the padded positions
    hold zeros instead of values nobody should read. Packing saves the padding's share of the
    matrix products and costs a gather and a scatter per batch, so it pays only when there is
    padding (without any, nothing is moved). When no gradient is recorded, it also takes the
    fast paths of :mod:`~transformer_course.fused` (Q, K, V in one matmul; the first feed-forward
    matmul with its activation; on the CPU, keys read on to a multiple of 16, masked, and in
    bfloat16 N rounded up to a multiple of 64), which pay with or without padding: it is the
    fast path for inference. It is off by default, because the chapters read the padded path's
    plain operators, outputs and attention weights (which this path never forms);
    :func:`~transformer_course.bert.embed_sentences` turns it on. Training works too.

    Examples:
        >>> encoder = Encoder(num_layers=2, d_model=8, num_heads=2, d_ff=32)
        >>> out, weights = encoder(torch.randn(2, 5, 8), return_attention=True)
        >>> tuple(out.shape), len(weights), tuple(weights[0].shape)
        ((2, 5, 8), 2, (2, 2, 5, 5))

        The padding-free path, equal on the real tokens:

        >>> encoder = encoder.eval()
        >>> x, real = torch.randn(2, 5, 8), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
        >>> packed = encoder(x, real, padding_free=True)
        >>> torch.allclose(packed[real.bool()], encoder(x, real)[real.bool()], atol=1e-5)
        True
        >>> packed[1, 2:].abs().max().item()  # padded positions: zeros
        0.0
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
        residual: bool = True,
    ) -> None:
        super().__init__()
        _checks.positive_int(num_layers, "num_layers")
        self.d_model = d_model
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps, residual)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm_first else None

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
        padding_free: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        _checks.boolean(padding_free, "padding_free")
        if padding_free:
            _checks.float_tensor(x, "x", f"(B, T, D={self.d_model})", width=self.d_model)
            if return_attention:
                raise ValueError("return_attention=True needs the padded path: the padding-free "
                                 "path forms no attention weights (pass padding_free=False)")
            B, T, _ = x.shape
            packing = (Packing.unpadded(B, T) if attention_mask is None
                       else Packing.from_mask(attention_mask, (B, T)))
            return packing.unpack(self.encode_packed(packing.pack(x), packing))
        heads = self.layers[0].self_attn.num_heads
        mask = _check_encoder_input(x, attention_mask, self.d_model, heads)  # once for all L layers
        x, weights = self.encode(x, mask, need_weights=return_attention)
        return (x, weights) if return_attention else x

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The computation of :meth:`forward`, without checks: every layer in turn, then the
        final norm of a pre-LN stack.

        Shape:
            x: (B, T, D); mask: None or bool, broadcastable to (B, H, T, T).
            Returns x (B, T, D) and a list of L weight tensors (B, H, T, T), or None without
            ``need_weights``.
        """
        all_weights = []
        for layer in self.layers:
            x, weights = layer.encode(x, mask, need_weights)  # (B, T, D) -> (B, T, D)
            all_weights.append(weights)
        if self.norm is not None:
            x = self.norm(x)
        return x, (all_weights if need_weights else None)

    def encode_packed(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """The padding-free path, without checks: every layer's :meth:`EncoderLayer.encode_packed`
        on the real tokens (and any zero rows after them), then a pre-LN stack's final norm.

        Shape:
            x (N, D), the real tokens as ``packing.pack`` returns them from (B, T, D) -> (N, D);
            ``packing.unpack`` puts them back into (B, T, D).
        """
        N, spare = x.shape[0], fused.bucket_rows(x, self)
        x = torch.cat([x, x.new_zeros(spare, x.shape[1])]) if spare else x  # (N + spare, D)
        for layer in self.layers:
            x = layer.encode_packed(x, packing)  # (N + spare, D) -> (N + spare, D)
        return x[:N] if self.norm is None else self.norm(x[:N])

    @classmethod
    def from_torch(cls, torch_encoder: nn.TransformerEncoder) -> Encoder:
        """A copy of a ``torch.nn.TransformerEncoder`` (batch-first): every layer and its final norm.

        Examples:
            >>> layer = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
            >>> theirs = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            >>> ours = Encoder.from_torch(theirs)
            >>> x = torch.randn(2, 5, 8)
            >>> torch.allclose(ours(x), theirs(x), atol=1e-6)
            True
        """
        if not isinstance(torch_encoder, nn.TransformerEncoder):
            raise TypeError(
                f"torch_encoder: expected torch.nn.TransformerEncoder, "
                f"got {type(torch_encoder).__name__}"
            )
        return stack_from_torch(cls, [EncoderLayer.from_torch(layer) for layer in torch_encoder.layers],
                                torch_encoder)


# ---------------------------------------------------------------- copies of torch's modules
# Shared with the decoder module: its layers and stack are copied the same way.


def layer_from_torch(
    cls: type[nn.Module],
    torch_layer: nn.Module,
    torch_type: type[nn.Module],
    norms: tuple[str, ...],
    cross_attention: str | None = None,
) -> nn.Module:
    """Our layer ``cls`` with the weights of ``torch_layer`` (a batch-first torch encoder or decoder
    layer): its self-attention, its ``cross_attention`` (torch's attribute name) if given, its
    feed-forward network and the layer norms ``norms``, which both sides name alike.

    The ``from_torch`` of :class:`EncoderLayer` and of the decoder's layer call it; ``cls`` is built
    with torch's sizes, dropout, activation, placement of the norms and epsilon, on torch's device
    and dtype, in torch's train or eval mode.

    Raises:
        TypeError: ``torch_layer`` is not a ``torch_type``.
        ValueError: ``torch_layer`` is not batch-first, or its activation is neither relu nor
            exact gelu.

    Examples:
        >>> theirs = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
        >>> norms = ("norm1", "norm2")
        >>> ours = layer_from_torch(EncoderLayer, theirs, nn.TransformerEncoderLayer, norms=norms)
        >>> torch.equal(ours.feed_forward.linear1.weight, theirs.linear1.weight)
        True
    """
    if not isinstance(torch_layer, torch_type):
        raise TypeError(
            f"torch_layer: expected torch.nn.{torch_type.__name__}, got {type(torch_layer).__name__}"
        )
    if not torch_layer.self_attn.batch_first:
        raise ValueError("torch_layer: expected batch_first=True (our layers are batch-first)")
    self_attn = MultiHeadAttention.from_torch(torch_layer.self_attn)
    ours = cls(
        d_model=self_attn.d_model,
        num_heads=self_attn.num_heads,
        d_ff=torch_layer.linear1.out_features,
        dropout=torch_layer.dropout.p,
        activation=_activation_name(torch_layer),
        norm_first=torch_layer.norm_first,
        layer_norm_eps=torch_layer.norm1.eps,
    )
    ours.self_attn = self_attn
    if cross_attention is not None:
        ours.cross_attn = MultiHeadAttention.from_torch(getattr(torch_layer, cross_attention))
    ours = ours.to(device=self_attn.q_proj.weight.device, dtype=self_attn.q_proj.weight.dtype)
    with torch.no_grad():
        for name in ("linear1", "linear2"):
            getattr(ours.feed_forward, name).load_state_dict(getattr(torch_layer, name).state_dict())
        for name in norms:
            getattr(ours, name).load_state_dict(getattr(torch_layer, name).state_dict())
    return ours.train(torch_layer.training)


def stack_from_torch(cls: type[nn.Module], layers: list[nn.Module], torch_stack: nn.Module) -> nn.Module:
    """Our stack ``cls`` holding ``layers`` (already copied from ``torch_stack``'s) and a copy of
    torch's final norm (None when torch's stack has none).

    The ``from_torch`` of :class:`Encoder` and of the decoder's stack call it, with the layers
    their layer class's ``from_torch`` copied; the stack takes its sizes from the first layer.

    Examples:
        >>> layer = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, batch_first=True)
        >>> theirs = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        >>> ours = stack_from_torch(Encoder, [EncoderLayer.from_torch(m) for m in theirs.layers], theirs)
        >>> len(ours.layers), ours.norm is None
        (2, True)
    """
    first = layers[0]
    ours = cls(
        num_layers=len(layers),
        d_model=first.d_model,
        num_heads=first.self_attn.num_heads,
        d_ff=first.feed_forward.linear1.out_features,
        dropout=first.dropout1.p,
        activation=first.feed_forward.activation_name,
        norm_first=first.norm_first,
        layer_norm_eps=first.norm1.eps,
    )
    ours.layers = nn.ModuleList(layers)
    if torch_stack.norm is None:
        ours.norm = None
    else:
        ours.norm = nn.LayerNorm(first.d_model, eps=torch_stack.norm.eps)
        ours.norm.load_state_dict(torch_stack.norm.state_dict())
    ours = ours.to(device=first.norm1.weight.device, dtype=first.norm1.weight.dtype)
    return ours.train(torch_stack.training)


# ---------------------------------------------------------------- argument checks


def _check_encoder_input(
    x: object, attention_mask: torch.Tensor | None, d_model: int, num_heads: int
) -> torch.Tensor | None:
    """Check a float (B, T, D) input and its mask; return the mask ready for every layer (or None)."""
    _checks.float_tensor(x, "x", f"(B, T, D={d_model})", width=d_model)
    if attention_mask is None:
        return None
    B, T, _ = x.shape
    return expand_mask(attention_mask, B, num_heads, T, T)


def _activation_name(torch_layer: nn.TransformerEncoderLayer) -> str:
    """Name of the activation of a torch encoder layer: 'relu' or 'gelu'."""
    act = torch_layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"torch_layer: only relu and exact gelu activations are supported, got {act}")
