"""Chapter 3's exercise checkers: the instructor's solutions pass, plausible mistakes get a
hint that does not give the answer away, and stubs are "not attempted yet"."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import exercise_stub, solution_namespace

from transformer_course import positional, tokenization
from transformer_course.exercises import evaluate
from transformer_course.exercises.ch3 import SINUSOIDAL_CASES

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


# ---------------------------------------------------------------- ch3-sinusoidal


@pytest.fixture(scope="module")
def sinusoidal_solution():
    return solution_namespace(CHAPTER, "ch3-sinusoidal")["sinusoidal_table"]


def _table(T, D, *, base=10000.0, pair_scale=2, layout="sin first", start=0, width=None, work=torch.float64,
           dtype=torch.float32):
    """A student's sinusoidal table written independently of the checker, with one rule that can
    be changed: the frequencies base^(-pair_scale * i / width), the layout of the columns, the
    first position, and the dtype the angles are computed in."""
    width = width or D
    position = torch.arange(start, start + T, dtype=work)[:, None]  # (T, 1)
    omega = torch.tensor([base ** (-pair_scale * i / width) for i in range((D + 1) // 2)], dtype=work)
    angles = position * omega  # (T, ceil(D/2))
    sines, cosines = torch.sin(angles), torch.cos(angles[:, : D // 2])
    if layout == "halves":
        return torch.cat([sines, cosines], dim=1).to(dtype)
    if layout == "cos first":
        sines, cosines = torch.cos(angles), torch.sin(angles[:, : D // 2])
    table = torch.empty(T, D, dtype=work)
    table[:, 0::2], table[:, 1::2] = sines, cosines
    return table.to(dtype)


def test_sinusoidal_solution_is_correct(sinusoidal_solution):
    assert evaluate("ch3-sinusoidal", sinusoidal_solution).correct
    own_table = lambda T, D, dtype: _table(T, D, dtype=dtype)  # noqa: E731  (the tests' table, no mistake)
    assert evaluate("ch3-sinusoidal", own_table).correct


def test_sinusoidal_checker_covers_odd_widths_long_tables_and_both_dtypes():
    assert {D % 2 for _, D, _ in SINUSOIDAL_CASES} == {0, 1}
    assert {dtype for *_, dtype in SINUSOIDAL_CASES} == {torch.float32, torch.float64}
    assert max(T for T, _, dtype in SINUSOIDAL_CASES if dtype == torch.float32) >= 2000
    # none of them is a size the chapter builds with sinusoidal_encoding
    assert not {(T, D) for T, D, _ in SINUSOIDAL_CASES} & {(128, 64), (512, 64), (1024, 64), (512, 384)}


def test_sinusoidal_solution_matches_the_package_for_odd_widths(sinusoidal_solution):
    # The package's convention for an odd D, which the exercise states: ceil(D/2) sines, the last
    # column a sine; the frequencies use D itself.
    for D in (1, 3, 9):
        table = sinusoidal_solution(6, D, torch.float64)
        package = positional.sinusoidal_encoding(6, D, dtype=torch.float64)
        assert torch.allclose(table, package, rtol=0, atol=1e-12)
        assert torch.allclose(table[:, -1], torch.sin(torch.arange(6.0, dtype=torch.float64)
                                                      * 10000 ** (-(D - 1) / D)))


def _in_float32(T, D, dtype=torch.float32):
    return _table(T, D, work=torch.float32, dtype=dtype)


def _in_dtype(T, D, dtype=torch.float32):  # float64 when asked, float32 angles otherwise
    return _table(T, D, work=dtype, dtype=dtype)


def _stacked_even_only(T, D, dtype=torch.float32):  # sin and cos interleaved by a reshape: needs an even D
    omega = torch.tensor([10000 ** (-2 * i / D) for i in range(D // 2)], dtype=torch.float64)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * omega
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(T, D).to(dtype)


def _integer_power(T, D, dtype=torch.float32):  # 10000 ** (2i) in int64 overflows, then the D-th root
    denominators = (torch.tensor(10000) ** torch.arange(0, D, 2)).double() ** (1 / D)
    angles = torch.arange(T, dtype=torch.float64)[:, None] / denominators
    table = torch.zeros(T, D, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(angles), torch.cos(angles[:, : D // 2])
    return table.to(dtype)


@pytest.mark.parametrize(
    ("wrong", "words_in_hint"),
    [
        (lambda T, D, dtype=torch.float32: _table(T, D, layout="cos first", dtype=dtype), "other way round"),
        (lambda T, D, dtype=torch.float32: _table(T, D, layout="halves", dtype=dtype), "all the sines first"),
        (lambda T, D, dtype=torch.float32: _table(T, D, pair_scale=1, dtype=dtype), "too slowly"),
        (lambda T, D, dtype=torch.float32: _table(T, D, pair_scale=4, dtype=dtype), "too fast"),
        (lambda T, D, dtype=torch.float32: _table(T, D, base=1000.0, dtype=dtype), "base"),
        (lambda T, D, dtype=torch.float32: _table(T, D, base=math.e, dtype=dtype), "base"),
        (lambda T, D, dtype=torch.float32: _table(T, D, start=1, dtype=dtype), "position 1"),
        (_in_float32, "decimals only"),
        (_in_dtype, "decimals only"),
        (_integer_power, "inf or nan"),
        (_stacked_even_only, "odd width"),
        (lambda T, D, dtype=torch.float32: _table(T, D, width=D + D % 2, dtype=dtype), "D+1"),
        (lambda T, D, dtype=torch.float32: _table(T, D + D % 2, dtype=dtype), "for an odd D keep D columns"),
        (lambda T, D, dtype=torch.float32: _table(T, D, dtype=torch.float32), "dtype"),
        (lambda T, D, dtype=torch.float32: _table(T, D, dtype=dtype).T, "one row per position"),
        (lambda T, D, dtype=torch.float32: _table(T, D, dtype=dtype).numpy(), "torch.Tensor"),
    ],
    ids=["sin-cos-swapped", "halves", "i-not-2i", "2i-doubled", "base-1000", "base-e", "from-position-1",
         "float32-angles", "angles-in-dtype", "int-overflow", "odd-width-fails", "odd-width-D+1",
         "odd-width-padded", "wrong-dtype", "transposed", "numpy"],
)
def test_sinusoidal_mistakes_get_their_hint(wrong, words_in_hint):
    verdict = evaluate("ch3-sinusoidal", wrong)
    _assert_not_yet(verdict)
    assert words_in_hint in verdict.hint, verdict.hint


def test_sinusoidal_swapped_columns_within_a_pair_is_not_accepted_as_other_hints():
    # A mistake the checker has no special hint for still gets the general one.
    def shuffled(T, D, dtype=torch.float32):
        return _table(T, D, dtype=dtype).flip(1)

    verdict = evaluate("ch3-sinusoidal", shuffled)
    _assert_not_yet(verdict)
    assert "differs from the formula" in verdict.hint


def test_sinusoidal_stub_is_not_attempted():
    assert evaluate("ch3-sinusoidal", exercise_stub).status == "not attempted yet"


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
