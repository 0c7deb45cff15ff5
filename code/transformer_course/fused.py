"""Fast paths for the encoder's padding-free path: the same attention in fewer or faster calls.

When no gradient is needed (evaluation under ``torch.no_grad`` or ``torch.inference_mode``),
several steps of an encoder layer run faster than the plain operators the chapters teach, as the
fast path of ``torch.nn.TransformerEncoder`` runs the first two:

- :func:`linear_activation`: the feed-forward network's first linear layer and its activation.
  ``F.gelu(F.linear(x, W, b))`` writes the (N, d_ff) product, then reads it back to write a
  second (N, d_ff) tensor; torch's ``_addmm_activation`` applies the activation in place on the
  product. Same matmul, same activation kernel: the same numbers, one large tensor less.
- :func:`project_qkv`: the query, key and value projections of self-attention as one matmul by
  the three weight matrices stacked into one (3D, D) matrix. One larger product keeps the
  machine's matrix units busier than three smaller ones.
- :func:`padded_keys`: on the CPU, torch's flash-attention kernel is up to twice as slow when
  the number of keys is not a multiple of :data:`KEY_BLOCK` (16) as when it is. Each row's keys
  are read on to the next multiple, into the tokens that follow it in the packed matrix, and a
  mask hides the extra keys: their weights are exactly 0, so the result is the same attention
  (to float rounding), from one view and no copy.
- :func:`linear`, and the two above, in bfloat16 or float16 on the CPU: oneDNN's linear layer
  adds the bias (and applies the activation) as it writes the product, in float32 before the
  result is rounded. torch's ``addmm`` first copies the bias into the output and then adds the
  product to it: one more pass over the output, and one more rounding to bfloat16. oneDNN's
  kernels read a weight in a blocked layout of their own; given a plain weight, the operator
  lays it out again on every call. Each weight is laid out once (:func:`_laid_out`) and kept
  until it changes, as ``torch.compile`` does for a frozen model: a second copy of the
  low-precision weights, freed with them.
- :func:`bucket_rows`: on the CPU, oneDNN, which runs the bfloat16 and float16 matmuls, builds a
  kernel for every matrix shape it meets, and the packed row count N changes with every batch.
  Zero rows that round N up to a multiple of :data:`ROW_BUCKET` (64) let batches share shapes,
  so kernels are built once and reused. Nothing attends to those rows; they are dropped after
  the last layer.

Each falls back to the plain operators wherever it does not apply: while autograd records (none
has a backward here), for :func:`padded_keys` off the CPU, and for :func:`linear_activation` off
the CPU or without ``torch._addmm_activation``; oneDNN's linear layer serves only where this
torch has it and reports that the CPU runs its dtype. Both are private operators of torch that a
later release could drop (the tests check that the pinned torch has them).

Legend: N tokens (any leading dims), D model width, d_ff the feed-forward width, H heads,
D_h = D / H.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["KEY_BLOCK", "ROW_BUCKET", "bucket_rows", "linear", "linear_activation", "padded_keys",
           "project_qkv", "reads_keys_on", "run_keys"]

# Key lengths that the CPU flash-attention kernel of torch 2.13 runs at full speed are multiples
# of this (measured: 27 keys per row took 665 us, the same rows read on to 32 keys 362 us).
KEY_BLOCK = 16

# On the CPU, bfloat16 and float16 forwards round their packed row count up to a multiple of this
# (measured: embedding 1,024 new sentences in bfloat16 took 1.61 s with a kernel built for every
# batch's own row count, 1.15 s rounded up to multiples of 64; 1.09-1.15 s once all were built).
ROW_BUCKET = 64
_KERNEL_BUILDING_DTYPES = (torch.bfloat16, torch.float16)

# torch's matmul + bias with the activation applied in place on the result (the fast path of
# torch.nn.TransformerEncoderLayer calls it); None if this torch has no such operator.
_ADDMM_ACTIVATION = getattr(torch, "_addmm_activation", None)
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}

# oneDNN's linear layer (inductor calls it for low-precision linears on the CPU): the bias and an
# activation applied as the product is written. None if this torch has none. It serves the
# low-precision dtypes for which torch reports oneDNN kernels on this CPU (measured here, bfloat16,
# N = 1,024 tokens of D 384: Q, K, V 606 -> 468 us, linear1 + GELU 1,233 -> 903 us against addmm).
_LINEAR_POINTWISE = (getattr(torch.ops.mkldnn, "_linear_pointwise", None)
                     if torch.backends.mkldnn.is_available() else None)
_ONEDNN_DTYPES = () if _LINEAR_POINTWISE is None else tuple(
    dtype for dtype, supported in ((torch.bfloat16, "_is_mkldnn_bf16_supported"),
                                   (torch.float16, "_is_mkldnn_fp16_supported"))
    if getattr(torch.ops.mkldnn, supported)()
)


# oneDNN's weight layout for its linear layer, made once per weight: the private operator that
# lays a (D_out, D_in) weight out for oneDNN's kernels, told how many rows x will have (a hint:
# any row count runs on the result; measured here, hints from 64 to 4,096 ran alike). A fixed
# hint gives every call the same layout, so the same numbers whatever ran before. Measured here,
# bfloat16, N = 768 tokens of D 384, against the plain weight: Q, K, V 442 -> 388 us, linear2
# 1,174 -> 1,010 us.
_LAY_OUT = (getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
            if _LINEAR_POINTWISE is not None else None)
_LAYOUT_ROWS = 512
# weight -> (what it was when laid out, its layout); an entry goes when its weight is freed.
_LAID_OUT: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _state(t: torch.Tensor) -> tuple:
    """What ``t`` holds now, as far as a tensor made from it can tell: its memory, its count of
    writes in place (an optimizer step, ``load_state_dict``), its dtype and device. A tensor made
    from ``t`` is stale once this differs (not for inference tensors, which count no writes)."""
    return t.data_ptr(), t._version, t.dtype, t.device


def _laid_out(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (D_out, D_in) in oneDNN's layout for its linear layer, made on the first call and
    again after any change (new memory, a new dtype, or a write in place, as an optimizer step or
    ``load_state_dict`` writes it); ``weight`` itself where this torch cannot lay it out, or for an
    inference tensor, which keeps no count of writes to tell a change by."""
    if _LAY_OUT is None or weight.is_inference():
        return weight
    state = _state(weight)
    cached = _LAID_OUT.get(weight)
    if cached is None or cached[0] != state:
        cached = _LAID_OUT[weight] = (state, _LAY_OUT(weight.detach(), _LAYOUT_ROWS))
    return cached[1]


def _records_grad(x: torch.Tensor, *modules: nn.Module) -> bool:
    """True if autograd would record a computation on ``x`` with the parameters of ``modules``."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for m in modules for p in m.parameters())


def _onednn_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none"
) -> torch.Tensor | None:
    """``activation(F.linear(x, weight, bias))`` by oneDNN's linear layer (``activation``: "none",
    "relu" or exact "gelu"), or None where it does not serve: off the CPU, or for a dtype not in
    :data:`_ONEDNN_DTYPES`, or for tensors of different dtypes. The weight goes in oneDNN's own
    layout (:func:`_laid_out`). The caller checks that autograd records nothing (the operator has
    no backward).

    Shape:
        x (..., D_in), weight (D_out, D_in), bias (D_out,) or None -> (..., D_out)
    """
    if (x.device.type != "cpu" or x.dtype not in _ONEDNN_DTYPES or weight.dtype != x.dtype
            or (bias is not None and bias.dtype != x.dtype)):
        return None
    algorithm = "none" if activation == "gelu" else ""  # "none": the exact GELU (erf), not tanh's
    return _LINEAR_POINTWISE(x, _laid_out(weight), bias, activation, [], algorithm)


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)``, by oneDNN's linear layer where it applies: on the CPU, in bfloat16 or float16
    (``x`` and the weight), when no gradient is recorded. It adds the bias as it writes the
    product, before rounding, so its result may differ from ``layer(x)`` in the last bit of the
    dtype. Elsewhere this is ``layer(x)``.

    Shape:
        x (..., D_in) -> (..., D_out)

    Examples:
        >>> layer = nn.Linear(4, 8).to(torch.bfloat16)
        >>> x = torch.randn(2, 3, 4, dtype=torch.bfloat16)
        >>> with torch.no_grad():
        ...     torch.allclose(linear(x, layer), layer(x), atol=0.05)
        True
    """
    return layer(x) if _records_grad(x, layer) else _linear(x, layer.weight, layer.bias)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, by oneDNN's linear layer where it serves (the caller checks
    that autograd records nothing)."""
    out = _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias) if out is None else out


def linear_activation(x: torch.Tensor, linear: nn.Linear, activation: str) -> torch.Tensor:
    """``activation(linear(x))``, in one call of a fused kernel where it applies.

    It applies on the CPU, for ``"relu"`` and (exact) ``"gelu"``, when no gradient is recorded.
    In bfloat16 or float16 (``x`` and the weight), oneDNN's linear layer applies the activation
    before the result is rounded to the dtype, so its result may differ from the plain operators'
    in the last bit. Otherwise, for a linear layer with a bias and ``x`` of the weight's dtype (or
    under autocast), torch's ``_addmm_activation`` gives the same numbers as the plain operators.
    Elsewhere this is the plain ``F.gelu(linear(x))`` (or ``F.relu``).

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
    records = _records_grad(x, linear)
    if activation in _ACTIVATIONS and not records:
        out = _onednn_linear(x, weight, bias, activation)
        if out is not None:
            return out
    if (
        _ADDMM_ACTIVATION is None
        or activation not in _ACTIVATIONS
        or bias is None
        or x.device.type != "cpu"
        or (x.dtype != weight.dtype and not torch.is_autocast_enabled("cpu"))
        or records
    ):
        return _ACTIVATIONS[activation](linear(x))
    flat = x.reshape(-1, x.shape[-1])  # (..., D_in) -> (N, D_in)
    out = _ADDMM_ACTIVATION(bias, flat, weight.t(), use_gelu=activation == "gelu")  # (N, D_out)
    return out.view(*x.shape[:-1], out.shape[-1])


def project_qkv(
    attn: nn.Module, x: torch.Tensor, spare_rows: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The query, key and value projections of the self-attention module ``attn`` (our
    :class:`~transformer_course.attention.MultiHeadAttention`) of the same ``x``, as one matmul
    when no gradient is recorded.

    The stacked (3D, D) weight (and (3D,) bias) is built once and kept on ``attn``; it is built
    again after any change to the weights (a new tensor, or one written in place, as an optimizer
    step or ``load_state_dict`` writes it). The three results are views of one (..., 3D) tensor.
    In bfloat16 or float16 on the CPU, oneDNN's linear layer computes it (as :func:`linear`).

    ``spare_rows`` (x (N, D) only): the (N, 3D) product is written into the first N rows of an
    (N + spare_rows, 3D) tensor whose other rows are 0, so that a view of the keys may read up
    to ``spare_rows`` tokens past the last one (:func:`padded_keys` does). While autograd
    records, the three projections are separate tensors and have no spare rows.

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
    key = tuple(_state(t) for t in tensors)  # a change to any makes a new stack
    cached = getattr(attn, "_stacked_qkv", None)
    if cached is None or cached[0] != key:
        # A normal tensor even under inference_mode, so that _laid_out can keep its layout.
        with torch.inference_mode(False):
            weight = torch.cat([proj.weight for proj in projections])  # 3 x (D, D) -> (3D, D)
            bias = (None if attn.q_proj.bias is None
                    else torch.cat([proj.bias for proj in projections]))  # 3 x (D,) -> (3D,)
        cached = attn._stacked_qkv = (key, weight, bias)
    if spare_rows:
        qkv = _linear_into_rows(x, cached[1], cached[2], spare_rows)  # (N, 3D), zeros after it
    else:
        qkv = _linear(x, cached[1], cached[2])  # (..., D) -> (..., 3D)
    q, k, v = qkv.split(attn.d_model, dim=-1)  # (..., 3D) -> 3 x (..., D)
    return q, k, v


def _linear_into_rows(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spare_rows: int
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for x (N, D_in), written into the first N rows of a new
    (N + spare_rows, D_out) tensor whose last ``spare_rows`` rows are 0; returns the (N, D_out)
    view of the first N. Under autocast in autocast's dtype, as ``F.linear`` would run."""
    if x.ndim != 2:
        raise ValueError(f"x: spare rows need a packed (N, D) matrix, got shape {tuple(x.shape)}")
    if torch.is_autocast_enabled(x.device.type):  # autocast skips out= calls: cast as it would
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    N = x.shape[0]
    rows = x.new_empty(N + spare_rows, weight.shape[0])  # (N + spare, D_out)
    rows[N:].zero_()
    if bias is None:
        return torch.mm(x, weight.t(), out=rows[:N])
    return torch.addmm(bias, x, weight.t(), out=rows[:N])


def bucket_rows(x: torch.Tensor, *modules: nn.Module) -> int:
    """How many zero rows to append to the packed (N, D) ``x`` so that N becomes a multiple of
    :data:`ROW_BUCKET`: on the CPU, for matmuls in bfloat16 or float16 (``x``'s dtype, or
    autocast's), when autograd records nothing on ``x`` or the parameters of ``modules``;
    otherwise 0. There oneDNN builds a kernel for each new shape, and rounding N up lets
    batches of different lengths share kernels (float32 matmuls run on MKL, which builds none).

    Examples:
        >>> x = torch.zeros(100, 8, dtype=torch.bfloat16)
        >>> bucket_rows(x), bucket_rows(x.float()), bucket_rows(x[:64])
        (28, 0, 0)
    """
    if x.device.type != "cpu" or _records_grad(x, *modules):
        return 0
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in _KERNEL_BUILDING_DTYPES
    if x.dtype not in _KERNEL_BUILDING_DTYPES and not autocast:
        return 0
    return -x.shape[0] % ROW_BUCKET


def reads_keys_on(device: torch.device, length: int) -> bool:
    """Whether :func:`padded_keys` reads the keys of rows of ``length`` tokens on to the next
    multiple of :data:`KEY_BLOCK` on ``device``: on the CPU, where that length is not one.

    Examples:
        >>> reads_keys_on(torch.device("cpu"), 27), reads_keys_on(torch.device("cpu"), 32)
        (True, False)
    """
    return device.type == "cpu" and length % KEY_BLOCK != 0


def padded_keys(
    k: torch.Tensor, v: torch.Tensor, start: int, rows: int, length: int, num_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The keys and values of ``rows`` rows of ``length`` tokens each, from token ``start`` of the
    packed ``k`` and ``v``, each row read on to the next multiple of :data:`KEY_BLOCK` keys, and
    the mask that hides the keys it reads on; None where this does not apply.

    Row i's extra keys are the first tokens of row i + 1 (past the last row: the spare rows of
    :func:`project_qkv`): the view overlaps itself and copies nothing. Masked, they get weight
    exactly 0, so attention computes the same as on the ``length`` keys alone (to float rounding,
    for finite k and v). It applies on the CPU, without autograd recording k or v (an
    overlapping view has no cheap backward), when ``length`` is not a multiple of KEY_BLOCK and
    the storage of k and v holds the keys read on to.

    Shape:
        k, v (N, D), rows of stride ≥ D, D = num_heads·D_h -> keys and values (rows, H, L, D_h),
        mask (1, 1, 1, L), True for the ``length`` real keys; L = ``length`` rounded up to a
        multiple of KEY_BLOCK

    Examples:
        >>> kv = torch.randn(2 * 5 + 11, 8)  # two rows of 5 tokens, 11 more rows after them
        >>> k, v = kv[:10], kv[:10]
        >>> keys, values, mask = padded_keys(k, v, start=0, rows=2, length=5, num_heads=2)
        >>> tuple(keys.shape), mask.flatten().tolist()[:6]
        ((2, 2, 16, 4), [True, True, True, True, True, False])
        >>> torch.equal(keys[1, :, 0], k[5].view(2, 4))  # row 1 starts at token 5
        True
    """
    if (not reads_keys_on(k.device, length) or k.requires_grad or v.requires_grad
            or k.stride(1) != 1 or v.stride(1) != 1):
        return None
    padded = -(-length // KEY_BLOCK) * KEY_BLOCK
    views = []
    for t in (k, v):
        D, step = t.shape[1], t.stride(0)
        first = t.storage_offset() + start * step
        last = first + ((rows - 1) * length + padded - 1) * step + D  # one past the last element read
        if last * t.element_size() > t.untyped_storage().nbytes():
            return None
        D_h = D // num_heads
        # (rows, H, L, D_h): rows `length` tokens apart, heads D_h columns apart, keys one token apart
        views.append(t.as_strided((rows, num_heads, padded, D_h), (length * step, D_h, step, 1), first))
    mask = (torch.arange(padded, device=k.device) < length).view(1, 1, 1, padded)
    return views[0], views[1], mask


def run_keys(
    k: torch.Tensor, v: torch.Tensor, start: int, rows: int, length: int, num_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The keys, values and key mask with which the padding-free path attends over ``rows`` rows
    of ``length`` tokens from token ``start`` of the packed ``k`` and ``v``: read on to a multiple
    of :data:`KEY_BLOCK` under a mask where :func:`padded_keys` applies, else each row's own
    ``length`` keys and no mask.

    Shape:
        k, v (N, D), D = num_heads·D_h -> keys and values (rows, H, L, D_h), mask (1, 1, 1, L) or
        None; L = ``length``, or ``padded_keys``' multiple of KEY_BLOCK

    Examples:
        >>> kv = torch.randn(2 * 5 + 11, 8)  # two rows of 5 tokens, 11 more rows after them
        >>> keys, values, mask = run_keys(kv[:10], kv[:10], start=0, rows=2, length=5, num_heads=2)
        >>> tuple(keys.shape), tuple(mask.shape)  # read on to 16 keys, 11 of them masked
        ((2, 2, 16, 4), (1, 1, 1, 16))
        >>> short = kv[:10].clone()  # nothing after the last row to read on into: its own keys
        >>> keys, values, mask = run_keys(short, short, start=0, rows=2, length=5, num_heads=2)
        >>> tuple(keys.shape), mask
        ((2, 2, 5, 4), None)
    """
    keys = padded_keys(k, v, start, rows, length, num_heads)
    if keys is not None:
        return keys
    end, D_h = start + rows * length, k.shape[1] // num_heads
    return (*(t[start:end].view(rows, length, num_heads, D_h).transpose(1, 2) for t in (k, v)), None)
