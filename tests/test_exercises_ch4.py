"""Chapter 4's exercise checkers: the instructor's solutions pass, plausible mistakes do not.

Each wrong answer below is a mistake a student is likely to make (no scale, the softmax over
the wrong axis, a mask of the wrong polarity, heads merged in the wrong order, ...); its check
must say "not yet" with a hint that does not give the expected numbers away. A stub that raises
``NotImplementedError``, as the student notebook has it, must say "not attempted yet".
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from conftest import exercise_stub, solution_namespace
from torch import nn

from transformer_course.exercises import evaluate

CHAPTER = "04_self_attention"


def _solution(label: str, *names: str) -> list:
    """The objects ``names`` defined by the instructor's solution of ``label``."""
    namespace = solution_namespace(CHAPTER, label)
    return [namespace[name] for name in names]


def _assert_not_yet(label: str, *answers: object) -> None:
    """The check of ``label`` says "not yet", with a hint that quotes no computed number."""
    verdict = evaluate(label, *answers)
    assert verdict.status == "not yet", verdict
    assert verdict.hint, verdict
    # Shapes and small integers may appear; a value of the answer would be a decimal number.
    assert not re.search(r"\d\.\d", verdict.hint), verdict.hint


class _NotStarted(nn.Module):
    def __init__(self, *args: object) -> None:
        super().__init__()
        raise NotImplementedError("write this class")


# ---------------------------------------------------------------- ch4-one-row


def test_one_row_solution_is_correct():
    (attention_row,) = _solution("ch4-one-row", "attention_row")
    assert evaluate("ch4-one-row", attention_row).correct


def _row_from_scores(scores: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weights = np.exp(scores) / np.exp(scores).sum()
    return weights, weights @ V


@pytest.mark.parametrize(
    "wrong",
    [
        lambda Q, K, V, i: _row_from_scores(Q[i] @ K.T, V),  # no 1/sqrt(d)
        lambda Q, K, V, i: _row_from_scores(K[i] @ Q.T / math.sqrt(Q.shape[1]), V),  # a column, not a row
        lambda Q, K, V, i: _row_from_scores(Q[i] @ K.T / math.sqrt(2), V),  # the tiny example's d_k
        lambda Q, K, V, i: (_row_from_scores(Q[i] @ K.T / math.sqrt(Q.shape[1]), V)[0], V[i]),  # no mixing
    ],
    ids=["no-scale", "column", "fixed-scale", "output-not-mixed"],
)
def test_one_row_rejects_mistakes(wrong):
    _assert_not_yet("ch4-one-row", wrong)


def test_one_row_stub_is_not_attempted():
    assert evaluate("ch4-one-row", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch4-attention


def test_attention_solution_is_correct():
    (dot_product_attention,) = _solution("ch4-attention", "dot_product_attention")
    assert evaluate("ch4-attention", dot_product_attention).correct


def _softmax_attention(scale, dim: int = -1):
    def attention(q, k, v):
        weights = torch.softmax(q @ k.transpose(-2, -1) * scale(q.shape[-1]), dim=dim)
        return weights @ v, weights

    return attention


@pytest.mark.parametrize(
    "wrong",
    [
        _softmax_attention(lambda d: 1.0),  # no scale
        _softmax_attention(lambda d: 1 / math.sqrt(d), dim=-2),  # softmax over the queries
        _softmax_attention(lambda d: 1 / d),  # divided by d instead of sqrt(d)
        _softmax_attention(lambda d: 1 / math.sqrt(8)),  # a fixed width
    ],
    ids=["no-scale", "wrong-axis", "divided-by-d", "fixed-width"],
)
def test_attention_rejects_mistakes(wrong):
    _assert_not_yet("ch4-attention", wrong)


def test_attention_rejects_output_only():
    (dot_product_attention,) = _solution("ch4-attention", "dot_product_attention")
    _assert_not_yet("ch4-attention", lambda q, k, v: dot_product_attention(q, k, v)[0])


def test_attention_stub_is_not_attempted():
    assert evaluate("ch4-attention", exercise_stub).status == "not attempted yet"


def test_attention_wrong_signature_gets_a_hint():
    _assert_not_yet("ch4-attention", lambda q, k: (q, k))


# ---------------------------------------------------------------- ch4-masks


def test_masks_solution_is_correct():
    padding_mask, causal_mask = _solution("ch4-masks", "padding_mask", "causal_mask")
    assert evaluate("ch4-masks", padding_mask, causal_mask).correct


def _right_padding(lengths, T):
    return torch.arange(T)[None, :] < lengths[:, None]


def _right_causal(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


@pytest.mark.parametrize(
    ("padding_mask", "causal_mask"),
    [
        (lambda lengths, T: ~_right_padding(lengths, T), _right_causal),  # True = padding
        (lambda lengths, T: torch.arange(T)[None, :] <= lengths[:, None], _right_causal),  # one too many
        (lambda lengths, T: torch.arange(T)[None, :] < lengths[:, None] - 1, _right_causal),  # one too few
        (lambda lengths, T: _right_padding(lengths, T).long(), _right_causal),  # 0/1, not bool
        (lambda lengths, T: torch.arange(T)[None, :] >= T - lengths[:, None], _right_causal),  # left padding
        (_right_padding, lambda T: torch.ones(T, T, dtype=torch.bool).triu()),  # upper triangle: the future
        (_right_padding, lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)),  # without the diagonal
        (_right_padding, lambda T: ~_right_causal(T)),  # True = hidden
    ],
    ids=["inverted", "off-by-one-long", "off-by-one-short", "not-bool", "left-padding",
         "upper-triangle", "no-diagonal", "causal-inverted"],
)
def test_masks_reject_mistakes(padding_mask, causal_mask):
    _assert_not_yet("ch4-masks", padding_mask, causal_mask)


def test_masks_stub_is_not_attempted():
    assert evaluate("ch4-masks", exercise_stub, exercise_stub).status == "not attempted yet"
    assert evaluate("ch4-masks", _right_padding, exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch4-split-heads


def test_split_heads_solution_is_correct():
    split_heads, merge_heads = _solution("ch4-split-heads", "split_heads", "merge_heads")
    assert evaluate("ch4-split-heads", split_heads, merge_heads).correct


def _right_split(x, H):
    B, T, D = x.shape
    return x.view(B, T, H, D // H).transpose(1, 2)


def _right_merge(x):
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)


@pytest.mark.parametrize(
    ("split_heads", "merge_heads"),
    [
        # One view to (B, H, T, Dh): the right shape, the wrong numbers.
        (lambda x, H: x.view(x.shape[0], H, x.shape[1], x.shape[2] // H), _right_merge),
        # Heads taken as every H-th column instead of a block of Dh columns.
        (lambda x, H: x.view(x.shape[0], x.shape[1], x.shape[2] // H, H).permute(0, 3, 1, 2), _right_merge),
        # No transpose: (B, T, H, Dh).
        (lambda x, H: x.view(x.shape[0], x.shape[1], H, x.shape[2] // H), _right_merge),
        # Merged in the wrong order: (B, H, T, Dh) reshaped without bringing T back in front.
        (_right_split, lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
        # Merged as (Dh, H) instead of (H, Dh).
        (_right_split, lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1)),
    ],
    ids=["view-only", "strided-heads", "no-transpose", "merge-no-transpose", "merge-interleaved"],
)
def test_split_heads_rejects_mistakes(split_heads, merge_heads):
    _assert_not_yet("ch4-split-heads", split_heads, merge_heads)


def test_split_heads_stub_is_not_attempted():
    assert evaluate("ch4-split-heads", exercise_stub, exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch4-single-head


def test_single_head_solution_is_correct():
    (single_head,) = _solution("ch4-single-head", "SingleHead")
    assert evaluate("ch4-single-head", single_head).correct


def _single_head(scale="head", values="v_proj", use_mask=True, polarity=True):
    class Wrong(nn.Module):
        def __init__(self, d_model, head_dim):
            super().__init__()
            self.d_model = d_model
            self.q_proj = nn.Linear(d_model, head_dim)
            self.k_proj = nn.Linear(d_model, head_dim)
            self.v_proj = nn.Linear(d_model, head_dim)

        def forward(self, x, mask=None):
            q, k, v = self.q_proj(x), self.k_proj(x), getattr(self, values)(x)
            width = q.shape[-1] if scale == "head" else self.d_model
            scores = q @ k.transpose(-2, -1) / math.sqrt(width)
            if mask is not None and use_mask:
                hidden = mask[:, None, :] if polarity else ~mask[:, None, :]
                scores = scores.masked_fill(~hidden, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            return weights @ v, weights

    return Wrong


@pytest.mark.parametrize(
    "wrong",
    [
        _single_head(scale="model"),  # sqrt(d_model) instead of sqrt(head_dim)
        _single_head(values="q_proj"),  # the queries as values
        _single_head(use_mask=False),  # the mask ignored
        _single_head(polarity=False),  # the mask read as True = padding
    ],
    ids=["scale-d-model", "q-as-values", "mask-ignored", "mask-inverted"],
)
def test_single_head_rejects_mistakes(wrong):
    _assert_not_yet("ch4-single-head", wrong)


def test_single_head_rejects_missing_layer():
    class NoValues(nn.Module):
        def __init__(self, d_model, head_dim):
            super().__init__()
            self.q_proj = nn.Linear(d_model, head_dim)
            self.k_proj = nn.Linear(d_model, head_dim)

    _assert_not_yet("ch4-single-head", NoValues)


def test_single_head_stub_is_not_attempted():
    assert evaluate("ch4-single-head", _NotStarted).status == "not attempted yet"


# ---------------------------------------------------------------- ch4-multi-head


def test_multi_head_solution_is_correct():
    (multi_head,) = _solution("ch4-multi-head", "MultiHead")
    assert evaluate("ch4-multi-head", multi_head).correct


def _multi_head(merge="right", project=True, use_mask=True, scale="head", split="right"):
    class Wrong(nn.Module):
        def __init__(self, d_model, num_heads):
            super().__init__()
            self.num_heads = num_heads
            self.q_proj = nn.Linear(d_model, d_model)
            self.k_proj = nn.Linear(d_model, d_model)
            self.v_proj = nn.Linear(d_model, d_model)
            self.out_proj = nn.Linear(d_model, d_model)

        def forward(self, x, attention_mask=None):
            B, T, D = x.shape
            H, Dh = self.num_heads, D // self.num_heads
            projections = (self.q_proj, self.k_proj, self.v_proj)
            if split == "right":
                q, k, v = (p(x).view(B, T, H, Dh).transpose(1, 2) for p in projections)
            else:  # one view straight to (B, H, T, Dh): each head's rows mix tokens
                q, k, v = (p(x).view(B, H, T, Dh) for p in projections)
            scores = q @ k.transpose(-2, -1) / math.sqrt(Dh if scale == "head" else D)
            if attention_mask is not None and use_mask:
                scores = scores.masked_fill(~attention_mask[:, None, None, :], float("-inf"))
            context = torch.softmax(scores, dim=-1) @ v  # (B, H, T, Dh)
            if merge == "right":
                context = context.transpose(1, 2).reshape(B, T, D)
            elif merge == "interleaved":  # (B, T, Dh, H): the heads' columns interleaved
                context = context.permute(0, 2, 3, 1).reshape(B, T, D)
            else:  # (B, H, T, Dh) reshaped as it is: the heads' rows end up mixed across tokens
                context = context.reshape(B, T, D)
            return self.out_proj(context) if project else context

    return Wrong


@pytest.mark.parametrize(
    "wrong",
    [
        _multi_head(merge="no-transpose"),  # heads merged in the wrong order
        _multi_head(project=False),  # out_proj created but not applied
        _multi_head(use_mask=False),  # the mask ignored
        _multi_head(scale="model"),  # sqrt(D) instead of sqrt(Dh)
    ],
    ids=["merge-no-transpose", "no-out-proj", "mask-ignored", "scale-d-model"],
)
def test_multi_head_rejects_mistakes(wrong):
    _assert_not_yet("ch4-multi-head", wrong)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_multi_head(split="one-view"), "the heads mix tokens"),  # (a) one view, no transpose
        (_multi_head(split="one-view", merge="no-transpose"), "the heads mix tokens"),  # (a), undone alike
        (_multi_head(scale="model"), "not of d_model"),  # (b) sqrt(D) instead of sqrt(D_h)
        (_multi_head(merge="no-transpose"), "joined back wrongly"),  # (c) merged without transpose
        (_multi_head(merge="interleaved"), "not their columns interleaved"),  # (c) merged as (D_h, H)
        (_multi_head(project=False), "the output projection is missing"),  # (d) out_proj unused
    ],
    ids=["one-view-split", "one-view-both", "scale-d-model", "merge-no-transpose", "merge-interleaved",
         "no-out-proj"],
)
def test_multi_head_names_each_usual_mistake(wrong, hint):
    verdict = evaluate("ch4-multi-head", wrong)
    _assert_not_yet("ch4-multi-head", wrong)
    assert hint in verdict.hint, verdict.hint


def test_multi_head_hints_are_distinct():
    # One hint per bug: a student told "check the split, the scale, the merge and the projection"
    # for all four learns nothing about which one is wrong.
    wrongs = [_multi_head(split="one-view"), _multi_head(scale="model"), _multi_head(merge="no-transpose"),
              _multi_head(project=False)]
    hints = [evaluate("ch4-multi-head", wrong).hint for wrong in wrongs]
    assert len(set(hints)) == 4, hints


def test_multi_head_two_mistakes_get_the_general_hint():
    verdict = evaluate("ch4-multi-head", _multi_head(scale="model", project=False))
    assert verdict.status == "not yet" and "not by one of the usual mistakes alone" in verdict.hint


def test_multi_head_rejects_missing_output_projection():
    class NoOutProj(nn.Module):
        def __init__(self, d_model, num_heads):
            super().__init__()
            self.q_proj = nn.Linear(d_model, d_model)
            self.k_proj = nn.Linear(d_model, d_model)
            self.v_proj = nn.Linear(d_model, d_model)

    _assert_not_yet("ch4-multi-head", NoOutProj)


def test_multi_head_stub_is_not_attempted():
    assert evaluate("ch4-multi-head", _NotStarted).status == "not attempted yet"


def test_checkers_leave_the_global_rng_alone():
    (single_head,) = _solution("ch4-single-head", "SingleHead")
    (multi_head,) = _solution("ch4-multi-head", "MultiHead")
    state = torch.get_rng_state()
    evaluate("ch4-single-head", single_head)
    evaluate("ch4-multi-head", multi_head)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- the wrong kind of argument


def test_an_instance_instead_of_the_class_is_named_before_calling():
    (multi_head,) = _solution("ch4-multi-head", "MultiHead")
    verdict = evaluate("ch4-multi-head", multi_head(12, 3))
    assert verdict.status == "not yet"
    assert "should be a class, got an object of class MultiHead" in verdict.hint
    assert "raised" not in verdict.hint


def test_a_function_instead_of_a_class_is_named():
    (dot_product_attention,) = _solution("ch4-attention", "dot_product_attention")
    verdict = evaluate("ch4-single-head", dot_product_attention)
    assert verdict.hint == "single_head should be a class, got the function dot_product_attention"


def test_a_class_with_other_parameters_is_named_not_blamed():
    class OneArgument(nn.Module):
        def __init__(self, d_model):
            super().__init__()

    verdict = evaluate("ch4-single-head", OneArgument)
    assert verdict.hint == "SingleHead should take 2 arguments; yours takes (d_model)", verdict


def test_a_forward_without_the_mask_is_named_not_blamed():
    (single_head,) = _solution("ch4-single-head", "SingleHead")

    class NoMask(single_head):
        def forward(self, x):
            return super().forward(x)

    verdict = evaluate("ch4-single-head", NoMask)
    assert verdict.status == "not yet" and "raised" not in verdict.hint
    assert verdict.hint == (
        "SingleHead.forward should take 1 argument and the keyword argument mask; yours takes (x)"
    )


def test_a_function_with_other_parameters_is_named_not_blamed():
    verdict = evaluate("ch4-attention", lambda q, k: (q, k))
    assert verdict.hint == "attention should take 3 arguments; yours takes (q, k)"


@pytest.mark.parametrize(
    ("label", "answers", "hint"),
    [
        ("ch4-masks", (lambda lengths, T: None,), "this check takes 2 answers (padding_mask, causal_mask)"),
        ("ch4-attention", (np.zeros(3),), "attention_fn should be a function, got an object of class"),
        ("ch4-single-head", (3,), "single_head should be a class, got int"),
    ],
    ids=["one-answer-of-two", "array-for-function", "number-for-class"],
)
def test_the_wrong_kind_of_answer_says_what_the_check_expects(label, answers, hint):
    verdict = evaluate(label, *answers)
    assert verdict.status == "not yet" and verdict.hint.startswith(hint), verdict
