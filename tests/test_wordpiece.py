"""tokenization.wordpiece: our WordPiece tokenizer gives exactly the tokens and ids of the reference.

The reference is ``transformers``' BERT tokenizer loaded from the same model folder: the
pure-Python ``BertTokenizer`` on every string (it reads the same ``unicodedata`` tables as we
do), and the Rust ``BertTokenizerFast`` too on the hand-written cases (its Unicode tables are
of another version, so code points assigned only recently may be classified differently).
``transformers`` is a test-only dependency: the package never imports it.
"""

from __future__ import annotations

import os
import random
import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_course import pretrained
from transformer_course.tokenization import WordPieceTokenizer, basic_tokenize

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference reads the local folder only

MODEL_DIR = pretrained.find_model_dir()

# At least 40 strings that exercise each rule of basic tokenization and WordPiece.
HARD_CASES = [
    "",
    " ",
    "   \t\n\r  ",
    "\u3000\xa0\u2009",  # ideographic, no-break and thin spaces
    "Hello, world!",
    "The animal didn't cross the street because it was too wide.",
    "The animal didn’t cross the street because it was too tired.",  # curly apostrophe
    "UNAFFABLE unaffable Unaffable",
    "Héllo Wörld, naïve café, crème brûlée, Ångström, façade",
    "e\u0301 vs \xe9",  # combining accent vs precomposed
    "İstanbul ΟΔΟΣ ὈΔΥΣΣΕΎΣ ß ẞ",  # dotted capital I, Greek final sigma, sharp s
    "Привет, мир! Москва",
    "日本語のテキストと東京タワー",
    "中文分词测试：你好，世界。",
    "한국어 문장입니다",
    "Mixed東京text",
    "!!!???...,,,;;;::",
    "$100 ^_^ `code` ~tilde~ |pipe| @user #hashtag &amp; *star* +plus= <tag>",
    "(((nested [brackets] {braces})))",
    "3.14159 1,000,000 2024-01-01 12:30 1e-12 0x1F",
    "version 1.2.3-beta+build.5",
    "e-mail: someone@example.com https://example.org/a?b=c&d=e",
    "😀 😃 👍🏽 🇺🇳 👨‍👩‍👧 ❤️",
    "emoji😀inside",
    "a\x00b\x01c\x7fd\ufffde",  # NUL, controls, DEL, replacement character
    "zero\u200bwidth\u200cjoiner\u200dand\ufeffbom",
    "line\u2028separator\u2029paragraph\x85nel",
    "tab\tnew\nline\rreturn",
    "a" * 99,
    "a" * 100,
    "a" * 101,  # one character over the limit: [UNK]
    "supercalifragilisticexpialidocious " * 3,
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 300,
    "[CLS] [SEP] [PAD] [MASK] [UNK]",
    "a[SEP]b[MASK]c",
    "[cls] [Sep] [ MASK ]",  # not special: only the exact spelling is
    "##ing ## #",
    "don't won't it's y'all rock'n'roll",
    "« guillemets » „quotes“ ‹single› — dash – en-dash … ellipsis",
    "¿Qué? ¡Olé!",
    "ﬁne ﬂow ﬀ",  # ligatures (compatibility characters, not decomposed by NFC/NFD)
    "Ⅻ ① ½ ² ℃ ™",
    "𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯",  # mathematical letters (outside the BMP)
    "\U00020000\U0002a6d6 \uf900\ufa6d",  # CJK extension B and compatibility ideographs
    "ǅungla Ǆ ǆ",  # titlecase digraphs
    "k\u0336\u0336 \u20dd",  # combining overlay and enclosing marks
    "عربي עברית हिन्दी ไทย",
    "mañana el niño comió piñata",
    "I.B.M. U.S.A. e.g. i.e.",
    "unbelievably misunderstanding reconsideration",
    "  leading and trailing spaces  ",
]


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_file(MODEL_DIR / "vocab.txt")


@pytest.fixture(scope="module")
def reference():
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(str(MODEL_DIR))


@pytest.fixture(scope="module")
def reference_fast():
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(MODEL_DIR))


def _assert_same(ours: WordPieceTokenizer, reference, text: str) -> None:
    """Tokens and ids, with [CLS]/[SEP] (the default of both) and without, equal the reference's."""
    assert ours.tokenize(text) == reference.tokenize(text), repr(text)
    assert ours.encode(text) == reference.encode(text), repr(text)
    without = reference.encode(text, add_special_tokens=False)
    assert ours.encode(text, add_special_tokens=False) == without, repr(text)


@pytest.mark.parametrize("text", HARD_CASES, ids=range(len(HARD_CASES)))
def test_hard_cases_match_both_references(ours, reference, reference_fast, text):
    _assert_same(ours, reference, text)
    _assert_same(ours, reference_fast, text)


def test_vocabulary_and_special_ids_match_the_reference(ours, reference):
    assert ours.vocab_size == len(reference.vocab) == 30522
    assert ours.token_to_id == dict(reference.vocab)
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == (
        reference.pad_token_id,
        reference.unk_token_id,
        reference.cls_token_id,
        reference.sep_token_id,
        reference.mask_token_id,
    )


# ----- generated text: at least 2,000 strings ----------------------------------------------

_TRICKY_CHARS = list(
    " \t\n\r\x00\x01\x1f\x7f\x85\xa0\u1680\u2000\u200b\u200d\u2028\u2029\u202f\u3000\ufeff\ufffd"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…‘’“”„•·"
    "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßøæœłŁİıΣσςΑΩЖжЁё"
    "\u0300\u0301\u0308\u0327\u0336\u20dd\u0903"  # combining marks: Mn, Me, Mc
    "東京中文字漢日本語你好世界\u3400\uf900"
    "ひらがなカタカナ한국어"
    "😀👍🏽❤️🇺🇳👨‍👩‍👧"
    "0123456789½²①Ⅻ"
    "ﬁﬂﬀ𝐀𝔉\U00020000"
)
_VOCAB_WORDS = [
    line.removeprefix("##")
    for line in (MODEL_DIR / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if line and not line.startswith("[")
]

_pieces = st.one_of(
    st.sampled_from(_VOCAB_WORDS),  # real words and word pieces, to exercise WordPiece
    st.text(alphabet=st.sampled_from(_TRICKY_CHARS), min_size=1, max_size=4),
    st.characters(),  # any code point (but lone surrogates)
    st.sampled_from(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[sep]", "##", " ", "  "]),
)
wide_text = st.lists(_pieces, max_size=16).map("".join)
any_text = st.text(max_size=40)


@settings(max_examples=700)
@given(wide_text)
def test_generated_text_matches_reference(ours, reference, text):
    _assert_same(ours, reference, text)


@settings(max_examples=500)
@given(any_text)
def test_arbitrary_unicode_matches_reference(ours, reference, text):
    _assert_same(ours, reference, text)


def _seeded_corpus(n: int, seed: int = 0) -> list[str]:
    """n distinct strings mixing vocabulary words, random code points, spaces and special tokens."""
    rng = random.Random(seed)
    texts: dict[str, None] = {}  # an ordered set
    while len(texts) < n:
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.35:
                word = rng.choice(_VOCAB_WORDS)
                parts.append(word.title() if rng.random() < 0.2 else word)
            elif r < 0.6:
                parts.append(chr(rng.randint(0, 0x2FFFF)))
            elif r < 0.85:
                parts.append(rng.choice(_TRICKY_CHARS))
            else:
                long_word = "a" * rng.randint(95, 105)
                parts.append(rng.choice([" ", "[SEP]", "[MASK]", "ΟΔΟΣ", "e\u0301", long_word]))
        texts["".join(parts)] = None
    return list(texts)


def test_seeded_corpus_of_1500_strings_matches_reference(ours, reference):
    texts = _seeded_corpus(1500)
    assert len(set(texts)) == 1500
    mismatches = [t for t in texts if ours.tokenize(t) != reference.tokenize(t)]
    assert mismatches == []
    batch = ours(texts[:200])
    expected = reference(texts[:200], padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], expected["input_ids"])
    assert torch.equal(batch["attention_mask"], expected["attention_mask"])


def test_cased_mode_matches_the_reference_too():
    # The algorithm without lower-casing and accent stripping, as for a cased vocabulary.
    from transformers import BertTokenizer

    reference = BertTokenizer.from_pretrained(str(MODEL_DIR), do_lower_case=False)
    ours = WordPieceTokenizer.from_file(MODEL_DIR / "vocab.txt", do_lower_case=False)
    texts = HARD_CASES + _seeded_corpus(300, seed=2)
    assert [t for t in texts if ours.tokenize(t) != reference.tokenize(t)] == []
    assert ours.tokenize("Héllo") != WordPieceTokenizer.from_file(MODEL_DIR / "vocab.txt").tokenize("Héllo")


# ----- decode, batches, truncation -------------------------------------------------------

@pytest.mark.parametrize("skip", [False, True])
def test_decode_matches_reference(ours, reference, skip):
    # Compared without the reference's English clean-up (" ," -> ","), which decode does not do.
    # (The fast tokenizer's decoder always cleans up, so it is not compared here.)
    for text in HARD_CASES + _seeded_corpus(100, seed=1):
        ids = ours.encode(text)
        expected = reference.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
        assert ours.decode(ids, skip_special_tokens=skip) == expected, repr(text)
        assert ours.decode(torch.tensor(ids), skip_special_tokens=skip) == expected


@given(wide_text)
def test_decoded_text_tokenizes_to_the_same_tokens(ours, text):
    ids = ours.encode(text)
    assert ours.tokenize(ours.decode(ids[1:-1])) == ours.tokenize(text)


def test_batch_is_padded_to_the_longest_with_mask(ours, reference):
    texts = ["Hi!", "", "The animal didn't cross the street because it was too wide."]
    batch = ours(texts)
    expected = reference(texts, padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert torch.equal(batch["input_ids"], expected["input_ids"])
    assert torch.equal(batch["attention_mask"], expected["attention_mask"])
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert lengths == [len(ours.encode(t)) for t in texts] and max(lengths) == batch["input_ids"].shape[1]
    assert (batch["input_ids"][batch["attention_mask"] == 0] == ours.pad_id).all()


def test_truncation_matches_reference(ours, reference):
    texts = ["one two three four five six seven eight nine ten", "short"]
    for max_length in (3, 8, 512):
        batch = ours(texts, max_length=max_length)
        expected = reference(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        assert torch.equal(batch["input_ids"], expected["input_ids"]), max_length
        assert batch["input_ids"].shape[1] <= max_length
    # At max_length=2 only [CLS] and [SEP] fit (the reference logs an error and does not truncate).
    assert ours(texts, max_length=2)["input_ids"].tolist() == [[ours.cls_id, ours.sep_id]] * 2
    assert ours.encode(texts[0], max_length=4) == [ours.cls_id, *ours.encode(texts[0])[1:3], ours.sep_id]
    for max_length in (1, 4):  # without [CLS] and [SEP], max_length counts the word pieces only
        batch = ours(texts, add_special_tokens=False, max_length=max_length)
        expected = reference(texts, add_special_tokens=False, padding=True, truncation=True,
                             max_length=max_length, return_tensors="pt")
        assert torch.equal(batch["input_ids"], expected["input_ids"]), max_length
        assert torch.equal(batch["attention_mask"], expected["attention_mask"]), max_length


def test_a_single_string_is_a_batch_of_one(ours):
    assert ours("Hello")["input_ids"].tolist() == [ours.encode("Hello")]


# ----- the algorithm on a toy vocabulary ---------------------------------------------------

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOY = [*SPECIALS, "un", "una", "##aff", "##ffa", "##able", "##ble", "a", "##a"]


def test_wordpiece_takes_the_longest_match_first():
    tok = WordPieceTokenizer(TOY)
    # "una" is longer than "un", so it wins, then "##ffa", then "##ble"
    assert tok.wordpiece("unaffable") == ["una", "##ffa", "##ble"]
    assert tok.wordpiece("unx") == ["[UNK]"]  # one impossible spot makes the whole word unknown
    assert tok.wordpiece("aaa") == ["a", "##a", "##a"]


def test_words_longer_than_the_limit_are_unknown():
    tok = WordPieceTokenizer(TOY, max_chars_per_word=5)
    assert tok.wordpiece("aaaaa") == ["a"] + ["##a"] * 4
    assert tok.wordpiece("aaaaaa") == ["[UNK]"]


def test_tokenize_remembers_each_cut_and_forgets_past_the_limit(monkeypatch):
    tok = WordPieceTokenizer(TOY)
    cut = ["una", "##ffa", "##ble"]
    assert tok.tokenize("unaffable aaa unaffable") == [*cut, "a", "##a", "##a", *cut]
    assert tok._pieces == {"unaffable": ("una", "##ffa", "##ble"), "aaa": ("a", "##a", "##a")}
    tok._pieces["aaa"] = ("[MASK]",)  # a remembered cut is used as it is, without cutting again
    assert tok.tokenize("aaa") == ["[MASK]"]
    monkeypatch.setattr("transformer_course.tokenization.wordpiece._REMEMBERED_WORDS", 2)
    words = ["a", "aa", "aaa", "una", "un"]
    fresh = WordPieceTokenizer(TOY)
    assert fresh.tokenize(" ".join(words)) == [p for w in words for p in fresh.wordpiece(w)]
    assert len(fresh._pieces) <= 2  # the memory never holds more than the limit


def test_basic_tokenize_rules():
    assert basic_tokenize("Héllo, WORLD!") == ["hello", ",", "world", "!"]
    assert basic_tokenize("東京x") == ["東", "京", "x"]  # each CJK ideograph is a word
    assert basic_tokenize("ひらがな") == ["ひらかな"]  # kana are letters; the dakuten is an accent
    assert basic_tokenize("a\x00b\u200bc") == ["abc"]  # control and format characters vanish
    assert basic_tokenize("a\u3000b\tc") == ["a", "b", "c"]
    assert basic_tokenize("$5^2") == ["$", "5", "^", "2"]  # every ASCII symbol is punctuation
    assert basic_tokenize("Éé", do_lower_case=False) == ["Éé"]
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"]  # lower-cased letter by letter: no final "ς"
    assert basic_tokenize("İ") == ["i"]  # lower() gives "i" and a combining dot, then stripped
    assert basic_tokenize("don't") == ["don", "'", "t"] and basic_tokenize("abc123") == ["abc123"]
    assert all(unicodedata.category(c) != "Mn" for w in basic_tokenize("crème brûlée") for c in w)


def test_special_tokens_in_text_are_kept_whole_only_when_spelled_exactly(ours):
    assert ours.tokenize("x[SEP]y") == ["x", "[SEP]", "y"]
    assert ours.tokenize("[sep]") == ["[", "sep", "]"]


# ----- bad input ----------------------------------------------------------------------------

def test_bad_input_raises_clear_errors(ours):
    with pytest.raises(TypeError, match="text"):
        ours.tokenize(b"bytes")
    with pytest.raises(TypeError, match="text"):
        ours.encode(None)
    with pytest.raises(TypeError, match="texts.*element 1"):
        ours(["fine", 3])
    with pytest.raises(ValueError, match="texts"):
        ours([])
    with pytest.raises(ValueError, match="max_length"):
        ours.encode("a", max_length=1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.decode([101, 30522])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.decode([-1])
    with pytest.raises(TypeError, match="ids"):
        ours.decode("101 102")
    with pytest.raises(ValueError, match="ids"):
        ours.decode(torch.tensor([[101, 102]]))
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        WordPieceTokenizer([*TOY, "a"])
    with pytest.raises(TypeError, match="vocab"):
        WordPieceTokenizer("[PAD]")


def test_from_file_splits_on_newlines_only(tmp_path):
    path = tmp_path / "vocab.txt"
    # U+2028 would end a line for str.splitlines(); in vocab.txt only "\n" does.
    path.write_text("\n".join([*TOY, "a\u2028b"]) + "\n", encoding="utf-8")
    tok = WordPieceTokenizer.from_file(path)
    assert tok.vocab_size == len(TOY) + 1
    assert tok.id_to_token[-1] == "a\u2028b"

