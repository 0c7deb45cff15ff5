"""tokenization.bpe: byte-pair encoding learned from scratch.

Round trip on arbitrary Unicode, deterministic learning (independent of text order and of
Python's hash seed), unknown characters (byte fallback or [UNK]), agreement with a naive
reference implementation of BPE, and bad input. The calling convention BPE shares with
WordPiece is tested in test_tokenization.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transformer_course.tokenization import SPECIAL_TOKENS, BPETokenizer, Merge, bpe_pretokenize

CORPUS = [
    "low low low low low lower lower newest newest newest newest newest newest widest widest widest",
    "The animal didn't cross the street because it was too wide.",
    "The animal didn't cross the street because it was too tired.",
    "Tokenization turns text into tokens; tokens into ids; ids into vectors.",
    "Byte-pair encoding merges the most frequent pair of adjacent tokens, again and again.",
]


@pytest.fixture(scope="module")
def learned() -> BPETokenizer:
    return BPETokenizer.learn(CORPUS, vocab_size=400)


def naive_bpe(texts: list[str], num_merges: int) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Reference BPE: recount every pair at every step (slow, obviously right)."""
    counts = Counter(chunk for text in texts for chunk in bpe_pretokenize(text))
    words = {chunk: list(chunk) for chunk in counts}
    merges = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for chunk, symbols in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += counts[chunk]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, then first in order
        merges.append(best)
        for chunk, symbols in words.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == list(best):
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[chunk] = out
    return merges, words


# ---------------------------------------------------------------- round trip


@given(st.text(max_size=200))
def test_decode_inverts_encode_on_any_unicode(learned, text):
    ids = learned.encode(text)
    assert learned.decode(ids) == text
    assert all(0 <= i < learned.vocab_size for i in ids)
    with_specials = learned.encode(text, add_special_tokens=True)
    assert with_specials == [learned.cls_id, *ids, learned.sep_id]
    assert learned.decode(with_specials, skip_special_tokens=True) == text


@given(st.text(max_size=200))
def test_pretokenization_loses_nothing(text):
    assert "".join(bpe_pretokenize(text)) == text


@given(st.lists(st.text(alphabet="abc d\n", max_size=30), min_size=1, max_size=8), st.data())
def test_learning_round_trips_its_own_corpus(texts, data):
    base = 5 + 256 + len({c for t in texts for c in t})
    tok = BPETokenizer.learn(texts, vocab_size=base + data.draw(st.integers(0, 20)))
    for text in texts:
        assert tok.decode(tok.encode(text)) == text


# ---------------------------------------------------------------- the algorithm


@given(st.lists(st.text(alphabet="ab c", max_size=20), min_size=1, max_size=6), st.integers(0, 15))
def test_merges_and_segmentation_match_a_naive_reference(texts, num_merges):
    alphabet_size = len({c for t in texts for c in t})
    tok = BPETokenizer.learn(texts, vocab_size=5 + 256 + alphabet_size + num_merges)
    expected_merges, expected_words = naive_bpe(texts, num_merges)
    # Two merges can spell the same token; the vocabulary then grows by one token, not two,
    # so the reference may have made extra merges: compare the common prefix.
    ours = [(m.left, m.right) for m in tok.merges]
    assert ours == expected_merges[: len(ours)]
    if len(ours) == len(expected_merges):
        for chunk, symbols in expected_words.items():
            assert tok.tokenize(chunk) == symbols


def test_merge_counts_are_the_pair_frequencies_and_never_grow():
    tok = BPETokenizer.learn(CORPUS[:1], vocab_size=280)
    first = tok.merges[0]
    pairs: Counter[tuple[str, str]] = Counter()  # adjacent pairs, counted by hand
    for chunk in bpe_pretokenize(CORPUS[0]):
        pairs.update(zip(chunk, chunk[1:], strict=False))
    assert first.count == max(pairs.values())
    assert (first.left, first.right) == min(p for p in pairs if pairs[p] == first.count)
    counts = [m.count for m in tok.merges]
    assert counts == sorted(counts, reverse=True)  # greedy: the best pair only gets rarer


def test_encoding_step_by_step_replays_the_merges(learned):
    word = " newest"
    steps = [learned.tokenize(word, num_merges=n) for n in range(len(learned.merges) + 1)]
    assert steps[0] == list(word)
    assert steps[-1] == learned.tokenize(word)
    for before, after in zip(steps, steps[1:], strict=False):
        assert "".join(after) == word and len(after) <= len(before)


# ---------------------------------------------------------------- determinism


def test_learning_is_deterministic_and_independent_of_text_order():
    a = BPETokenizer.learn(CORPUS, vocab_size=420)
    b = BPETokenizer.learn(CORPUS, vocab_size=420)
    c = BPETokenizer.learn(list(reversed(CORPUS)), vocab_size=420)
    assert a.merges == b.merges == c.merges
    assert a.id_to_token == b.id_to_token == c.id_to_token


def test_a_smaller_vocabulary_is_a_prefix_of_the_same_merges():
    big = BPETokenizer.learn(CORPUS, vocab_size=410)
    small = BPETokenizer.learn(CORPUS, vocab_size=380)
    assert small.vocab_size == 380 and big.vocab_size == 410
    assert small.merges == big.merges[: len(small.merges)]
    assert small.id_to_token == big.id_to_token[:380]


def test_learning_stops_when_no_pair_is_left():
    tok = BPETokenizer.learn(["ab ab"], vocab_size=10_000)
    assert [m.token for m in tok.merges] == ["ab", " ab"]
    assert tok.vocab_size == 5 + 256 + 3 + 2


def test_learning_does_not_depend_on_the_hash_seed():
    code = (
        "from transformer_course.tokenization import BPETokenizer\n"
        f"tok = BPETokenizer.learn({CORPUS!r}, vocab_size=420)\n"
        "print([(m.left, m.right, m.count) for m in tok.merges])\n"
    )
    outputs = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_rebuilding_from_alphabet_and_merges_gives_the_same_tokenizer(learned):
    rebuilt = BPETokenizer(learned.alphabet, [(m.left, m.right) for m in learned.merges])
    assert rebuilt.id_to_token == learned.id_to_token
    assert rebuilt.encode(CORPUS[1]) == learned.encode(CORPUS[1])


# ---------------------------------------------------------------- unknown characters


def test_unknown_characters_fall_back_to_utf8_bytes(learned):
    assert "€" not in learned.piece_to_id
    tokens = learned.tokenize("a € b")
    assert ["<0xE2>", "<0x82>", "<0xAC>"] == [t for t in tokens if t.startswith("<0x")]
    assert learned.decode(learned.encode("a € b")) == "a € b"
    assert learned.unk_id not in learned.encode("emoji 🙂 and 東京")


def test_without_byte_fallback_unknown_characters_become_unk():
    tok = BPETokenizer.learn(CORPUS, vocab_size=200, byte_fallback=False)
    assert tok.first_piece_id == len(SPECIAL_TOKENS)  # no byte tokens in the vocabulary
    ids = tok.encode("tiny 🙂 wide")
    assert ids.count(tok.unk_id) == 1
    assert tok.decode(ids) == "tiny [UNK] wide"
    assert tok.decode(ids, skip_special_tokens=True) == "tiny  wide"


def test_text_that_spells_a_special_or_byte_token_is_ordinary_text(learned):
    for text in ("[PAD]", "[CLS] x [SEP]", "<0x41>"):
        ids = learned.encode(text)
        assert learned.pad_id not in ids and learned.cls_id not in ids
        assert all(i >= learned.first_piece_id or learned.id_to_token[i].startswith("<0x") for i in ids)
        assert learned.decode(ids) == text


def test_invalid_byte_sequences_decode_to_the_replacement_character(learned):
    lone_continuation_byte = learned.byte_offset + 0x80
    assert learned.decode([lone_continuation_byte]) == "\ufffd"


# ---------------------------------------------------------------- vocabulary and bad input


def test_vocabulary_layout(learned):
    assert learned.id_to_token[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert learned.id_to_token[learned.byte_offset] == "<0x00>"
    assert learned.id_to_token[learned.first_piece_id - 1] == "<0xFF>"
    assert len(set(learned.id_to_token)) == learned.vocab_size == len(learned)
    assert learned.vocab_size == 400
    assert isinstance(learned.merges[0], Merge) and learned.merges[0].token in learned.piece_to_id


def test_bad_input_raises_clear_errors(learned):
    with pytest.raises(ValueError, match="vocab_size: expected at least"):
        BPETokenizer.learn(CORPUS, vocab_size=100)
    with pytest.raises(TypeError, match="vocab_size"):
        BPETokenizer.learn(CORPUS, vocab_size=300.0)
    with pytest.raises(TypeError, match="texts"):
        BPETokenizer.learn("a single string", vocab_size=300)
    with pytest.raises(TypeError, match="element 1"):
        BPETokenizer.learn(["ok", 3], vocab_size=300)
    with pytest.raises(TypeError, match="text"):
        learned.encode(b"bytes")
    with pytest.raises(ValueError, match="num_merges"):
        learned.encode("x", num_merges=-1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        learned.decode([learned.vocab_size])
    with pytest.raises(TypeError, match="ids"):
        learned.decode([1.0])
    with pytest.raises(ValueError, match="not a known token"):
        BPETokenizer(["a"], [("a", "b")])
    with pytest.raises(ValueError, match="single characters"):
        BPETokenizer(["ab"])
    with pytest.raises(ValueError, match="appears twice"):
        BPETokenizer(["a", "a"])
