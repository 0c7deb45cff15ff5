"""Scaled dot-product attention and multi-head attention, written out and checked against torch.

Follows "Attention Is All You Need" (Vaswani et al., 2017), section 3.2.

Legend used in every ``Shape:`` section: B batch, T length (Tq queries, Tk keys), D model width,
H heads, Dh = D // H. Everything is batch-first.

Masks are boolean (or 0/1 integer) and **True / 1 means "may attend"**, as in
``torch.nn.functional.scaled_dot_product_attention`` and Hugging Face's ``attention_mask``.
``torch.nn.MultiheadAttention``'s ``key_padding_mask`` uses the opposite sense; convert with
:func:`to_torch_key_padding_mask`.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "check_mask",
    "to_torch_key_padding_mask",
    "fused_attention_kernels",
]


def check_mask(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Validate a "may attend" mask and return it as a bool tensor.

    Raises:
        TypeError: if ``mask`` is not a tensor, or is a float tensor (a float mask is ambiguous:
            additive ``-inf`` or multiplicative 0/1?).
        ValueError: if an integer mask holds values other than 0 and 1.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a bool or 0/1 integer tensor, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(
            f"{name}: expected dtype torch.bool (True = may attend) or a 0/1 integer dtype, "
            f"got {mask.dtype}"
        )
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError(f"{name}: an integer mask must hold only 0 and 1 (1 = may attend)")
    return mask.bool()


def to_torch_key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Convert our padding mask (True = may attend) to ``nn.MultiheadAttention``'s (True = ignore).

    Shape:
        attention_mask: (B, Tk) -> (B, Tk)
    """
    return ~check_mask(attention_mask, "attention_mask")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Check that q, k and v are tensors of compatible shapes for attention."""
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


def _broadcast_mask(mask: torch.Tensor, scores_shape: torch.Size, name: str) -> torch.Tensor:
    """Validate ``mask`` and check it broadcasts to the (..., Tq, Tk) scores."""
    mask = check_mask(mask, name)
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"{name}: shape {tuple(mask.shape)} does not broadcast to the attention scores "
            f"(..., Tq, Tk) = {tuple(scores_shape)}"
        ) from None
    if torch.broadcast_shapes(mask.shape, scores_shape) != scores_shape:
        raise ValueError(
            f"{name}: shape {tuple(mask.shape)} would enlarge the attention scores "
            f"{tuple(scores_shape)}; expected a shape broadcastable to (..., Tq, Tk)"
        )
    return mask


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
    """
    _check_qkv(q, k, v)
    d = q.shape[-1]
    # Scaling q before the product is the same formula, but touches (..., Tq, d) numbers instead
    # of (..., Tq, Tk), and keeps q kᵀ smaller where float16 overflows (above 65504).
    scores = (q / math.sqrt(d)) @ k.transpose(-2, -1)  # (..., Tq, d) @ (..., d, Tk) -> (..., Tq, Tk)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        mask = _broadcast_mask(mask, scores.shape, "mask")
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
    """Multi-head attention: H scaled dot-product attentions of width Dh = D / H side by side.

    Q, K and V are linear projections of the inputs, split into H heads; each head attends on
    its own, the H outputs are concatenated and projected back to D ("Attention Is All You
    Need", section 3.2.2). The parameter names and layout match ``torch.nn.MultiheadAttention``
    so that :meth:`from_torch` is a plain copy.

    Without weights, ``forward`` calls the fused
    ``torch.nn.functional.scaled_dot_product_attention`` (flash or memory-efficient kernels where
    available); with ``need_weights=True`` it takes the explicit path of
    :func:`scaled_dot_product_attention`. Both give the same output, also under
    ``torch.autocast`` (float16, bfloat16), and both give zeros, never NaN, for a query whose keys
    are all masked; :func:`fused_attention_kernels` names the kernel the fused path ran.

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
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        _check_positive_int(d_model, "d_model")
        _check_positive_int(num_heads, "num_heads")
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}): "
                f"each head gets d_model // num_heads dims"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
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

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def _check_input(self, x: torch.Tensor, name: str) -> None:
        """Check that ``x`` is a float (B, T, D) tensor with D = d_model."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{name}: expected shape (B, T, D={self.d_model}), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")

    def _expand_mask(self, attention_mask: torch.Tensor, B: int, Tq: int, Tk: int) -> torch.Tensor:
        """Bring a padding (B, Tk), (B, Tq, Tk) or 4-D mask to a shape broadcastable to (B, H, Tq, Tk)."""
        mask = check_mask(attention_mask, "attention_mask")
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
        return _broadcast_mask(mask, torch.Size((B, self.num_heads, Tq, Tk)), "attention_mask")

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
        self._check_input(query, "query")
        self._check_input(key, "key")
        self._check_input(value, "value")
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
        B, Tq, _ = query.shape
        Tk = key.shape[1]
        mask = None if attention_mask is None else self._expand_mask(attention_mask, B, Tq, Tk)

        q = self._split_heads(self.q_proj(query))  # (B, Tq, D) -> (B, H, Tq, Dh)
        k = self._split_heads(self.k_proj(key))  # (B, Tk, D) -> (B, H, Tk, Dh)
        v = self._split_heads(self.v_proj(value))  # (B, Tk, D) -> (B, H, Tk, Dh)
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            context, weights = scaled_dot_product_attention(q, k, v, mask)
            if dropout_p > 0.0:
                # Dropout acts on the weights that mix V; the returned weights stay undropped.
                context = F.dropout(weights, dropout_p, training=True) @ v
            context = context.transpose(1, 2)  # (B, H, Tq, Dh) -> (B, Tq, H, Dh)
        else:
            weights = None
            fused_mask = None
            if mask is not None:
                # A query with every key masked is 0/0 inside the kernels (NaN or zeros, in the
                # forward or the backward, depending on the backend): let such a query see every
                # key, so that no kernel meets one, then zero its output as the explicit path does.
                has_key = mask.any(dim=-1, keepdim=True)  # (B, H|1, Tq|1, 1)
                fused_mask = mask | ~has_key
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=fused_mask, dropout_p=dropout_p)
            context = context.transpose(1, 2)  # (B, H, Tq, Dh) -> (B, Tq, H, Dh)
            if mask is not None:
                keyless = ~has_key.transpose(1, 2)  # (B, H|1, Tq|1, 1) -> (B, Tq|1, H|1, 1)
                # Filled after the transpose, the result keeps the kernels' (B, Tq, H, Dh) layout,
                # so the reshape below copies nothing; in place when autograd needs no copy.
                if context.requires_grad:
                    context = context.masked_fill(keyless, 0.0)
                else:
                    context.masked_fill_(keyless, 0.0)
        context = context.reshape(B, Tq, self.d_model)  # (B, Tq, H, Dh) -> (B, Tq, D)
        return self.out_proj(context), weights

    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` (same weights, so the same outputs).

        Only the standard layout is supported: equal query/key/value widths, no ``add_bias_kv``
        and no ``add_zero_attn``. Use it batch-first (our module always is).
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


def _check_positive_int(value: object, name: str) -> None:
    """Raise unless ``value`` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send the process's stderr (file descriptor 2) to /dev/null for the block.

    The profiler's C++ back end writes a time-stamped "profiler_start" / "profiler_stop" log
    line there on every run, below Python's reach; in a notebook it would become an output
    that changes on every run. Python-level warnings raised meanwhile are lost too.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def fused_attention_kernels(fn: Callable[[], object]) -> list[str]:
    """Names of the attention kernels that ``torch.nn.functional.scaled_dot_product_attention``
    picked while ``fn()`` ran, one per call, in call order.

    The fused function chooses its kernel at run time from the device, dtype, shapes and mask:
    ``aten::_scaled_dot_product_flash_attention_for_cpu`` on CPU;
    ``aten::_scaled_dot_product_flash_attention`` (no mask, half precision),
    ``aten::_scaled_dot_product_efficient_attention`` (memory-efficient, masks and float32) or
    ``aten::_scaled_dot_product_cudnn_attention`` on CUDA; and
    ``aten::_scaled_dot_product_attention_math``, the unfused fallback that forms the whole
    (T, T) score matrix. The profiler records the chosen operator on the CPU side, so this works
    on every device. ``fn`` runs once.

    Examples:
        >>> mha = MultiHeadAttention(d_model=8, num_heads=2)
        >>> fused_attention_kernels(lambda: mha(torch.randn(1, 4, 8)))
        ['aten::_scaled_dot_product_flash_attention_for_cpu']
        >>> fused_attention_kernels(lambda: mha(torch.randn(1, 4, 8), need_weights=True))
        []
    """
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    # The public op `aten::scaled_dot_product_attention` dispatches to one `aten::_scaled_dot_...`
    # kernel; the efficient and flash kernels call `aten::_efficient_attention_forward` and
    # `aten::_flash_attention_forward` inside it, which are not listed again.
    return [e.name for e in events if e.name.startswith("aten::_scaled_dot_product_")]
