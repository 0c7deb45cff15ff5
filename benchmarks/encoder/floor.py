"""What any implementation of section 1's padding-free forward must run, timed beside torch's
encoder and ours, so that a missed target says how far below us the floor is.

- *bare kernels*: per layer, the real tokens' four matmuls (Q, K, V as one) without their bias,
  and one attention call per run of rows of one length, on the keys ours reads
  (``fused.run_keys``); nothing else, not even the copy that gathers attention's output
  into one matrix.
- *eager floor*: the same kernels with the least that eager PyTorch runs around them: each bias,
  the activation, both residual adds and both layer norms as one operator each, in place where
  PyTorch has one.

Both are lower bounds: they keep no result (every layer reads the same input), call no module,
and pack or unpack nothing. Ours is eager PyTorch, so the eager floor bounds it; only matmul
kernels that add the bias, apply the activation, add the residual and normalize as they write
their result could go below it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from transformer_course import fused
from transformer_course.encoder import Encoder
from transformer_course.packing import Packing

BARE = "bare kernels"
EAGER_FLOOR = "eager floor"

_IN_PLACE_ACTIVATIONS = {"gelu": torch.ops.aten.gelu_, "relu": torch.relu_}


def floor_forwards(encoder: Encoder, packing: Packing) -> dict[str, Callable[[], None]]:
    """``{BARE: fn, EAGER_FLOOR: fn}``: the two floors (module docstring) of ``encoder``'s layers
    on the real tokens of ``packing``, on a fixed random (N, D) input in the weights' dtype and
    device. Call them with no gradient recorded.

    Shape:
        per layer: x (N, D) -> Q, K, V (N, 3D) -> attention per run -> (N, D) -> (N, d_ff) -> (N, D)
    """
    first = encoder.layers[0]
    weight = first.self_attn.q_proj.weight
    D, H = first.self_attn.d_model, first.self_attn.num_heads
    d_ff = first.feed_forward.linear1.out_features
    activation = _IN_PLACE_ACTIVATIONS[first.feed_forward.activation_name]
    N = sum(packing.lengths)
    x = torch.randn(N, D, dtype=weight.dtype, device=weight.device)
    context, y, hidden = (x.new_zeros(N, width) for width in (D, D, d_ff))
    qkv = x.new_zeros(N + fused.KEY_BLOCK - 1, 3 * D)[:N]  # spare rows that keys may be read on into
    layers = []
    for layer in encoder.layers:
        a, ff = layer.self_attn, layer.feed_forward
        w_qkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()  # (3D, D)
        b_qkv = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).detach()  # (3D,)
        layers.append((w_qkv, b_qkv, a.out_proj, ff.linear1, ff.linear2, layer.norm1, layer.norm2))

    def forward(passes: bool) -> None:
        for w_qkv, b_qkv, out_proj, linear1, linear2, norm1, norm2 in layers:
            torch.mm(x, w_qkv.t(), out=qkv)  # (N, D) -> (N, 3D)
            if passes:
                qkv.add_(b_qkv)
            q, k, v = qkv.split(D, dim=1)
            for start, rows, n in packing.runs:  # an (r, n) batch without padding per run
                end = start + rows * n
                q_r = q[start:end].view(rows, n, H, D // H).transpose(1, 2)
                keys = fused.run_keys(k, v, start, rows, n, H)  # as ours reads them
                # (r, H, n, D_h), gathered into `context` for free
                F.scaled_dot_product_attention(q_r, keys[0], keys[1], attn_mask=keys[2])
            torch.mm(context, out_proj.weight.t(), out=y)  # (N, D) -> (N, D)
            if passes:
                F.layer_norm(y.add_(out_proj.bias).add_(x), (D,), norm1.weight, norm1.bias, norm1.eps)
            torch.mm(x, linear1.weight.t(), out=hidden)  # (N, D) -> (N, d_ff)
            if passes:
                activation(hidden.add_(linear1.bias))
            torch.mm(hidden, linear2.weight.t(), out=y)  # (N, d_ff) -> (N, D)
            if passes:
                F.layer_norm(y.add_(linear2.bias).add_(x), (D,), norm2.weight, norm2.bias, norm2.eps)

    return {BARE: lambda: forward(False), EAGER_FLOOR: lambda: forward(True)}
