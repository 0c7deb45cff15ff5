"""Chapter 3's exercise checkers: the instructor's solutions pass, plausible mistakes get a
hint that does not give the answer away, and stubs are "not attempted yet"."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from conftest import exercise_stub, solution_namespace

from transformer_course import positional, tokenization
from transformer_course.exercises import evaluate

CHAPTER = "03_input_processing"


def _assert_not_yet(verdict, *forbidden: str) -> None:
    """A "not yet" with a hint that names none of the ``forbidden`` strings (the expected answer)."""
    assert verdict.status == "not yet", verdict
    assert verdict.hint
    for text in forbidden:
        assert text not in verdict.hint, verdict.hint


# ---------------------------------------------------------------- ch3-bpe-by-hand


def _bpe(corpus, num_merges, *, across=False, weighted=True, tie="min", overlapping=True):
    """A BPE learner with one rule that can be changed: the mistakes students make."""
    chunk_counts = Counter([corpus] if across else tokenization.bpe_pretokenize(corpus))
    words = {chunk: list(chunk) for chunk in chunk_counts}
    merges = []
    while len(merges) < num_merges:
        pairs = Counter()
        for chunk, symbols in words.items():
            i = 0
            while i + 1 < len(symbols):
                pairs[symbols[i], symbols[i + 1]] += chunk_counts[chunk] if weighted else 1
                # counting "aaa" as one ("a", "a") pair instead of two
                i += 1 if overlapping or symbols[i] != symbols[i + 1] else 2
        if not pairs:
            break
        if tie == "min":
            pair = min(pairs, key=lambda p: (-pairs[p], p))
        elif tie == "max":
            pair = max(pairs, key=lambda p: (pairs[p], p))
        else:  # the first pair met among the most frequent, as Counter.most_common gives it
            pair = pairs.most_common(1)[0][0]
        merges.append(pair)
        for chunk, symbols in words.items():
            merged, i = [], 0
            while i < len(symbols):
                if tuple(symbols[i : i + 2]) == pair:
                    merged.append(pair[0] + pair[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[chunk] = merged
    return merges


def test_bpe_solution_is_correct():
    ns = solution_namespace(CHAPTER, "ch3-bpe-by-hand")
    assert evaluate("ch3-bpe-by-hand", ns["bpe_merges"]).correct
    # the hand-worked answer written in the solution's comment, and the package agree
    text = "hug hug hug pug pun pun bun hugs"
    assert ns["bpe_merges"](text, 3) == [("u", "g"), ("h", "ug"), (" ", "hug")]
    base = tokenization.BPETokenizer(sorted(set(text))).vocab_size
    learned = tokenization.BPETokenizer.learn([text], vocab_size=base + 3).merges
    assert [(m.left, m.right, m.count) for m in learned] == [("u", "g", 5), ("h", "ug", 4), (" ", "hug", 3)]


def test_bpe_reference_learner_matches_the_package():
    assert evaluate("ch3-bpe-by-hand", _bpe).correct


@pytest.mark.parametrize(
    ("rules", "words_in_hint"),
    [
        (dict(across=True), "chunk"),
        (dict(weighted=False), "occurs n times"),
        (dict(tie="max"), "ties"),
        (dict(tie="first seen"), "ties"),
        (dict(overlapping=False), "merge number"),
    ],
)
def test_bpe_mistakes_are_not_yet(rules, words_in_hint):
    verdict = evaluate("ch3-bpe-by-hand", lambda corpus, n: _bpe(corpus, n, **rules))
    _assert_not_yet(verdict, "('", '("')  # no merge of the expected answer is quoted
    assert words_in_hint in verdict.hint


def test_bpe_wrong_shapes_of_answer_are_not_yet():
    # does not stop when every chunk is a single token; merges with counts; merged tokens
    padded = lambda c, n: _bpe(c, n) + [("x", "y")] * (n - len(_bpe(c, n)))  # noqa: E731
    _assert_not_yet(evaluate("ch3-bpe-by-hand", padded))
    _assert_not_yet(evaluate("ch3-bpe-by-hand", lambda c, n: [(*p, 1) for p in _bpe(c, n)]))
    _assert_not_yet(evaluate("ch3-bpe-by-hand", lambda c, n: ["".join(p) for p in _bpe(c, n)]))


def test_bpeexercise_stub_is_not_attempted():
    assert evaluate("ch3-bpe-by-hand", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch3-find-offset


def test_find_offset_solution_is_correct():
    ns = solution_namespace(CHAPTER, "ch3-find-offset")
    assert evaluate("ch3-find-offset", ns["find_offset"]).correct


def _offset_by_maxima(u, v):
    return int(torch.argmax(v)) - int(torch.argmax(u))


def _offset_with_sign_error(u, v):  # searches M_k v = u, which gives p - q
    errors = [(positional.relative_shift_matrix(k, len(u)) @ v - u).norm().item() for k in range(-200, 201)]
    return int(np.argmin(errors)) - 200


def _offset_for_width_64(u, v):  # the chapter's width, hard-coded
    errors = [(positional.relative_shift_matrix(k, 64) @ u - v).norm().item() for k in range(-200, 201)]
    return int(np.argmin(errors)) - 200


def _offset_from_dot_product(u, v):  # u . v depends on |k| only: the sign is lost
    pe = positional.sinusoidal_encoding(201, len(u), dtype=torch.float64)
    return int(np.argmin([abs((pe[0] @ pe[k]).item() - (u @ v).item()) for k in range(201)]))


def _offset_as_float(u, v):
    errors = [(positional.relative_shift_matrix(k, len(u)) @ u - v).norm().item() for k in range(-200, 201)]
    return float(np.argmin(errors) - 200) + 0.5


@pytest.mark.parametrize(
    "wrong",
    [
        _offset_by_maxima,
        _offset_with_sign_error,
        _offset_for_width_64,
        _offset_from_dot_product,
        _offset_as_float,
    ],
)
def test_find_offset_mistakes_are_not_yet(wrong):
    verdict = evaluate("ch3-find-offset", wrong)
    _assert_not_yet(verdict, "173", "-200")  # offsets of the checker's cases are not revealed


def test_find_offset_sign_error_gets_the_sign_hint():
    assert "sign" in evaluate("ch3-find-offset", _offset_with_sign_error).hint


def test_find_offsetexercise_stub_is_not_attempted():
    assert evaluate("ch3-find-offset", exercise_stub).status == "not attempted yet"
