"""Checkers of chapter 4's exercises: self-attention built step by step, from one row to many heads.

Every checker draws its own inputs from seeded generators (sizes the chapter never uses) and
compares the student's answer with :mod:`transformer_course.attention` or with the formula
computed here, so a check cannot pass by printing the chapter's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .. import attention
from ._core import NotYet, call, checker, expect, expect_close


def _pair(result: object, name: str, first: str, second: str) -> tuple:
    """Unpack a result that must be a pair ``(first, second)``."""
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"{name} should return two things: {first} and {second}",
    )
    return tuple(result)


def _seeded(seed: int) -> torch.Generator:
    """A CPU generator with ``seed``, for the checkers' inputs."""
    return torch.Generator().manual_seed(seed)


def _build(cls: type, name: str, *args: object, seed: int) -> nn.Module:
    """Build the student's module ``cls(*args)`` with torch's global seed set, leaving the RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = call(cls, name, *args)
    expect(isinstance(module, nn.Module), f"{name} should be a subclass of nn.Module")
    return module.eval()


def _linear(module: nn.Module, attribute: str, name: str, shape: tuple[int, int]) -> nn.Linear:
    """The layer ``module.<attribute>``, which must be an ``nn.Linear(in, out)`` with ``shape``."""
    layer = getattr(module, attribute, None)
    expect(isinstance(layer, nn.Linear), f"{name} should have an nn.Linear layer called {attribute}")
    expect(
        (layer.in_features, layer.out_features) == shape,
        f"{name}.{attribute} should be nn.Linear{shape} (in_features, out_features)",
    )
    return layer


# ---------------------------------------------------------------- one row by hand


@checker("ch4-one-row")
def check_one_row(attention_row: Callable) -> None:
    """attention_row(Q, K, V, i) -> (weights (T,), output (dv,)) on random NumPy matrices."""
    rng = np.random.default_rng(2024)
    for T, d, dv in ((5, 3, 4), (7, 6, 2)):
        Q, K, V = rng.normal(size=(T, d)), rng.normal(size=(T, d)), rng.normal(size=(T, dv))
        out, weights = attention.scaled_dot_product_attention(*(torch.from_numpy(M) for M in (Q, K, V)))
        for i in (0, T // 2, T - 1):
            row, output = _pair(
                call(attention_row, "attention_row", Q.copy(), K.copy(), V.copy(), i),
                "attention_row",
                "the weights of query i",
                "its output vector",
            )
            row, output = np.asarray(row, dtype=float), np.asarray(output, dtype=float)
            expect(row.shape == (T,), f"the weights of one query should have one entry per key: shape ({T},)")
            expect(
                bool((row > 0).all()) and abs(row.sum() - 1) < 1e-6,
                "the weights of a row should be positive and sum to 1: divide the exponentials by their sum",
            )
            expect_close(
                row,
                weights[i].numpy(),
                "the weights are not those of query i: score q_i · k_j for every key j, "
                "divide by the square root of the width d, then normalize the exponentials",
            )
            expect_close(
                output,
                out[i].numpy(),
                "the weights are right but the output is not: it is the sum over j of weight_j times "
                "the value vector v_j",
            )


# ---------------------------------------------------------------- (a) the formula


@checker("ch4-attention")
def check_attention(attention_fn: Callable) -> None:
    """attention(q, k, v) -> (out, weights) against the package on batched shapes and widths."""
    gen = _seeded(41)
    # (leading dims, Tq, Tk, d, dv): batches, queries and keys of different lengths, widths != 2.
    for lead, Tq, Tk, d, dv in (((2, 3), 4, 6, 8, 5), ((), 3, 7, 16, 2), ((5,), 1, 3, 32, 4)):
        q = torch.randn(*lead, Tq, d, generator=gen, dtype=torch.float64)
        k = torch.randn(*lead, Tk, d, generator=gen, dtype=torch.float64)
        v = torch.randn(*lead, Tk, dv, generator=gen, dtype=torch.float64)
        expected_out, expected_weights = attention.scaled_dot_product_attention(q, k, v)
        out, weights = _pair(
            call(attention_fn, "attention", q.clone(), k.clone(), v.clone()),
            "attention",
            "the output",
            "the weights",
        )
        expect(isinstance(weights, torch.Tensor), "the weights should be a torch.Tensor")
        expect(
            tuple(weights.shape) == tuple(expected_weights.shape),
            f"the weights should have one row per query and one column per key: "
            f"(..., Tq, Tk) = {tuple(expected_weights.shape)}, got {tuple(weights.shape)}",
        )
        row_sums = weights.detach().to(torch.float64).sum(-1)
        expect(
            torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-6),
            "each row of the weights (one query, all the keys) should sum to 1: "
            "take the softmax over the keys, the last dimension of the scores",
        )
        expect_close(
            weights,
            expected_weights,
            "the rows sum to 1 but the weights are not softmax(q kᵀ / √d): check the scores "
            "and how you scale them (d is the width of the queries and keys)",
        )
        expect_close(
            out,
            expected_out,
            "the weights are right but the output is not: it is the weights times the values",
        )


# ---------------------------------------------------------------- (b) masks


@checker("ch4-masks")
def check_masks(padding_mask: Callable, causal_mask: Callable) -> None:
    """padding_mask(lengths, T) and causal_mask(T): bool, True = may attend, on new sizes."""
    for lengths, T in (([3, 5, 1, 4], 5), ([7, 0, 2], 9)):
        lengths = torch.tensor(lengths)
        expected = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        mask = call(padding_mask, "padding_mask", lengths.clone(), T)
        expect(isinstance(mask, torch.Tensor), "padding_mask should return a torch.Tensor")
        expect(
            mask.dtype == torch.bool,
            f"padding_mask should return a bool tensor (True = may attend), got {mask.dtype}",
        )
        expect(
            tuple(mask.shape) == (len(lengths), T),
            f"padding_mask should return one row per sentence and one column per position: "
            f"(B, T) = {(len(lengths), T)}, got {tuple(mask.shape)}",
        )
        expect(
            not torch.equal(mask, ~expected),
            "the polarity is reversed: True should mark the real tokens (they may be attended to), "
            "False the padding",
        )
        expect(
            torch.equal(mask.sum(-1), lengths),
            "row b should have exactly lengths[b] entries True, one per real token",
        )
        expect(
            torch.equal(mask, expected),
            "the real tokens come first: positions 0 to lengths[b] - 1 of row b are real, the rest padding",
        )
    for T in (1, 4, 7):
        expected = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): key j <= query i
        mask = call(causal_mask, "causal_mask", T)
        expect(isinstance(mask, torch.Tensor), "causal_mask should return a torch.Tensor")
        expect(
            mask.dtype == torch.bool,
            f"causal_mask should return a bool tensor (True = may attend), got {mask.dtype}",
        )
        expect(
            tuple(mask.shape) == (T, T),
            f"causal_mask(T) should be (T, T) = {(T, T)}, got {tuple(mask.shape)}",
        )
        expect(
            torch.equal(mask, expected),
            "row i is query i, column j is key j: query i may attend to keys 0, ..., i "
            "(itself and the past), not to later ones",
        )
    # The masks plug into attention as the chapter does: padded keys must get no weight.
    gen = _seeded(43)
    lengths, T = torch.tensor([6, 2, 4]), 6
    q, k, v = (torch.randn(3, T, 4, generator=gen) for _ in range(3))
    both = padding_mask(lengths, T)[:, None, :] & causal_mask(T)  # (B, 1, T) & (T, T) -> (B, T, T)
    _, weights = attention.scaled_dot_product_attention(q, k, v, mask=both)
    padded = ~(torch.arange(T)[None, :] < lengths[:, None])  # (B, T): True = padding
    expect(
        bool((weights.masked_select(padded[:, None, :].expand_as(weights)) == 0).all()),
        "with your masks, padding keys still get attention weight",
    )


# ---------------------------------------------------------------- split and merge heads


@checker("ch4-split-heads")
def check_split_heads(split_heads: Callable, merge_heads: Callable) -> None:
    """split_heads(x, H) and merge_heads(x): head h = columns h·D_h to (h+1)·D_h - 1, round trips."""
    gen = _seeded(44)
    for B, T, D, H in ((3, 7, 12, 4), (2, 5, 20, 5), (1, 6, 9, 3), (2, 4, 6, 1)):
        D_h = D // H
        x = torch.randn(B, T, D, generator=gen)
        heads = call(split_heads, "split_heads", x.clone(), H)
        expect(isinstance(heads, torch.Tensor), "split_heads should return a torch.Tensor")
        expect(
            tuple(heads.shape) == (B, H, T, D_h),
            f"split_heads should give (B, H, T, D_h) = {(B, H, T, D_h)} for x of shape {(B, T, D)} "
            f"and H = {H}, got {tuple(heads.shape)}",
        )
        for h in range(H):
            expect(
                torch.equal(heads[:, h], x[..., h * D_h : (h + 1) * D_h]),
                "head h should hold, for every token, the columns h·D_h to (h+1)·D_h - 1 of x: "
                "cut D into (H, D_h) first, then bring H in front of T",
            )
        y = torch.randn(B, H, T, D_h, generator=gen)
        merged = call(merge_heads, "merge_heads", y.clone())
        expect(isinstance(merged, torch.Tensor), "merge_heads should return a torch.Tensor")
        expect(
            tuple(merged.shape) == (B, T, D),
            f"merge_heads should give (B, T, D) = {(B, T, D)} for heads of shape {(B, H, T, D_h)}, "
            f"got {tuple(merged.shape)}",
        )
        expect(
            torch.equal(merged, y.transpose(1, 2).reshape(B, T, D)),
            "merge_heads should put the heads of each token side by side (head 0's D_h columns, "
            "then head 1's, ...): bring T back in front of H before joining (H, D_h) into D",
        )
        expect(
            torch.equal(merge_heads(split_heads(x, H)), x) and torch.equal(split_heads(merged, H), y),
            "merge_heads(split_heads(x, H)) should give x back, and split_heads(merge_heads(y), H) y",
        )


# ---------------------------------------------------------------- (c) one head


@checker("ch4-single-head")
def check_single_head(single_head: type) -> None:
    """SingleHead(d_model, head_dim): the formula on its own projections, with and without padding."""
    gen = _seeded(45)
    for seed, (B, T, D, D_h) in enumerate(((3, 6, 12, 5), (2, 4, 10, 4))):
        head = _build(single_head, "SingleHead", D, D_h, seed=seed)
        q_proj, k_proj, v_proj = (
            _linear(head, name, "SingleHead", (D, D_h)) for name in ("q_proj", "k_proj", "v_proj")
        )
        x = torch.randn(B, T, D, generator=gen)
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[0] = T - 1  # at least one sentence is padded
        pad = torch.arange(T)[None, :] < lengths[:, None]  # (B, T), True = real token
        with torch.no_grad():
            q, k, v = q_proj(x), k_proj(x), v_proj(x)  # (B, T, D_h) each, from the student's weights
            for mask in (None, pad):
                expected_out, expected_weights = attention.scaled_dot_product_attention(
                    q, k, v, mask=None if mask is None else mask[:, None, :]
                )
                out, weights = _pair(
                    call(head, "SingleHead.forward", x.clone())
                    if mask is None
                    else call(head, "SingleHead.forward", x.clone(), mask=mask.clone()),
                    "SingleHead.forward",
                    "the output",
                    "the weights",
                )
                if mask is not None:
                    expect(
                        isinstance(weights, torch.Tensor)
                        and tuple(weights.shape) == (B, T, T)
                        and not bool(weights.isnan().any())
                        and bool((weights.masked_select(~mask[:, None, :].expand(B, T, T)) == 0).all()),
                        "with a padding mask, the keys where mask is False (the padding) should get zero "
                        "weight from every query, and the real tokens share the whole row",
                    )
                expect_close(
                    weights.sum(-1),
                    torch.ones(B, T),
                    "each row of the weights should sum to 1: a softmax over the keys",
                    atol=1e-5,
                )
                when = "without a mask" if mask is None else "with a padding mask"
                expect_close(
                    weights,
                    expected_weights,
                    f"{when}, the weights are not softmax(q kᵀ / √D_h) for q = q_proj(x), k = k_proj(x): "
                    + (
                        "check the scale (the width of one head's queries and keys)"
                        if mask is None
                        else "padded keys (mask False) should get zero weight"
                    ),
                    atol=1e-5,
                )
                expect_close(
                    out,
                    expected_out,
                    f"{when}, the weights are right but the output is not: the values are v_proj(x)",
                    atol=1e-5,
                )


# ---------------------------------------------------------------- (d) many heads


@checker("ch4-multi-head")
def check_multi_head(multi_head: type) -> None:
    """MultiHead(d_model, num_heads) with the weights of a seeded MultiHeadAttention: same outputs."""
    gen = _seeded(46)
    for seed, (B, T, D, H) in enumerate(((3, 7, 12, 3), (2, 5, 16, 4))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(100 + seed)
            reference = attention.MultiHeadAttention(D, H).eval()
        student = _build(multi_head, "MultiHead", D, H, seed=seed)
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(student, name, "MultiHead", (D, D))
        try:
            student.load_state_dict(reference.state_dict())
        except RuntimeError:
            raise NotYet(
                "MultiHead should have exactly four learned layers, q_proj, k_proj, v_proj and out_proj, "
                "each nn.Linear(d_model, d_model) with a bias"
            ) from None
        x = torch.randn(B, T, D, generator=gen)
        lengths = torch.randint(1, T, (B,), generator=gen)
        lengths[0] = T
        pad = torch.arange(T)[None, :] < lengths[:, None]  # (B, T), True = real token
        with torch.no_grad():
            out = call(student, "MultiHead.forward", x.clone())
            expect(
                isinstance(out, torch.Tensor),
                "MultiHead.forward should return one tensor, the output (B, T, D)",
            )
            expect(
                tuple(out.shape) == (B, T, D),
                f"MultiHead.forward should return (B, T, D) = {(B, T, D)}, got {tuple(out.shape)}",
            )
            if not torch.allclose(out, reference(x)[0], atol=1e-5, rtol=1e-5):
                _diagnose_multi_head(out, reference, x)
            expect_close(
                call(student, "MultiHead.forward", x.clone(), attention_mask=pad.clone()),
                reference(x, attention_mask=pad)[0],
                "without a mask the output is right, with the padding mask it is not: every head "
                "should give zero weight to the keys where attention_mask is False",
                atol=1e-5,
            )


_MIXED_TOKENS = (
    "the heads mix tokens: head h should hold, for every token, the columns h·D_h to (h+1)·D_h - 1 "
    "of that token's queries (keys, values), but yours takes numbers from several tokens. A single "
    "reshape to (B, H, T, D_h) has the right shape and the wrong numbers; exercise ch4-split-heads "
    "shows the reshape that works"
)

# The usual mistakes of multi-head attention, each the reference computation with one bug, and the
# hint it earns: (split, scale, merge, project) -> hint. The hints name the step, not the code.
_MULTI_HEAD_BUGS = {
    ("one-view", "head", "blocks", True): _MIXED_TOKENS,
    ("one-view", "head", "one-view", True): _MIXED_TOKENS,
    ("blocks", "model", "blocks", True): (
        "the scale is that of the whole model: each head's scores should be divided by the square "
        "root of one head's width D_h = d_model / num_heads, not of d_model"
    ),
    ("blocks", "head", "one-view", True): (
        "each head is right, but the heads are joined back wrongly: token t's output should be the "
        "outputs of its H heads side by side (head 0's D_h numbers, then head 1's, ...); put the "
        "token dimension back next to the batch before joining heads and widths"
    ),
    ("blocks", "head", "interleaved", True): (
        "each head is right, but the heads are joined back wrongly: token t's output should be the "
        "outputs of its H heads side by side (head 0's D_h numbers, then head 1's, ...), not their "
        "columns interleaved"
    ),
    ("blocks", "head", "blocks", False): (
        "the heads are right and joined right, but the output projection is missing: the joined "
        "heads should go through out_proj, which mixes what the heads found"
    ),
}


def multi_head_with_bug(
    reference: attention.MultiHeadAttention,
    x: torch.Tensor,
    split: str = "blocks",
    scale: str = "head",
    merge: str = "blocks",
    project: bool = True,
) -> torch.Tensor:
    """Multi-head self-attention with ``reference``'s weights, computed with one deliberate bug.

    ``split`` "blocks" (right) or "one-view" (one reshape to (B, H, T, D_h)); ``scale`` "head"
    (√D_h, right) or "model" (√D); ``merge`` "blocks" (right), "one-view" (no transpose back) or
    "interleaved" (heads' columns interleaved); ``project`` False leaves out ``out_proj``.

    Shape: x (B, T, D) -> (B, T, D).
    """
    B, T, D = x.shape
    H = reference.num_heads
    D_h = D // H

    def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D_h)
        if split == "one-view":
            return t.reshape(B, H, T, D_h)  # the bug: numbers of several tokens in one head's row
        return t.view(B, T, H, D_h).transpose(1, 2)

    q, k, v = (heads(proj(x)) for proj in (reference.q_proj, reference.k_proj, reference.v_proj))
    scores = q @ k.transpose(-2, -1) / math.sqrt(D_h if scale == "head" else D)  # (B, H, T, T)
    context = torch.softmax(scores, dim=-1) @ v  # (B, H, T, D_h)
    if merge == "one-view":
        context = context.reshape(B, T, D)  # the bug: (B, H, T, D_h) read as (B, T, D)
    elif merge == "interleaved":
        context = context.permute(0, 2, 3, 1).reshape(B, T, D)  # (B, T, D_h, H): columns interleaved
    else:
        context = context.transpose(1, 2).reshape(B, T, D)  # (B, T, H, D_h) -> (B, T, D)
    return reference.out_proj(context) if project else context


def _diagnose_multi_head(out: torch.Tensor, reference: attention.MultiHeadAttention, x: torch.Tensor) -> None:
    """Raise NotYet with the hint of the one usual mistake ``out`` matches, or a general hint."""
    for bug, hint in _MULTI_HEAD_BUGS.items():
        if torch.allclose(out, multi_head_with_bug(reference, x, *bug), atol=1e-5, rtol=1e-5):
            raise NotYet(hint)
    raise NotYet(
        "without a mask the output differs from multi-head attention with the same weights, and not "
        "by one of the usual mistakes alone: check the split into heads, the √D_h scale, how the heads "
        "are joined back (each token's heads side by side), and the output projection"
    )
