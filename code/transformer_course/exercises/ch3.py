"""Checkers of chapter 3's exercises: BPE merges learned by the student's own code, and the
offset between two rows of the sinusoidal table recovered from the rows alone."""

from __future__ import annotations

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
