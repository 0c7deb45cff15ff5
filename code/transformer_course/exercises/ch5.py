"""Checkers of chapter 5's exercises: the size and cost of one encoder layer, the pre-LN forward
pass written with a post-LN layer's own modules, and an encoder layer assembled from the
package's parts.

Every checker builds its reference layers at sizes the chapter does not use, with seeded weights
(the layer norms' gamma and beta too, so that a norm applied in the wrong place shows), inside
``torch.random.fork_rng`` so that checking never moves the chapter's random stream. The operation
count is read off the layer's own modules (:func:`layer_flops`); the tests pin it to
``torch.utils.flop_counter.FlopCounterMode``, which is too slow to start for a check cell.

The sizes and cases the checkers test (:data:`SIZES`, :data:`LENGTHS`, :data:`FORWARD_CASES`) and
:func:`layer_flops` are public: they are what a check promises to cover, and the tests read them
to show that no hint gives away a count at those sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import encoder
from ._core import NotYet, as_number, checker, expect, expect_close

# (d_model, num_heads, d_ff): sizes the chapter never shows; the last one has a single head.
SIZES = ((48, 3, 80), (20, 5, 36), (96, 8, 200), (8, 1, 8))
LENGTHS = (7, 19, 64)  # sequence lengths T for the operation count

# (d_model, num_heads, d_ff, B, T, seed) for the forward-pass checks.
FORWARD_CASES = ((24, 3, 40, 3, 9, 11), (40, 5, 72, 2, 13, 12), (16, 1, 24, 4, 5, 13))


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


def _close(a: object, b: torch.Tensor) -> bool:
    """Whether ``a`` is a tensor of ``b``'s shape and values (float32 tolerance)."""
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a.detach().to(b.dtype), b, atol=1e-5, rtol=1e-4)
    )


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


@checker("ch5-pre-ln")
def check_pre_ln(pre_ln_forward) -> None:
    """``pre_ln_forward(post_layer, x)`` against a pre-LN package layer loaded with the same weights."""
    for d_model, num_heads, d_ff, B, T, seed in FORWARD_CASES:
        post = _seeded_layer(d_model, num_heads, d_ff, norm_first=False, seed=seed)
        pre = _twin(post, norm_first=True)
        x, _ = _inputs(d_model, B, T, seed)
        with torch.no_grad():
            expected = pre(x)
            answer = pre_ln_forward(post, x)
            if _close(answer, expected):
                continue
            if _close(answer, post(x)):
                raise NotYet("your output is the post-LN layer's (norm after the addition); "
                             "pre-LN puts each norm somewhere else")
            if _close(answer, _twin(post, norm_first=True, residual=False)(x)):
                raise NotYet("each sub-layer's output must be added to the input it came from "
                             "(the residual connection)")
        expect_close(
            answer, expected,
            f"for d_model={d_model}, num_heads={num_heads}, B={B}, T={T} your output differs from "
            "encoder.EncoderLayer(..., norm_first=True) with the same weights: check which tensor "
            "each norm receives and what each residual adds",
            atol=1e-5, rtol=1e-4,
        )


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
                if not _close(answer, reference(x, mask)):
                    _diagnose_layer(answer, reference, x, mask, name)
                expect(_close(mine(x), reference(x)),
                       f"your {name} layer is wrong when called without attention_mask")


def _diagnose_layer(
    answer: object, reference: encoder.EncoderLayer, x: torch.Tensor, mask: torch.Tensor, name: str
) -> None:
    """Raise NotYet with the most specific hint for an output that differs from ``reference``'s."""
    if _close(answer, _twin(reference, norm_first=not reference.norm_first)(x, mask)):
        raise NotYet(f"your {name} layer computes the other placement of the norms")
    if _close(answer, reference(x)):
        raise NotYet(f"your {name} layer ignores attention_mask: padding keys must get no attention")
    if _close(answer, _twin(reference, norm_first=reference.norm_first, residual=False)(x, mask)):
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
