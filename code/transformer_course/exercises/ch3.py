"""Checkers of chapter 3's exercises: BPE merges learned by the student's own code, the
sinusoidal table written from its formula, and the offset between two rows of that table
recovered from the rows alone."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from .. import positional, tokenization
from ._core import NotYet, as_number, checker, expect

# ---------------------------------------------------------------- ch3-bpe-by-hand

# Corpora the chapter never shows: repeated words (chunk counts matter), punctuation and runs of
# spaces (chunks of bpe_pretokenize), and many ties between equally frequent pairs.
_BPE_CASES: list[tuple[str, int]] = [
    ("low lower lowest slow slower", 8),
    ("banana bandana banana, ban bandanas!", 10),
    ("aaa aaaa b  aab, aa", 6),
    ("ab ab", 10),  # only two merges exist: the answer stops early
    ("cab cab dab", 0),
]


def _random_bpe_corpus(rng: np.random.Generator) -> str:
    """A short corpus of words over a four-letter alphabet (many ties), some repeated, some punctuation."""
    words = ["".join(rng.choice(list("abcd"), size=int(rng.integers(2, 6)))) for _ in range(5)]
    picks = rng.choice(len(words), size=9, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    separators = rng.choice([" ", " ", " ", ", ", "  "], size=8)
    return "".join(w + s for w, s in zip([words[i] for i in picks], [*separators, ""], strict=True))


def _bpe_reference(corpus: str, num_merges: int) -> list[tuple[str, str]]:
    """The first ``num_merges`` merges of the package's BPETokenizer.learn on ``corpus``."""
    alphabet = sorted({char for chunk in tokenization.bpe_pretokenize(corpus) for char in chunk})
    base = tokenization.BPETokenizer(alphabet).vocab_size
    learned = tokenization.BPETokenizer.learn([corpus], vocab_size=base + num_merges)
    return [(m.left, m.right) for m in learned.merges[:num_merges]]


def _bpe_variant(
    corpus: str, num_merges: int, *, across: bool, weighted: bool, tie: str
) -> list[tuple[str, str]]:
    """A BPE with one rule changed (to recognise a common mistake and give the matching hint)."""
    chunks = Counter([corpus] if across else tokenization.bpe_pretokenize(corpus))
    words = {chunk: list(chunk) for chunk in chunks}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for chunk, symbols in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += chunks[chunk] if weighted else 1
        if not pairs:
            break
        best = max(pairs.values())
        tied = [pair for pair, count in pairs.items() if count == best]
        pair = {"min": min(tied), "max": max(tied), "first seen": tied[0]}[tie]
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


_BPE_MISTAKES = [
    (dict(across=True, weighted=True, tie="min"),
     "your merges join tokens of two different chunks: count pairs only inside each chunk of "
     "tokenization.bpe_pretokenize, never across the boundary between two chunks"),
    (dict(across=False, weighted=False, tie="min"),
     "your merges count each distinct chunk once: a chunk that occurs n times contributes n to "
     "the count of each of its pairs"),
    (dict(across=False, weighted=True, tie="max"),
     "your merges break ties the other way round: among equally frequent pairs, take the one "
     "that comes first in sorting order (the smallest (left, right) tuple)"),
    (dict(across=False, weighted=True, tie="first seen"),
     "your merges break ties by the order in which pairs were met: among equally frequent "
     "pairs, take the one that comes first in sorting order (the smallest (left, right) tuple)"),
]


def _as_pairs(answer: object) -> list[tuple[str, str]]:
    """The student's merges as a list of (left, right) tuples, or NotYet if they are not that."""
    if not isinstance(answer, (list, tuple)):
        raise NotYet(f"return a list of (left, right) pairs of strings, not a {type(answer).__name__}")
    pairs = []
    for item in answer:
        ok = isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(s, str) for s in item)
        expect(ok, f"each merge must be a pair (left, right) of two strings, got {item!r}")
        pairs.append((item[0], item[1]))
    return pairs


@checker("ch3-bpe-by-hand")
def check_bpe_merges(bpe_merges: Callable[[str, int], list[tuple[str, str]]]) -> None:
    """Compare ``bpe_merges(corpus, n)`` with ``BPETokenizer.learn`` on corpora the chapter does not show."""
    rng = np.random.default_rng(3)
    cases = _BPE_CASES + [(_random_bpe_corpus(rng), int(rng.integers(5, 12))) for _ in range(4)]
    for corpus, num_merges in cases:
        answer = _as_pairs(bpe_merges(corpus, num_merges))
        expected = _bpe_reference(corpus, num_merges)
        if answer == expected:
            continue
        where = f"on the corpus {corpus!r} with num_merges={num_merges}"
        if len(answer) != len(expected):
            raise NotYet(
                f"{where} you returned {len(answer)} merges: return num_merges of them, fewer only "
                "when every chunk has become a single token"
            )
        for rules, hint in _BPE_MISTAKES:
            if answer == _bpe_variant(corpus, num_merges, **rules):
                raise NotYet(f"{where}, {hint}")
        step = next(i for i, (a, e) in enumerate(zip(answer, expected, strict=True)) if a != e)
        raise NotYet(
            f"{where}, merge number {step + 1} is not BPE's: count adjacent pairs inside each chunk, "
            "weighted by the chunk's count, merge the most frequent pair everywhere (left to right), "
            "and break ties by sorting order"
        )


# ---------------------------------------------------------------- ch3-sinusoidal

# (T, D, dtype): sizes the chapter never builds. Even widths first (the layout and the
# frequencies), then odd widths (the last column is a sine without its cosine), then long tables
# (positions in the thousands, where angles rounded to float32 lose digits).
SINUSOIDAL_CASES: list[tuple[int, int, torch.dtype]] = [
    (9, 6, torch.float64), (50, 10, torch.float64), (4, 2, torch.float64), (33, 18, torch.float32),
    (40, 7, torch.float64), (12, 1, torch.float64), (25, 13, torch.float32),
    (3000, 16, torch.float64), (2500, 20, torch.float32),
]
# Largest difference from the package's table accepted for each dtype: rounding of the result only.
_SINUSOIDAL_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-6}


def _sinusoid(T: int, D: int, *, base: float = 10000.0, scale: float = 2.0, layout: str = "interleaved",
              start: int = 0, exponent_width: int | None = None) -> torch.Tensor:
    """A float64 (T, D) sinusoidal table with one rule changed, to recognise a common mistake.

    Column pair i turns at base^(-scale i / width), width = ``exponent_width`` or D; ``layout``
    is "interleaved" (sin on even columns, the package's), "swapped" (cos on even columns),
    "halves" (all sines, then all cosines) or "column exponent" (each column's own index in the
    exponent, so a cosine turns slower than its sine); rows start at position ``start``.
    """
    width = exponent_width or D
    position = torch.arange(start, start + T, dtype=torch.float64)[:, None]  # (T, 1)
    pairs = torch.arange((D + 1) // 2, dtype=torch.float64)  # (ceil(D/2),): i
    angles = position * base ** (-scale * pairs / width)  # (T, ceil(D/2))
    table = torch.zeros(T, D, dtype=torch.float64)
    if layout == "halves":
        return torch.cat([torch.sin(angles), torch.cos(angles[:, : D // 2])], dim=1)
    if layout == "column exponent":
        columns = torch.arange(D, dtype=torch.float64)
        angles = position * base ** (-columns / width)  # (T, D): column j turns at base^(-j/D)
        table[:, 0::2], table[:, 1::2] = torch.sin(angles[:, 0::2]), torch.cos(angles[:, 1::2])
        return table
    even, odd = (torch.sin, torch.cos) if layout == "interleaved" else (torch.cos, torch.sin)
    table[:, 0::2] = even(angles)
    table[:, 1::2] = odd(angles[:, : D // 2])
    return table


def _estimated_base(table: torch.Tensor, D: int) -> float | None:
    """The base b that column 2 of a sin-first table implies, sin(b^(-2/D)) = PE[1, 2]; None if unreadable."""
    if D < 3 or table.shape[0] < 2:
        return None
    value = float(table[1, 2])
    if not 0 < value < 1:
        return None
    return math.asin(value) ** (-D / 2)


_SINUSOIDAL_MISTAKES = [
    (dict(layout="swapped"),
     "sine and cosine are the other way round: the even columns 0, 2, 4, ... hold the sines, the "
     "odd columns the cosines (row 0 starts 0, 1, 0, 1, ...)"),
    (dict(layout="halves"),
     "your table puts all the sines first and then all the cosines: interleave them, column 2i "
     "the sine and column 2i+1 the cosine of the same frequency"),
    (dict(layout="column exponent"),
     "in your table a cosine column turns at another frequency than the sine before it: columns "
     "2i and 2i+1 share one frequency, the one with 2i in the exponent"),
    (dict(scale=1.0),
     "your frequencies fall too slowly (as if the exponent were i/D, or the base 100): in "
     "10000^(2i/D), 2i is the index of the pair's even column, twice the pair's number i"),
    (dict(scale=4.0),
     "your frequencies fall too fast: the exponent doubles 2i (2i is already the even column "
     "index 0, 2, 4, ...; do not multiply it by 2 again)"),
    (dict(start=1),
     "your rows start at position 1: row 0 is position 0, where every sine is 0 and every cosine 1"),
]


def _sinusoidal_table_answer(sinusoidal_table: Callable[..., torch.Tensor], T: int, D: int,
                             dtype: torch.dtype) -> object:
    """Call the student's function; on an odd width, a failure gets the odd-width hint."""
    if D % 2 == 0:
        return sinusoidal_table(T, D, dtype)
    try:
        return sinusoidal_table(T, D, dtype)
    except NotImplementedError:
        raise
    except Exception as error:
        raise NotYet(
            f"for the odd width D={D} your code raised {type(error).__name__}: an odd D has one more "
            "sine column than cosine columns (the last column is a sine whose cosine partner would "
            "be column D, which does not exist)"
        ) from None


def _diagnose_sinusoidal(answer: torch.Tensor, T: int, D: int, dtype: torch.dtype, where: str) -> None:
    """Raise NotYet with the most specific hint for a table that differs from the package's."""
    got = answer.detach().to(torch.float64)
    expected = positional.sinusoidal_encoding(T, D, dtype=torch.float64)
    if not torch.isfinite(got).all():
        raise NotYet(f"{where} your table holds inf or nan: a power overflowed or divided by zero; "
                     "compute the frequencies 10000^(-2i/D) with a float exponent in float64")
    error = (got - expected).abs().max().item()
    if error < 1e-2:
        raise NotYet(
            f"{where} your table is right to about {max(0, round(-math.log10(error)))} decimals only, "
            f"not to the precision of {str(dtype).replace('torch.', '')}: compute positions, "
            "frequencies and angles in float64 and convert the table to dtype once, at the end"
        )
    for rules, hint in _SINUSOIDAL_MISTAKES:
        if torch.allclose(got, _sinusoid(T, D, **rules), atol=1e-6):
            raise NotYet(f"{where} {hint}")
    if D % 2 and torch.allclose(got, _sinusoid(T, D, exponent_width=D + 1), atol=1e-6):
        raise NotYet(f"{where} (an odd width) your frequencies use D+1: the exponent is 2i/D with "
                     "the width D itself, odd or not")
    base = _estimated_base(got, D)
    if base is not None and base > 1 and torch.allclose(got, _sinusoid(T, D, base=base), atol=1e-6):
        raise NotYet(f"{where} your frequencies have the right form but not the paper's base: "
                     "omega_i = 1 / 10000^(2i/D)")
    raise NotYet(
        f"{where} your table differs from the formula: compare row 1 (position 1) of your table "
        "with sin(omega_i) and cos(omega_i), column by column"
    )


@checker("ch3-sinusoidal")
def check_sinusoidal_table(sinusoidal_table: Callable[..., torch.Tensor]) -> None:
    """Compare ``sinusoidal_table(T, D, dtype)`` with ``positional.sinusoidal_encoding`` on unseen sizes."""
    for T, D, dtype in SINUSOIDAL_CASES:
        where = f"for T={T}, D={D}, dtype={str(dtype).replace('torch.', '')}"
        answer = _sinusoidal_table_answer(sinusoidal_table, T, D, dtype)
        if not isinstance(answer, torch.Tensor):
            raise NotYet(f"return a torch.Tensor, not a {type(answer).__name__}")
        shape = tuple(answer.shape)
        if shape != (T, D):
            if shape == (D, T):
                raise NotYet(f"{where} your table has shape {shape}: one row per position, (T, D)")
            if D % 2 and shape in {(T, D + 1), (T, D - 1)}:
                raise NotYet(f"{where} your table has shape {shape}: for an odd D keep D columns, "
                             "the last one a sine without its cosine partner")
            raise NotYet(f"{where} your table has shape {shape}, expected (T, D) = {(T, D)}")
        if answer.dtype != dtype:
            raise NotYet(f"{where} your table is {str(answer.dtype).replace('torch.', '')}: return "
                         "the dtype that was asked for")
        expected = positional.sinusoidal_encoding(T, D, dtype=dtype)
        if (answer.detach() - expected).abs().max().item() <= _SINUSOIDAL_TOLERANCE[dtype]:
            continue
        _diagnose_sinusoidal(answer, T, D, dtype, where)


# ---------------------------------------------------------------- ch3-find-offset

# (width D, position p, offset k): widths, positions and offsets the chapter does not use,
# both signs, zero, and the two ends of the allowed range.
_OFFSET_CASES = [(16, 37, 5), (32, 2500, -173), (64, 900, 200), (128, 4100, -200), (48, 0, 0), (8, 61, -1)]


@checker("ch3-find-offset")
def check_find_offset(find_offset: Callable[[torch.Tensor, torch.Tensor], int]) -> None:
    """Call ``find_offset(PE(p), PE(p + k))`` for unseen widths, positions and offsets; expect k."""
    rng = np.random.default_rng(7)
    drawn = [(2 * int(rng.integers(4, 48)), int(rng.integers(300, 6000)), int(rng.integers(-200, 201)))
             for _ in range(2)]
    cases = _OFFSET_CASES + drawn
    for d_model, p, k in cases:
        table = positional.sinusoidal_encoding(max(p, p + k) + 1, d_model, dtype=torch.float64)
        found = as_number(find_offset(table[p].clone(), table[p + k].clone()), "find_offset", whole=True)
        if found == k:
            continue
        if found == -k:
            raise NotYet(
                f"for rows of width D={d_model} your offset has the wrong sign: with u = PE(p) and "
                "v = PE(q), return q - p (positive when v comes after u)"
            )
        raise NotYet(
            f"for rows of width D={d_model} your offset is wrong: look for the k whose M_k maps u "
            "onto v, and build M_k for the width of the rows you are given"
        )
