"""Scaled dot-product attention and multi-head attention, written out and checked against torch.

Follows "Attention Is All You Need" (Vaswani et al., 2017), section 3.2. For queries Q, keys K
and values V of width d,

    Attention(Q, K, V) = softmax(Q Kᵀ / √d) V

row by row: query i scores every key j by the dot product q_i · k_j, the scores are divided by √d
(so that their variance does not grow with d), a softmax turns each row into weights that are
positive and sum to 1, and the output of query i is the weighted sum of the values. Multi-head
attention runs H such attentions side by side on learned projections of width D_h = D / H:

    head_h = Attention(X_q W_q^h, X_k W_k^h, X_v W_v^h),   out = concat(head_1, ..., head_H) W_o

Legend used in every ``Shape:`` section: B batch, T length (Tq queries, Tk keys), D model width,
H heads, D_h = D // H. Everything is batch-first.

Masks are boolean (or 0/1 integer) and **True / 1 means "may attend"**, as in
``torch.nn.functional.scaled_dot_product_attention`` and Hugging Face's ``attention_mask``.
``torch.nn.MultiheadAttention``'s ``key_padding_mask`` uses the opposite sense; convert with
:func:`to_torch_key_padding_mask`.

The functions that compute come first; the argument checks, which run once at the public entry
points (:func:`scaled_dot_product_attention`, ``MultiHeadAttention.forward``), are at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks, fused
from .packing import Packing  # the layout of the padding-free path (attend_packed)

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "expand_mask",
    "to_torch_key_padding_mask",
    "fused_attention",
]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d) v, computed explicitly so that the weights can be looked at.

    A query whose keys are all masked attends to nothing: its weights and its output are zeros
    (never NaN).

    Args:
        q: queries.
        k: keys.
        v: values.
        mask: optional, bool or 0/1 integer, True = may attend; broadcastable to (..., Tq, Tk).

    Shape:
        q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv), mask: broadcastable to (..., Tq, Tk)
        Returns out (..., Tq, dv) and weights (..., Tq, Tk).

    Examples:
        >>> q = k = v = torch.eye(3)
        >>> out, weights = scaled_dot_product_attention(q, k, v)
        >>> torch.allclose(weights.sum(-1), torch.ones(3))
        True
        >>> no_future = torch.ones(3, 3, dtype=torch.bool).tril()  # query i sees keys 0..i
        >>> scaled_dot_product_attention(q, k, v, no_future)[1][0]
        tensor([1., 0., 0.])
    """
    mask = _check_qkv_and_mask(q, k, v, mask)
    return _attention(q, k, v, mask)


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The formula itself, unchecked; ``mask`` is None or a bool tensor broadcastable to the scores."""
    d = q.shape[-1]
    # Scaling q before the product is the same formula, but touches (..., Tq, d) numbers instead
    # of (..., Tq, Tk), and keeps q kᵀ smaller where float16 overflows (above 65504).
    scores = (q / math.sqrt(d)) @ k.transpose(-2, -1)  # (..., Tq, d) @ (..., d, Tk) -> (..., Tq, Tk)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        # -inf is exact in float16 and bfloat16 too (no magic -1e9 that half precision rounds or
        # overflows). In place: `scores` is new, and the matmul's backward does not need it.
        scores.masked_fill_(~mask, float("-inf"))
        # A row with every key masked would be softmax(-inf, ..., -inf) = NaN: give it finite
        # scores before the softmax, then zero its weights with the rest of the masked keys.
        has_key = mask.any(dim=-1, keepdim=True)
        scores.masked_fill_(~has_key, 0.0)
        weights = torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)
    out = weights @ v  # (..., Tq, Tk) @ (..., Tk, dv) -> (..., Tq, dv)
    return out, weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention: H scaled dot-product attentions of width D_h = D / H side by side.

    Q, K and V are linear projections of the inputs, split into H heads; each head attends on
    its own, the H outputs are concatenated and projected back to D ("Attention Is All You
    Need", section 3.2.2). The parameter names and layout match ``torch.nn.MultiheadAttention``
    so that :meth:`from_torch` is a plain copy.

    Without weights, the fused ``torch.nn.functional.scaled_dot_product_attention`` computes the
    heads (flash or memory-efficient kernels where available); with ``need_weights=True`` the
    explicit formula of :func:`scaled_dot_product_attention` does. Both give the same output,
    also under ``torch.autocast`` (float16, bfloat16), and both give zeros, never NaN, for a
    query whose keys are all masked.

    ``forward`` checks its inputs and then calls :meth:`attend`, which computes without checking;
    an encoder layer calls :meth:`attend` directly, because its stack has already checked.

    Args:
        d_model: model width D; must be divisible by ``num_heads``.
        num_heads: number of heads H.
        dropout: dropout probability on the attention weights in training. Default: 0.0.
        bias: whether the four projections have a bias. Default: True.

    Shape:
        query: (B, Tq, D); key: (B, Tk, D), default ``query``; value: (B, Tk, D), default ``key``.
        attention_mask (True = may attend): (B, Tk) for padding, or broadcastable to
        (B, H, Tq, Tk) (a (B, Tq, Tk) mask is read as (B, 1, Tq, Tk)).
        Returns out (B, Tq, D) and weights (B, H, Tq, Tk) or None.

    Examples:
        >>> mha = MultiHeadAttention(d_model=8, num_heads=2)
        >>> x = torch.randn(2, 5, 8)
        >>> out, weights = mha(x, need_weights=True)
        >>> tuple(out.shape), tuple(weights.shape)
        ((2, 5, 8), (2, 2, 5, 5))
        >>> padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # 1 = real token
        >>> weights = mha(x, attention_mask=padding, need_weights=True)[1]
        >>> weights[0, :, :, 3:].abs().max().item()  # padding keys get no weight
        0.0
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        _checks.positive_int(d_model, "d_model")
        _checks.positive_int(num_heads, "num_heads")
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}): "
                f"each head gets d_model // num_heads dims"
            )
        _checks.probability(dropout, "dropout")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, dropout={self.dropout}"

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are omitted)."""
        key = query if key is None else key
        value = key if value is None else value
        _check_query_key_value(query, key, value, self.d_model)
        mask = None
        if attention_mask is not None:
            mask = expand_mask(attention_mask, query.shape[0], self.num_heads, query.shape[1], key.shape[1])
        return self.attend(query, key, value, mask, need_weights)

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The computation of :meth:`forward`, without checks.

        ``mask`` is None or a bool tensor broadcastable to (B, H, Tq, Tk), as
        :func:`expand_mask` returns it.
        """
        B, Tq, _ = query.shape
        q = self._split_heads(self.q_proj(query))  # (B, Tq, D) -> (B, H, Tq, D_h)
        k = self._split_heads(self.k_proj(key))  # (B, Tk, D) -> (B, H, Tk, D_h)
        v = self._split_heads(self.v_proj(value))  # (B, Tk, D) -> (B, H, Tk, D_h)
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            context, weights = _attention(q, k, v, mask)  # (B, H, Tq, D_h), (B, H, Tq, Tk)
            if dropout_p > 0.0:
                # Dropout acts on the weights that mix V; the returned weights stay undropped.
                context = F.dropout(weights, dropout_p, training=True) @ v
            context = context.transpose(1, 2)  # (B, H, Tq, D_h) -> (B, Tq, H, D_h)
        else:
            weights = None
            context = fused_attention(q, k, v, mask, dropout_p)  # (B, Tq, H, D_h)
        context = context.reshape(B, Tq, self.d_model)  # (B, Tq, H, D_h) -> (B, Tq, D)
        return self.out_proj(context), weights

    def attend_packed(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """Self-attention on packed tokens: the padding-free path of an encoder (no checks).

        ``x`` holds only the real tokens of a padded batch, row after row (``packing.pack``);
        each token attends to the real tokens of its own row, as the padded path with a padding
        mask computes for them. The projections run on the N real tokens only. Attention runs
        once per run of consecutive rows with the same number of real tokens (``packing.runs``):
        such a block of the packed matrix is a batch without padding, so no padded position is
        computed. Every row the same length: one call; sentences sorted by length: a few. When no
        gradient is recorded, on the CPU, rows whose length is not a multiple of 16 read their
        keys on into the next row's, masked (:func:`~transformer_course.fused.padded_keys`): the
        CPU attention kernel is up to twice as fast on such key lengths. Rows of ``x`` after
        the real tokens (the zero rows of :func:`~transformer_course.fused.bucket_rows`) are
        projected and carried along, but attend to nothing and are attended by nothing.

        Shape:
            x (N, D), N ≥ the number of real tokens -> (N, D)

        Examples:
            >>> mha = MultiHeadAttention(d_model=8, num_heads=2).eval()
            >>> x = torch.randn(2, 4, 8)
            >>> real = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
            >>> packing = Packing.from_mask(real)
            >>> packed = mha.attend_packed(packing.pack(x), packing)  # (5, 8): 3 + 2 real tokens
            >>> padded = mha(x, attention_mask=real)[0]
            >>> tuple(packed.shape), torch.allclose(packed, padded[real.bool()], atol=1e-6)
            ((5, 8), True)
        """
        H, D_h = self.num_heads, self.head_dim
        dropout_p = self.dropout if self.training else 0.0
        real = sum(packing.lengths)  # x's rows after these are zero rows (fused.bucket_rows)
        # (N, D) each, in one matmul when no gradient is recorded; where some row's keys will be
        # read on (padded_keys), with as many rows after the tokens as it may read into
        reads_on = any(fused.reads_keys_on(x.device, n) for _, _, n in packing.runs)
        spare = max(0, fused.KEY_BLOCK - 1 - (x.shape[0] - real)) if reads_on else 0
        q, k, v = fused.project_qkv(self, x, spare_rows=spare)
        context = q.new_empty(q.shape[0], self.d_model)  # (N, D): each run's rows written into it
        context[real:].zero_()
        for start, rows, length in packing.runs:  # rows of equal length: an (r, n) batch, no padding
            end = start + rows * length
            q_r = q[start:end].view(rows, length, H, D_h).transpose(1, 2)  # (r·n, D) -> (r, H, n, D_h)
            keys = fused.run_keys(k, v, start, rows, length, H)  # (r, H, L, D_h) x 2, mask or None
            # Every query has a key (n ≥ 1): the kernel's result needs no fixing (fused_attention).
            out = F.scaled_dot_product_attention(q_r, *keys[:2], attn_mask=keys[2], dropout_p=dropout_p)
            context[start:end].view(rows, length, H, D_h).copy_(out.transpose(1, 2))  # heads side by side
        return fused.linear(context, self.out_proj)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, D_h)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` (same weights, so the same outputs).

        Only the standard layout is supported: equal query/key/value widths, no ``add_bias_kv``
        and no ``add_zero_attn``. Use it batch-first (our module always is).

        Examples:
            >>> theirs = nn.MultiheadAttention(8, 2, batch_first=True)
            >>> ours = MultiHeadAttention.from_torch(theirs)
            >>> x = torch.randn(1, 3, 8)
            >>> torch.allclose(ours(x)[0], theirs(x, x, x)[0], atol=1e-6)
            True
        """
        if not isinstance(torch_mha, nn.MultiheadAttention):
            raise TypeError(
                f"torch_mha: expected torch.nn.MultiheadAttention, got {type(torch_mha).__name__}"
            )
        if not torch_mha._qkv_same_embed_dim:
            raise ValueError("torch_mha: kdim/vdim different from embed_dim are not supported")
        if torch_mha.bias_k is not None or torch_mha.add_zero_attn:
            raise ValueError("torch_mha: add_bias_kv and add_zero_attn are not supported")
        bias = torch_mha.in_proj_bias is not None
        ours = cls(torch_mha.embed_dim, torch_mha.num_heads, dropout=torch_mha.dropout, bias=bias)
        ours = ours.to(device=torch_mha.in_proj_weight.device, dtype=torch_mha.in_proj_weight.dtype)
        with torch.no_grad():
            w_q, w_k, w_v = torch_mha.in_proj_weight.chunk(3, dim=0)  # (3D, D) -> 3 x (D, D)
            ours.q_proj.weight.copy_(w_q)
            ours.k_proj.weight.copy_(w_k)
            ours.v_proj.weight.copy_(w_v)
            ours.out_proj.weight.copy_(torch_mha.out_proj.weight)
            if bias:
                b_q, b_k, b_v = torch_mha.in_proj_bias.chunk(3)  # (3D,) -> 3 x (D,)
                ours.q_proj.bias.copy_(b_q)
                ours.k_proj.bias.copy_(b_k)
                ours.v_proj.bias.copy_(b_v)
                ours.out_proj.bias.copy_(torch_mha.out_proj.bias)
        return ours.train(torch_mha.training)


def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float = 0.0
) -> torch.Tensor:
    """torch's fused kernel (``F.scaled_dot_product_attention``) on split heads: the fast path of
    :class:`MultiHeadAttention`; a query whose keys are all masked gets 0, as in the formula.

    The result is laid out (B, Tq, H, D_h) in memory, so merging the heads into (B, Tq, D) is a
    view, not a copy.

    Shape:
        q (B, H, Tq, D_h), k and v (B, H, Tk, D_h), mask broadcastable to (B, H, Tq, Tk) (True:
        may attend) -> (B, Tq, H, D_h)

    Examples:
        >>> q = k = v = torch.randn(2, 4, 5, 8)  # B = 2, H = 4, T = 5, D_h = 8
        >>> no_keys = torch.tensor([True, False])[:, None, None, None]  # row 1: every key masked
        >>> context = fused_attention(q, k, v, no_keys)
        >>> tuple(context.shape), context[1].abs().max().item()
        ((2, 5, 4, 8), 0.0)
    """
    if mask is None:
        context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return context.transpose(1, 2)  # (B, H, Tq, D_h) -> (B, Tq, H, D_h)
    # A query with every key masked is 0/0 inside the kernels (NaN or zeros, in the forward or the
    # backward, depending on the backend): let such a query see every key, so that no kernel meets
    # one, then zero its output as the explicit formula does.
    has_key = mask.any(dim=-1, keepdim=True)  # (B, H|1, Tq|1, 1)
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key, dropout_p=dropout_p)
    context = context.transpose(1, 2)  # (B, H, Tq, D_h) -> (B, Tq, H, D_h)
    keyless = ~has_key.transpose(1, 2)  # (B, H|1, Tq|1, 1) -> (B, Tq|1, H|1, 1)
    # Filled after the transpose, the result keeps the kernels' (B, Tq, H, D_h) layout, so the
    # caller's reshape copies nothing; in place when autograd needs no copy.
    if context.requires_grad:
        return context.masked_fill(keyless, 0.0)
    return context.masked_fill_(keyless, 0.0)


def expand_mask(attention_mask: torch.Tensor, B: int, H: int, Tq: int, Tk: int) -> torch.Tensor:
    """Check a user's mask once and bring it to a bool tensor broadcastable to (B, H, Tq, Tk).

    A stack of layers calls this once and hands the result to every layer's attention.

    Shape:
        attention_mask (True = may attend): (B, Tk) padding -> (B, 1, 1, Tk);
        (B, Tq, Tk) -> (B, 1, Tq, Tk); a 4-D mask broadcastable to (B, H, Tq, Tk) is kept.

    Examples:
        >>> tuple(expand_mask(torch.tensor([[1, 1, 0]]), B=1, H=2, Tq=3, Tk=3).shape)
        (1, 1, 1, 3)
    """
    mask = _checks.bool_mask(attention_mask, "attention_mask")
    if mask.ndim == 2:
        if tuple(mask.shape) != (B, Tk):
            raise ValueError(
                f"attention_mask: a 2-D mask is a padding mask of shape (B, Tk) = ({B}, {Tk}), "
                f"got {tuple(mask.shape)}"
            )
        return mask[:, None, None, :]  # (B, Tk) -> (B, 1, 1, Tk)
    if mask.ndim == 3:
        mask = mask[:, None]  # (B, Tq, Tk) -> (B, 1, Tq, Tk)
    if mask.ndim != 4:
        raise ValueError(
            f"attention_mask: expected (B, Tk) or a mask broadcastable to (B, H, Tq, Tk), "
            f"got {mask.ndim} dims {tuple(mask.shape)}"
        )
    _check_broadcast(mask, torch.Size((B, H, Tq, Tk)), "attention_mask")
    return mask


def to_torch_key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Convert our padding mask (True = may attend) to ``nn.MultiheadAttention``'s (True = ignore).

    Shape:
        attention_mask: (B, Tk) -> (B, Tk)

    Examples:
        >>> to_torch_key_padding_mask(torch.tensor([[1, 1, 0]]))
        tensor([[False, False,  True]])
    """
    return ~_checks.bool_mask(attention_mask, "attention_mask")


# ---------------------------------------------------------------- argument checks


def _check_qkv_and_mask(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor | None:
    """Check q, k, v of :func:`scaled_dot_product_attention`; return the mask as bool (or None)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{name}: expected at least 2 dims (..., T, d), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k: last dims must match (queries and keys share width d), "
            f"got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v: lengths must match (one value per key), "
            f"got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if mask is None:
        return None
    mask = _checks.bool_mask(mask, "mask")
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])  # the "..." of q and k
    _check_broadcast(mask, torch.Size((*batch, q.shape[-2], k.shape[-2])), "mask")  # (..., Tq, Tk)
    return mask


def _check_broadcast(mask: torch.Tensor, scores_shape: torch.Size, name: str) -> None:
    """Raise unless ``mask`` broadcasts to the (..., Tq, Tk) scores without enlarging them."""
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"{name}: shape {tuple(mask.shape)} does not broadcast to the attention scores "
            f"(..., Tq, Tk) = {tuple(scores_shape)}"
        ) from None
    if shape != scores_shape:
        raise ValueError(
            f"{name}: shape {tuple(mask.shape)} would enlarge the attention scores "
            f"{tuple(scores_shape)}; expected a shape broadcastable to (..., Tq, Tk)"
        )


def _check_query_key_value(query: object, key: object, value: object, d_model: int) -> None:
    """Check that query, key and value are float (B, T, D) tensors with matching B and Tk."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        _checks.float_tensor(x, name, f"(B, T, D={d_model})", width=d_model)
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(
            f"key and value: expected the same (B, Tk), got key {tuple(key.shape)} "
            f"and value {tuple(value.shape)}"
        )
    if query.shape[0] != key.shape[0]:
        raise ValueError(
            f"query and key: expected the same batch size B, got query {tuple(query.shape)} "
            f"and key {tuple(key.shape)}"
        )
