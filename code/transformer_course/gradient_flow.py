"""How gradients flow through an RNN and an encoder: autograd depth, gradient against position,
and per-layer statistics of a deep stack.

The lecture notes claim that, unlike an RNN, the number of layers between two positions of a
Transformer does not grow with the sequence length, so gradients from a distant position do not
vanish. This module measures both halves of that claim:

- :func:`autograd_depth` counts the operations on the longest path of autograd's graph from an
  output back to an input (about 3 T for ``torch.nn.RNN``, a constant for our ``Encoder``);
- :func:`input_gradient_log10_norms` returns log10 ‖∂loss/∂x_t‖ for every position t, with the
  loss on the last position's output. It works in log10 because an RNN's gradient at
  initialisation shrinks roughly like 0.5^T and drops below the smallest float64 (about
  1e-308) long before T = 1024. For ``torch.nn.RNN`` the backward pass runs chunk by chunk and
  rescales the gradient to norm 1 between chunks, keeping the scale aside as a logarithm:
  exact, and it never underflows.

Chapter 5 adds :func:`layer_statistics`: for a deep encoder at initialisation, the gradient
that reaches each layer and how different the positions' vectors still are after it, the two
numbers that say whether residual connections and layer norm let a stack train.

Legend: B batch, T length, D model width, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .encoder import Encoder
from .models import RecallEncoderConfig, make_encoder

__all__ = [
    "autograd_depth",
    "build_model",
    "input_gradient_log10_norms",
    "gradient_vs_position",
    "format_power_of_ten",
    "LayerStatistics",
    "position_spread",
    "layer_statistics",
]

_MODEL_KINDS = ("rnn", "encoder")


def autograd_depth(output: torch.Tensor, inputs: torch.Tensor) -> int:
    """Number of operations on the longest path of autograd's graph from ``output`` to ``inputs``.

    Each node of the graph is one differentiable operation, so this is the number of steps the
    backward pass must take one after the other to carry a gradient from ``output`` back to
    ``inputs``: a measure of depth that counts layers and time steps alike.

    Args:
        output: a tensor computed from ``inputs`` (it must have a ``grad_fn``).
        inputs: a leaf tensor with ``requires_grad=True``.

    Returns:
        The number of operations on the longest path (the leaf's own accumulation node is not
        counted).

    Raises:
        TypeError: if either argument is not a tensor.
        ValueError: if ``inputs`` is not a leaf that requires grad, or ``output`` does not
            depend on it.

    Examples:
        >>> x = torch.ones(3, requires_grad=True)
        >>> autograd_depth((2 * x).exp().sum(), x)
        3
    """
    for name, t in (("output", output), ("inputs", inputs)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not (inputs.is_leaf and inputs.requires_grad):
        raise ValueError("inputs: expected a leaf tensor with requires_grad=True")
    if output.grad_fn is None:
        raise ValueError("output: expected a tensor computed from inputs (it has no grad_fn)")
    # Longest path in a DAG by iterative depth-first search (a recursive one would hit Python's
    # recursion limit on an RNN's graph, thousands of nodes deep). -1 means "does not reach".
    depth: dict[object, int] = {}
    stack: list[tuple[object, bool]] = [(output.grad_fn, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            best = 0 if getattr(node, "variable", None) is inputs else -1
            for child, _ in node.next_functions:
                if child is not None and depth[child] >= 0:
                    best = max(best, depth[child] + 1)
            depth[node] = best
        elif node not in depth:
            stack.append((node, True))
            stack.extend((child, False) for child, _ in node.next_functions if child is not None)
    result = depth[output.grad_fn]
    if result < 0:
        raise ValueError("output: does not depend on inputs")
    return result  # edges on the path = operations (the leaf's AccumulateGrad node is no op)


def build_model(
    model_kind: str,
    d_model: int = RecallEncoderConfig.d_model,
    num_layers: int = RecallEncoderConfig.num_layers,
    num_heads: int = RecallEncoderConfig.num_heads,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> nn.Module:
    """A freshly initialised RNN or encoder of width D, in eval mode, seeded.

    ``"rnn"`` is ``torch.nn.RNN(D, D, batch_first=True)`` (tanh, one layer, PyTorch's default
    init: every weight uniform in ±1/√D); ``"encoder"`` is the encoder stack of the recall
    models (:func:`~transformer_course.models.make_encoder`: post-LN, d_ff = 4 D, no dropout)
    at these sizes. The sizes default to :class:`~transformer_course.models.RecallEncoderConfig`,
    the model chapter 5 trains. The global random state is left untouched.

    Args:
        model_kind: ``"rnn"`` or ``"encoder"``.
        d_model: width D (the RNN's input and hidden size).
        num_layers: the encoder's layers L. The RNN always has one layer: its depth comes from
            time, which is the point of the comparison.
        num_heads: the encoder's attention heads.
        seed: seed of the initial weights. Default: 0.
        dtype: parameter dtype. Default: ``torch.float64``.

    Shape:
        The model maps x (B, T, D) to (B, T, D) (the RNN returns ``(output, h_T)``).

    Examples:
        >>> model = build_model("encoder", d_model=8, num_layers=1, num_heads=2)
        >>> tuple(model(torch.zeros(1, 5, 8, dtype=torch.float64)).shape)
        (1, 5, 8)
    """
    _checks.one_of(model_kind, _MODEL_KINDS, "model_kind")
    # Checks every size, whichever model is built.
    config = RecallEncoderConfig(d_model=d_model, num_heads=num_heads, num_layers=num_layers)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        if model_kind == "rnn":
            model: nn.Module = nn.RNN(d_model, d_model, batch_first=True)
        else:
            model = make_encoder(config)
    return model.to(dtype).eval()


def _log10_norms(grad: torch.Tensor) -> torch.Tensor:
    """log10 of the norm over the last dim, safe from under/overflow: (..., D) -> (...)."""
    scale = grad.abs().amax(dim=-1, keepdim=True)  # (..., 1)
    unit = torch.where(scale > 0, grad / scale, torch.zeros_like(grad))
    return torch.log10(scale.squeeze(-1)) + torch.log10(unit.norm(dim=-1))  # log10(0) = -inf


def _check_gradient_inputs(model: nn.Module, x: torch.Tensor, w: torch.Tensor) -> None:
    """Check the model type and that x is float (B, T, D) and w is (D,) of the same dtype."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if x.ndim != 3 or x.shape[1] == 0:
        raise ValueError(f"x: expected shape (B, T, D) with T >= 1, got {tuple(x.shape)}")
    if w.ndim != 1:
        raise ValueError(f"w: expected shape (D,), one direction, got {tuple(w.shape)}")
    if isinstance(model, nn.RNNBase):
        if not isinstance(model, nn.RNN):
            raise TypeError(
                f"model: of the recurrent nets only torch.nn.RNN is supported, "
                f"got {type(model).__name__}"
            )
        if not model.batch_first or model.bidirectional:
            raise ValueError(
                "model: expected a torch.nn.RNN with batch_first=True and bidirectional=False"
            )
        if x.shape[-1] != model.input_size or w.shape[0] != model.hidden_size:
            raise ValueError(
                f"x, w: expected x (B, T, {model.input_size}) and w ({model.hidden_size},), "
                f"got x {tuple(x.shape)} and w {tuple(w.shape)}"
            )


def _rnn_log10_norms(
    rnn: nn.RNN, x: torch.Tensor, w: torch.Tensor, chunk_length: int
) -> torch.Tensor:
    """Chunked backward through an RNN with the gradient rescaled between chunks: (B, T)."""
    B, T, _ = x.shape
    starts = list(range(0, T, chunk_length))
    # Forward once without a graph, keeping the hidden state that enters each chunk.
    entering: list[torch.Tensor | None] = []
    h = None
    with torch.no_grad():
        for start in starts:
            entering.append(h)
            _, h = rnn(x[:, start : start + chunk_length], h)  # h: (num_layers, B, D)
    log_scale = torch.zeros(B, dtype=x.dtype, device=x.device)  # log10 of what was divided out
    grad_h = None  # gradient arriving at the end of the current chunk, norm 1 per sample
    pieces = []
    for start, h0 in zip(reversed(starts), reversed(entering), strict=True):
        chunk = x[:, start : start + chunk_length].detach().requires_grad_(True)
        h0 = None if h0 is None else h0.detach().requires_grad_(True)
        out, h_end = rnn(chunk, h0)  # out: (B, chunk, D), h_end: (num_layers, B, D)
        # autograd.grad (not .backward) leaves the parameters' .grad untouched.
        wrt = [chunk] if h0 is None else [chunk, h0]
        if grad_h is None:  # the last chunk holds the loss: out[:, -1] · w for each sample
            grads = torch.autograd.grad((out[:, -1] @ w).sum(), wrt)
        else:
            grads = torch.autograd.grad(h_end, wrt, grad_outputs=grad_h)
        pieces.append(_log10_norms(grads[0]) + log_scale[:, None])  # (B, chunk)
        if h0 is not None:
            g = grads[1].transpose(0, 1).reshape(B, -1)  # (num_layers, B, D) -> (B, num_layers * D)
            # Rescale to norm 1 in two steps (by the largest entry, then by the norm), so that
            # no square is ever taken of a tiny number; an all-zero gradient stays zero.
            largest = g.abs().amax(dim=-1)  # (B,)
            largest = torch.where(largest > 0, largest, torch.ones_like(largest))
            unit = g / largest[:, None]
            norm = unit.norm(dim=-1)
            norm = torch.where(norm > 0, norm, torch.ones_like(norm))
            grad_h = (unit / norm[:, None]).reshape(B, *h0.shape[::2]).transpose(0, 1)
            log_scale = log_scale + torch.log10(largest) + torch.log10(norm)
    return torch.cat(pieces[::-1], dim=1)  # (B, T)


def input_gradient_log10_norms(
    model: nn.Module, x: torch.Tensor, w: torch.Tensor, chunk_length: int = 64
) -> torch.Tensor:
    """log10 ‖∂loss/∂x_t‖ for every position t, where loss = output[:, -1] · w.

    The loss reads the last position only, so the gradient at position t measures how much the
    last output depends on the input t steps earlier. A fixed random direction ``w`` is used
    instead of a sum: a post-LN encoder ends with a LayerNorm, whose outputs sum to zero (at
    initialisation), so the sum would have no gradient at all.

    For ``torch.nn.RNN`` the backward pass runs over chunks of ``chunk_length`` steps, last
    chunk first; the gradient leaving a chunk is divided by its norm and the log10 of that norm
    is added to the running scale. This gives the same numbers as plain autograd where plain
    autograd does not underflow, and finite numbers where it does (0.5^1024 ≈ 1e-308).
    Other models (such as our ``Encoder``) use plain autograd.

    Args:
        model: ``torch.nn.RNN`` (batch-first, one direction) or any module mapping (B, T, D)
            to (B, T, D).
        x: the input vectors; not modified.
        w: the direction that turns the last output into a scalar loss.
        chunk_length: steps per chunk of the RNN's backward pass. Default: 64.

    Shape:
        x: (B, T, D), w: (D,) -> (B, T) log10 norms (``-inf`` where the gradient is exactly 0).

    Examples:
        >>> model = build_model("rnn", d_model=4)
        >>> x = torch.randn(1, 10, 4, dtype=torch.float64)
        >>> w = torch.ones(4, dtype=torch.float64)
        >>> log_norms = input_gradient_log10_norms(model, x, w)
        >>> tuple(log_norms.shape), bool(log_norms[0, 0] < log_norms[0, -1])
        ((1, 10), True)
    """
    _check_gradient_inputs(model, x, w)
    _checks.positive_int(chunk_length, "chunk_length")
    with torch.enable_grad():
        if isinstance(model, nn.RNN):
            return _rnn_log10_norms(model, x, w, chunk_length).detach()
        leaf = x.detach().requires_grad_(True)
        out = model(leaf)
        expected = (x.shape[0], x.shape[1], w.shape[0])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"model: expected an output (B, T, D) = {expected}, got {shape}")
        (grad,) = torch.autograd.grad((out[:, -1] @ w).sum(), leaf)  # (B, T, D)
        return _log10_norms(grad).detach()


def gradient_vs_position(
    model_kind: str,
    T: int,
    seed: int = 0,
    d_model: int = RecallEncoderConfig.d_model,
    num_layers: int = RecallEncoderConfig.num_layers,
    num_heads: int = RecallEncoderConfig.num_heads,
) -> torch.Tensor:
    """One seeded measurement of log10 ‖∂loss/∂x_t‖ for every position t (entry 0: position 0).

    Builds the model with :func:`build_model` (float64), draws x ~ N(0, 1) of shape
    (1, T, D) and a direction w ~ N(0, 1) of shape (D,) from a generator seeded with ``seed``,
    and calls :func:`input_gradient_log10_norms`.

    Args:
        model_kind: ``"rnn"`` or ``"encoder"``.
        T: sequence length.
        seed: seeds the weights, x and w. Default: 0.
        d_model, num_layers, num_heads: as in :func:`build_model`.

    Shape:
        Returns (T,) float64 log10 norms.

    Examples:
        >>> log_norms = gradient_vs_position("encoder", T=16, d_model=8, num_heads=2)
        >>> tuple(log_norms.shape)
        (16,)
    """
    _checks.positive_int(T, "T")
    model = build_model(model_kind, d_model, num_layers, num_heads, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, T, d_model, generator=generator, dtype=torch.float64)  # (1, T, D)
    w = torch.randn(d_model, generator=generator, dtype=torch.float64)  # (D,)
    return input_gradient_log10_norms(model, x, w)[0]  # (1, T) -> (T,)


def format_power_of_ten(log10_value: float, digits: int = 3) -> str:
    """Write 10**log10_value in scientific notation, even far beyond float64's range.

    Examples:
        >>> format_power_of_ten(-330.5)
        '3.16e-331'
        >>> format_power_of_ten(2.0)
        '1.00e+02'
    """
    if isinstance(log10_value, torch.Tensor):
        log10_value = log10_value.item()
    if isinstance(log10_value, bool) or not isinstance(log10_value, (int, float)):
        raise TypeError(f"log10_value: expected a real number, got {type(log10_value).__name__}")
    _checks.positive_int(digits, "digits")
    if math.isinf(log10_value) and log10_value < 0:
        return "0"
    if not math.isfinite(log10_value):
        raise ValueError(f"log10_value: expected a finite number or -inf, got {log10_value}")
    exponent = math.floor(log10_value)
    mantissa = round(10 ** (log10_value - exponent), digits - 1)
    if mantissa >= 10:  # 9.999 rounds up to 10.0: carry into the exponent
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits - 1}f}e{exponent:+03d}"


# ---------------------------------------------------------------- chapter 5: deep stacks


def position_spread(x: torch.Tensor) -> float:
    """How different the positions' vectors are: ‖x − mean over positions‖ / ‖x‖.

    0 when every position holds the same vector (nothing left to tell the tokens apart), near
    1 when the vectors share no common part.

    Shape:
        x: (B, T, D) -> a float

    Examples:
        >>> position_spread(torch.ones(2, 5, 4))
        0.0
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected shape (B, T, D), got {shape}")
    centred = x - x.mean(dim=1, keepdim=True)  # (B, T, D) - (B, 1, D)
    return (centred.norm() / x.norm()).item()


@dataclass(frozen=True)
class LayerStatistics:
    """What :func:`layer_statistics` measured, layer by layer (layer 1 is nearest the input)."""

    input_grad_norms: list[float]  # L values: ‖∂loss/∂(input of layer l)‖ over the batch
    param_grad_norms: list[float]  # L values: ‖∂loss/∂(parameters of layer l)‖
    spread: list[float]  # L + 1 values: position_spread of the embeddings, then of each layer's output
    loss: float  # the cross-entropy at initialisation


def layer_statistics(model: nn.Module, input_ids: torch.Tensor, targets: torch.Tensor) -> LayerStatistics:
    """Gradients per layer and the spread of positions, for a model built like
    :class:`~transformer_course.models.EncoderClassifier` (``embedding``, ``encoder``,
    ``readout`` at the last position).

    One forward and one backward pass of the mean cross-entropy on the batch; the model's
    parameter gradients are cleared afterwards.

    Shape:
        input_ids: (B, T) ids; targets: (B,) classes.
    """
    for name in ("embedding", "encoder", "readout"):
        if not isinstance(getattr(model, name, None), nn.Module):
            raise TypeError(f"model: expected a module with .embedding, .encoder and .readout, got "
                            f"{type(model).__name__} without .{name}")
    if not isinstance(model.encoder, Encoder):
        raise TypeError(f"model.encoder: expected an encoder.Encoder, got {type(model.encoder).__name__}")
    if input_ids.ndim != 2 or targets.shape != input_ids.shape[:1]:
        raise ValueError(
            f"input_ids, targets: expected shapes (B, T) and (B,), got {tuple(input_ids.shape)} "
            f"and {tuple(targets.shape)}"
        )
    model.zero_grad(set_to_none=True)
    layer_inputs = []
    x = model.embedding(input_ids)  # (B, T) -> (B, T, D)
    spread = [position_spread(x)]
    for layer in model.encoder.layers:
        x.retain_grad()  # keep ∂loss/∂x for this intermediate tensor
        layer_inputs.append(x)
        x = layer(x)  # (B, T, D) -> (B, T, D)
        spread.append(position_spread(x))
    if model.encoder.norm is not None:
        x = model.encoder.norm(x)
    loss = F.cross_entropy(model.readout(x[:, -1]), targets)  # the query position: (B, D) -> (B, C)
    loss.backward()
    param_norms = [
        math.sqrt(sum(p.grad.pow(2).sum().item() for p in layer.parameters() if p.grad is not None))
        for layer in model.encoder.layers
    ]
    stats = LayerStatistics(
        input_grad_norms=[h.grad.norm().item() for h in layer_inputs],
        param_grad_norms=param_norms,
        spread=spread,
        loss=loss.item(),
    )
    model.zero_grad(set_to_none=True)
    return stats
