"""Checkers of chapter 5's exercises: the size and cost of one encoder layer, layer
normalization and the position-wise feed-forward block written from scratch, and an encoder
layer assembled from the package's parts.

Every checker builds its reference layers at sizes the chapter does not use, with seeded weights
(the layer norms' gamma and beta too, so that a norm applied in the wrong place shows), inside
``torch.random.fork_rng`` so that checking never moves the chapter's random stream. The operation
count is read off the layer's own modules (:func:`layer_flops`); the tests pin it to
``torch.utils.flop_counter.FlopCounterMode``, which is too slow to start for a check cell.

The sizes and cases the checkers test (:data:`SIZES`, :data:`LENGTHS`, :data:`FORWARD_CASES`,
:data:`LAYER_NORM_CASES`, :data:`FEED_FORWARD_CASES`) and :func:`layer_flops` are public: they
are what a check promises to cover, and the tests read them to show that no hint gives away a
count at those sizes. The layer-norm and feed-forward variants (:func:`layer_norm_variant`,
:func:`feed_forward_variant`) are the mistakes the hints name; the tests use them too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .. import encoder
from ._core import NotYet, as_number, checker, close, expect, expect_close

# (d_model, num_heads, d_ff): sizes the chapter never shows; the last one has a single head.
SIZES = ((48, 3, 80), (20, 5, 36), (96, 8, 200), (8, 1, 8))
LENGTHS = (7, 19, 64)  # sequence lengths T for the operation count

# (d_model, num_heads, d_ff, B, T, seed) for the forward-pass checks.
FORWARD_CASES = ((24, 3, 40, 3, 9, 11), (40, 5, 72, 2, 13, 12), (16, 1, 24, 4, 5, 13))

# (shape of x, normalized_shape, eps, seed) for ch5-layer-norm: widths the chapter never uses,
# gamma of one and of several dimensions, and epsilons other than the default.
LAYER_NORM_CASES = (
    ((3, 7, 10), (10,), 1e-5, 21),
    ((4, 5, 6), (5, 6), 1e-5, 22),
    ((6, 9), (9,), 1e-2, 23),
    ((2, 3, 4, 5), (4, 5), 1e-3, 24),
    ((2, 8, 5), (5,), 1e-5, 25),
)

# (D, d_ff, activation, shape of x without D, seed) for ch5-feed-forward: both activations, a
# square block (d_ff = D, where transposed weights still multiply), and inputs of 1 to 3 leading
# dimensions.
FEED_FORWARD_CASES = (
    (12, 20, "relu", (3, 7), 31),
    (10, 10, "relu", (2, 6), 32),
    (8, 28, "gelu", (4, 5), 33),
    (6, 6, "gelu", (2, 3, 4), 34),
    (14, 36, "relu", (9,), 35),
)


def _seeded_layer(
    d_model: int, num_heads: int, d_ff: int, norm_first: bool, seed: int
) -> encoder.EncoderLayer:
    """A package EncoderLayer without dropout, in eval mode, its weights and norms drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = encoder.EncoderLayer(d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):  # gamma, beta away from their initial 1 and 0
            norm.weight.copy_(1 + 0.5 * torch.randn(d_model, generator=generator))
            norm.bias.copy_(0.5 * torch.randn(d_model, generator=generator))
    return layer.eval()


def _twin(layer: encoder.EncoderLayer, norm_first: bool, residual: bool = True) -> encoder.EncoderLayer:
    """A package layer with ``layer``'s weights and the given placement of the norms and residuals."""
    attn = layer.self_attn
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten anyway
        other = encoder.EncoderLayer(
            layer.d_model, attn.num_heads, layer.feed_forward.linear1.out_features,
            dropout=0.0, norm_first=norm_first, residual=residual,
        )
    other.load_state_dict(layer.state_dict())
    return other.eval()


def layer_flops(layer: encoder.EncoderLayer, T: int) -> int:
    """Operations of ``layer``'s matrix products on one sequence of length T (a multiply-add is 2)."""
    linears = sum(2 * T * m.in_features * m.out_features for m in layer.modules() if isinstance(m, nn.Linear))
    return linears + 2 * 2 * T * T * layer.d_model  # Q K^T and weights @ V, over all heads


def _inputs(d_model: int, B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) inputs and a (B, T) padding mask (True = real token; row 0 full, the others shorter)."""
    generator = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(B, T, d_model, generator=generator)
    lengths = torch.randint(1, T, (B,), generator=generator)
    lengths[0] = T
    return x, torch.arange(T)[None, :] < lengths[:, None]


@checker("ch5-count")
def check_count(encoder_layer_parameters, encoder_layer_flops) -> None:
    """Parameter and matrix-product counts against the package's layer and FlopCounterMode."""
    for d_model, num_heads, d_ff in SIZES:
        layer = _seeded_layer(d_model, num_heads, d_ff, norm_first=False, seed=0)
        counted = sum(p.numel() for p in layer.parameters())
        answer = as_number(encoder_layer_parameters(d_model, d_ff), "encoder_layer_parameters", whole=True)
        if answer != counted:
            side = "fewer" if answer < counted else "more"
            raise NotYet(
                f"encoder_layer_parameters({d_model}, {d_ff}) gives {side} parameters than "
                f"encoder.EncoderLayer({d_model}, {num_heads}, {d_ff}) has: go through "
                "layer.named_parameters() tensor by tensor and find the one your formula misses"
            )
        for T in LENGTHS:
            counted = layer_flops(layer, T)
            answer = as_number(encoder_layer_flops(d_model, d_ff, T), "encoder_layer_flops", whole=True)
            if answer * 2 == counted:
                raise NotYet("your operation count is half of FlopCounterMode's: a multiply-add "
                             "counts as 2 operations")
            if answer != counted:
                raise NotYet(
                    f"encoder_layer_flops({d_model}, {d_ff}, {T}) differs from what "
                    "FlopCounterMode counts for one sequence of that length: compare your terms "
                    "with counter.get_flop_counts(), one matrix product at a time"
                )


# ---------------------------------------------------------------- ch5-layer-norm


def _layer_norm_reference(case: tuple) -> tuple[torch.Tensor, nn.LayerNorm]:
    """The input of one case and an nn.LayerNorm of its normalized shape with seeded gamma and beta.

    Each row (a slice over the normalized dimensions) gets its own offset and scale, from 1e-3
    (where epsilon matters) to 30, so that statistics taken over other dimensions show. In
    float64: a row of scale 1e-3 around 10 would lose half its digits to rounding in float32.
    """
    shape, normalized_shape, eps, seed = case
    generator = torch.Generator().manual_seed(seed)
    lead = shape[: len(shape) - len(normalized_shape)]
    offsets = 10 * torch.randn(*lead, *[1] * len(normalized_shape), generator=generator)
    scales = torch.exp(torch.empty(*lead, *[1] * len(normalized_shape)).uniform_(
        math.log(1e-3), math.log(30.0), generator=generator))
    x = offsets + scales * torch.randn(*shape, generator=generator)
    norm = nn.LayerNorm(normalized_shape, eps=eps)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.5 * torch.randn(normalized_shape, generator=generator))
        norm.bias.copy_(0.5 * torch.randn(normalized_shape, generator=generator))
    return x.double(), norm.double()


def layer_norm_variant(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, *,
                       dims: tuple[int, ...] | None = None, unbiased: bool = False, eps_at: str = "inside",
                       affine: str = "both") -> torch.Tensor:
    """Layer norm with one rule changed, to recognise a common mistake (the defaults are right).

    ``dims``: the dimensions of the statistics (default: the last ``gamma.dim()``); ``unbiased``:
    divide by n - 1; ``eps_at``: "inside" sqrt(var + eps), "outside" sqrt(var) + eps, or "none";
    ``affine``: "both", "gamma", "beta" or "none" of gamma and beta applied.
    """
    dims = dims if dims is not None else tuple(range(-gamma.dim(), 0))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    std = {"inside": torch.sqrt(var + eps), "outside": torch.sqrt(var) + eps, "none": torch.sqrt(var)}[eps_at]
    normalized = (x - mean) / std
    if affine in ("both", "gamma"):
        normalized = gamma * normalized
    return normalized + beta if affine in ("both", "beta") else normalized


_LAYER_NORM_MISTAKES = [
    (dict(unbiased=True),
     "your variance divides by n - 1 (torch.var's default, unbiased): layer norm divides by n, the "
     "number of values it averages over"),
    (dict(eps_at="outside"),
     "epsilon is added outside the square root: it belongs under it, with the variance"),
    (dict(eps_at="none"),
     "your norm leaves out epsilon: it is what keeps a row whose values are all nearly equal from "
     "being divided by almost zero"),
    (dict(affine="none"),
     "your output is normalized but never scaled by gamma nor shifted by beta"),
    (dict(affine="gamma"),
     "your output is scaled by gamma but not shifted by beta"),
    (dict(affine="beta"),
     "your output is shifted by beta but not scaled by gamma"),
]


class _Forbidden(Exception):
    """Raised by the library layer norm while a layer-norm check runs: the answer must not call it."""


@contextlib.contextmanager
def _without_library_layer_norm() -> Iterator[None]:
    """Make F.layer_norm and torch.layer_norm raise _Forbidden while the student's code runs."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise _Forbidden

    saved = F.layer_norm, torch.layer_norm
    F.layer_norm = torch.layer_norm = forbidden
    try:
        yield
    finally:
        F.layer_norm, torch.layer_norm = saved


@checker("ch5-layer-norm")
def check_layer_norm(layer_norm_by_hand) -> None:
    """``layer_norm_by_hand(x, gamma, beta, eps)`` against nn.LayerNorm with the same gamma and beta."""
    for case in LAYER_NORM_CASES:
        x, norm = _layer_norm_reference(case)
        gamma, beta = norm.weight.detach(), norm.bias.detach()
        with torch.no_grad():
            expected = norm(x)
        try:
            with _without_library_layer_norm():
                answer = layer_norm_by_hand(x.clone(), gamma.clone(), beta.clone(), norm.eps)
        except _Forbidden:
            raise NotYet("your code calls the library's layer norm: compute the mean and the "
                         "variance yourself") from None
        if close(answer, expected):
            continue
        where = f"for x of shape {tuple(x.shape)} and gamma of shape {tuple(gamma.shape)}"
        expect(isinstance(answer, torch.Tensor) and answer.shape == x.shape,
               f"{where} return a tensor of x's shape, got "
               f"{tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__}")
        for rules, hint in _LAYER_NORM_MISTAKES:
            if close(answer, layer_norm_variant(x, gamma, beta, norm.eps, **rules)):
                raise NotYet(f"{where}, {hint}")
        if gamma.dim() > 1 and close(answer, layer_norm_variant(x, gamma, beta, norm.eps, dims=(-1,))):
            raise NotYet(f"{where}, your statistics are taken over the last dimension only: gamma has "
                         f"{gamma.dim()} dimensions, and the mean and variance are over all of them together")
        other_dims = [(d,) for d in range(x.dim() - gamma.dim())] + [tuple(range(x.dim()))]
        if any(close(answer, layer_norm_variant(x, gamma, beta, norm.eps, dims=d)) for d in other_dims):
            raise NotYet(f"{where}, your mean and variance are taken over the wrong dimensions: each "
                         "row x[i, ...] over the last gamma.dim() dimensions gets its own, nothing is "
                         "averaged across the batch or the positions")
        raise NotYet(f"{where}, your output differs from nn.LayerNorm with the same gamma, beta and "
                     "eps: check the mean, the variance, where eps goes, then gamma and beta")


# ---------------------------------------------------------------- ch5-feed-forward


def _feed_forward_reference(case: tuple) -> tuple[torch.Tensor, encoder.FeedForward]:
    """The input of one case and a package FeedForward with seeded weights and visible biases."""
    d_model, d_ff, activation, lead, seed = case
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ff = encoder.FeedForward(d_model, d_ff, activation=activation)
    with torch.no_grad():
        ff.linear1.bias.copy_(0.5 * torch.randn(d_ff, generator=generator))
        ff.linear2.bias.copy_(0.5 * torch.randn(d_model, generator=generator))
    return torch.randn(*lead, d_model, generator=generator), ff.eval()


def feed_forward_variant(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                         b2: torch.Tensor, activation: object, *, transposed: bool = False,
                         biases: str = "both", after: bool = False) -> torch.Tensor:
    """The feed-forward block with one rule changed, to recognise a common mistake.

    ``activation``: a function, or None for none; ``transposed``: x @ W instead of x @ W^T (square
    blocks only); ``biases``: "both", "b1", "b2" or "none" added; ``after``: the activation applied
    to the output too.
    """
    if transposed:
        w1, w2 = w1.T, w2.T
    hidden = x @ w1.T + (b1 if biases in ("both", "b1") else 0)
    hidden = activation(hidden) if activation is not None else hidden
    out = hidden @ w2.T + (b2 if biases in ("both", "b2") else 0)
    return activation(out) if after else out


def _gelu_tanh(z: torch.Tensor) -> torch.Tensor:
    return F.gelu(z, approximate="tanh")


@checker("ch5-feed-forward")
def check_feed_forward(feed_forward_by_hand) -> None:
    """``feed_forward_by_hand(x, w1, b1, w2, b2, activation)`` against encoder.FeedForward's weights."""
    for case in FEED_FORWARD_CASES:
        x, ff = _feed_forward_reference(case)
        d_model, d_ff, name, *_ = case
        weights = [p.detach() for p in (ff.linear1.weight, ff.linear1.bias, ff.linear2.weight,
                                        ff.linear2.bias)]  # w1 (d_ff, D), b1, w2 (D, d_ff), b2
        where = f"for D={d_model}, d_ff={d_ff}, activation={name!r} and x of shape {tuple(x.shape)}"
        with torch.no_grad():
            expected = ff(x)
            try:
                answer = feed_forward_by_hand(x.clone(), *[w.clone() for w in weights], name)
            except RuntimeError as error:
                if "shape" not in str(error) and "size" not in str(error):
                    raise
                raise NotYet(
                    f"{where} your code raised RuntimeError ({str(error).splitlines()[0]}): w1 is "
                    "stored as nn.Linear stores it, (out_features, in_features) = (d_ff, D)"
                ) from None
            if close(answer, expected):
                continue
            expect(isinstance(answer, torch.Tensor) and answer.shape == x.shape,
                   f"{where} return a tensor of x's shape, got "
                   f"{tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__}")
            _diagnose_feed_forward(feed_forward_by_hand, answer, x, weights, name, where)


def _diagnose_feed_forward(feed_forward_by_hand, answer: torch.Tensor, x: torch.Tensor,
                           weights: list[torch.Tensor], name: str, where: str) -> None:
    """Raise NotYet with the most specific hint for a feed-forward output that differs from the package's."""
    act = {"relu": F.relu, "gelu": F.gelu}[name]
    other = {"relu": F.gelu, "gelu": F.relu}[name]

    def variant(**rules: object) -> torch.Tensor:
        return feed_forward_variant(x, *weights, rules.pop("activation", act), **rules)

    if x.dim() > 1 and x.shape[-2] > 1:  # change every position but one: that one must not move
        changed, generator = x.clone(), torch.Generator().manual_seed(0)
        changed[..., 1:, :] = torch.randn(changed[..., 1:, :].shape, generator=generator)
        moved = feed_forward_by_hand(changed, *[w.clone() for w in weights], name)
        if isinstance(moved, torch.Tensor) and moved.shape == x.shape and not close(moved[..., 0, :],
                                                                                     answer[..., 0, :]):
            raise NotYet(f"{where} your output at one position changes when only the other positions "
                         "change: the block maps each position's vector on its own, the same way for all")
    mistakes = [
        (dict(activation=None), "there is no activation between the two linear maps (without one "
                                "the block is a single linear map)"),
        (dict(activation=other), f"the activation is not {name}: use the one that the argument "
                                 "activation names"),
        (dict(after=True), "the activation is applied to the output too: only the hidden vector "
                           "goes through it"),
        (dict(biases="none"), "your block adds neither bias"),
        (dict(biases="b2"), "your block leaves out b1, the bias of the first linear map"),
        (dict(biases="b1"), "your block leaves out b2, the bias of the second linear map"),
    ]
    if name == "gelu":
        mistakes.insert(1, (dict(activation=_gelu_tanh),
                            "your GELU is the tanh approximation: the package's (F.gelu's default) "
                            "is the exact z * Phi(z), with the error function"))
    if weights[0].shape[0] == weights[0].shape[1]:
        mistakes.append((dict(transposed=True), "your weights are used transposed: nn.Linear stores "
                                                "its weight as (out_features, in_features)"))
    for rules, hint in mistakes:
        if close(answer, variant(**rules)):
            raise NotYet(f"{where} {hint}")
    raise NotYet(f"{where} your output differs from encoder.FeedForward with the same weights: "
                 "check each linear map (weight layout and bias), then the activation between them")


# ---------------------------------------------------------------- ch5-assemble-layer


@checker("ch5-assemble-layer")
def check_assemble_layer(layer_class) -> None:
    """``layer_class(d_model, num_heads, d_ff, norm_first)`` against the package's layer, both placements."""
    expect(isinstance(layer_class, type) and issubclass(layer_class, nn.Module),
           "pass the class itself (a subclass of nn.Module), not an instance of it")
    for norm_first in (False, True):
        name = "pre-LN (norm_first=True)" if norm_first else "post-LN (norm_first=False)"
        for d_model, num_heads, d_ff, B, T, seed in FORWARD_CASES:
            reference = _seeded_layer(d_model, num_heads, d_ff, norm_first=norm_first, seed=seed)
            with torch.random.fork_rng(devices=[]):
                mine = layer_class(d_model, num_heads, d_ff, norm_first=norm_first)
            theirs, ours = set(reference.state_dict()), set(mine.state_dict())
            expect(
                ours == theirs,
                f"the parameter names differ from encoder.EncoderLayer's: missing {sorted(theirs - ours)}, "
                f"unexpected {sorted(ours - theirs)} (name the parts self_attn, feed_forward, norm1, norm2)",
            )
            try:
                mine.load_state_dict(reference.state_dict())
            except RuntimeError as error:
                raise NotYet(f"the weights of encoder.EncoderLayer({d_model}, {num_heads}, {d_ff}) "
                             f"do not fit your layer: {str(error).splitlines()[-1].strip()}") from None
            mine.eval()
            x, mask = _inputs(d_model, B, T, seed)
            with torch.no_grad():
                answer = mine(x, attention_mask=mask)
                if not close(answer, reference(x, mask)):
                    _diagnose_layer(answer, reference, x, mask, name)
                expect(close(mine(x), reference(x)),
                       f"your {name} layer is wrong when called without attention_mask")


def _diagnose_layer(
    answer: object, reference: encoder.EncoderLayer, x: torch.Tensor, mask: torch.Tensor, name: str
) -> None:
    """Raise NotYet with the most specific hint for an output that differs from ``reference``'s."""
    if close(answer, _twin(reference, norm_first=not reference.norm_first)(x, mask)):
        raise NotYet(f"your {name} layer computes the other placement of the norms")
    if close(answer, reference(x)):
        raise NotYet(f"your {name} layer ignores attention_mask: padding keys must get no attention")
    if close(answer, _twin(reference, norm_first=reference.norm_first, residual=False)(x, mask)):
        raise NotYet(f"your {name} layer has no residual connections")
    B, T, D = x.shape
    expect_close(
        answer, reference(x, mask),
        f"your {name} layer differs from encoder.EncoderLayer with the same weights (d_model={D}, "
        f"num_heads={reference.self_attn.num_heads}, B={B}, T={T}, padded): check each residual and "
        "which tensor each norm receives",
        atol=1e-5, rtol=1e-4,
    )
    raise NotYet(f"your {name} layer's output is near encoder.EncoderLayer's, not within tolerance")
