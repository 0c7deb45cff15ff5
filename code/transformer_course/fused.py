"""Two fused kernels for the encoder's padding-free path: the same numbers in fewer passes.

When no gradient is needed (evaluation under ``torch.no_grad`` or ``torch.inference_mode``), two
steps of an encoder layer can each run as one call instead of several, as the fast path of
``torch.nn.TransformerEncoder`` runs them:

- :func:`linear_activation`: the feed-forward network's first linear layer and its activation.
  ``F.gelu(F.linear(x, W, b))`` writes the (N, d_ff) product, then reads it back to write a
  second (N, d_ff) tensor; torch's ``_addmm_activation`` applies the activation in place on the
  product. Same matmul, same activation kernel: the same numbers, one large tensor less.
- :func:`project_qkv`: the query, key and value projections of self-attention as one matmul by
  the three weight matrices stacked into one (3D, D) matrix. One larger product keeps the
  machine's matrix units busier than three smaller ones.

Each falls back to the plain operators (those the chapters teach) wherever it does not apply:
while autograd records (neither fused call has a backward), and for :func:`linear_activation`
off the CPU or without ``torch._addmm_activation``, a private operator of torch that a later
release could drop (the tests check that the pinned torch has it).

Legend: N tokens (any leading dims), D model width, d_ff the feed-forward width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["linear_activation", "project_qkv"]

# torch's matmul + bias with the activation applied in place on the result (the fast path of
# torch.nn.TransformerEncoderLayer calls it); None if this torch has no such operator.
_ADDMM_ACTIVATION = getattr(torch, "_addmm_activation", None)
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _records_grad(x: torch.Tensor, *modules: nn.Module) -> bool:
    """True if autograd would record a computation on ``x`` with the parameters of ``modules``."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for m in modules for p in m.parameters())


def linear_activation(x: torch.Tensor, linear: nn.Linear, activation: str) -> torch.Tensor:
    """``activation(linear(x))``, in one call of torch's ``_addmm_activation`` where it applies.

    It applies on the CPU, for ``"relu"`` and (exact) ``"gelu"``, to a linear layer with a bias,
    when no gradient is recorded and ``x`` has the weight's dtype (or autocast is on); elsewhere
    this is the plain ``F.gelu(linear(x))`` (or ``F.relu``). Both give the same numbers.

    Shape:
        x (..., D_in) -> (..., D_out)

    Examples:
        >>> linear = nn.Linear(4, 8)
        >>> x = torch.randn(2, 3, 4)
        >>> with torch.no_grad():
        ...     torch.equal(linear_activation(x, linear, "gelu"), F.gelu(linear(x)))
        True
    """
    weight, bias = linear.weight, linear.bias
    if (
        _ADDMM_ACTIVATION is None
        or activation not in _ACTIVATIONS
        or bias is None
        or x.device.type != "cpu"
        or (x.dtype != weight.dtype and not torch.is_autocast_enabled("cpu"))
        or _records_grad(x, linear)
    ):
        return _ACTIVATIONS[activation](linear(x))
    flat = x.reshape(-1, x.shape[-1])  # (..., D_in) -> (N, D_in)
    out = _ADDMM_ACTIVATION(bias, flat, weight.t(), use_gelu=activation == "gelu")  # (N, D_out)
    return out.view(*x.shape[:-1], out.shape[-1])


def project_qkv(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The query, key and value projections of the self-attention module ``attn`` (our
    :class:`~transformer_course.attention.MultiHeadAttention`) of the same ``x``, as one matmul
    when no gradient is recorded.

    The stacked (3D, D) weight (and (3D,) bias) is built once and kept on ``attn``; it is built
    again after any change to the weights (a new tensor, or one written in place, as an optimizer
    step or ``load_state_dict`` writes it). The three results are views of one (..., 3D) tensor.

    Shape:
        x (..., D) -> q, k, v, each (..., D)

    Examples:
        >>> from transformer_course.attention import MultiHeadAttention
        >>> attn = MultiHeadAttention(d_model=8, num_heads=2)
        >>> x = torch.randn(5, 8)
        >>> with torch.no_grad():
        ...     q, k, v = project_qkv(attn, x)
        ...     torch.allclose(k, attn.k_proj(x), atol=1e-6)
        True
    """
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    tensors = [t for proj in projections for t in (proj.weight, proj.bias) if t is not None]
    if _records_grad(x, *projections) or any(t.is_inference() for t in tensors):
        return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    # Which tensors, and how often each was written to in place: a change makes a new stack.
    key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
    cached = getattr(attn, "_stacked_qkv", None)
    if cached is None or cached[0] != key:
        weight = torch.cat([proj.weight for proj in projections])  # 3 x (D, D) -> (3D, D)
        bias = None if attn.q_proj.bias is None else torch.cat([proj.bias for proj in projections])
        cached = attn._stacked_qkv = (key, weight, bias)
    q, k, v = F.linear(x, cached[1], cached[2]).split(attn.d_model, dim=-1)  # (..., 3D) -> 3 x (..., D)
    return q, k, v
