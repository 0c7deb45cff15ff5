"""BERT's basic tokenization, and what every tokenizer of the package shares.

Basic tokenization cuts raw text into words before any sub-word step (Devlin et al., 2019,
"BERT", and its reference code): it lower-cases, drops control characters and accents, turns
every kind of white space into a space, and makes every punctuation mark and every CJK ideograph
a word of its own.

The rest of this module is the calling convention both tokenizers follow: the special tokens,
the checks of a batch of texts and of a list of ids, truncation to ``max_length`` around
``[CLS]`` and ``[SEP]``, and :func:`pad_batch`, which makes the padded ``input_ids`` and
``attention_mask`` of ``tokenizer(texts)``.

Legend: B batch, T length (in tokens, [CLS] and [SEP] included).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import torch

from .. import _checks

__all__ = [
    "SPECIAL_TOKENS", "is_cjk", "is_punctuation", "basic_tokenize",
    "truncate_and_wrap", "check_texts", "check_ids", "pad_batch",
]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# The code points BERT treats as "Chinese characters": the CJK Unified Ideographs blocks and
# their extensions, and the CJK Compatibility Ideographs. Hangul, kana and the CJK punctuation
# block are not in it: they are ordinary letters and punctuation.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_CJK_FIRST = min(low for low, _ in _CJK_RANGES)  # below it (all of ASCII, Latin, Greek...): no CJK


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph, which BERT makes a word of its own.

    Examples:
        >>> is_cjk("東"), is_cjk("a"), is_cjk("ひ")
        (True, False, False)
    """
    cp = ord(char)
    return cp >= _CJK_FIRST and any(low <= cp <= high for low, high in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """True for Unicode punctuation (category P*) and for every ASCII symbol such as ``$ ^ ` +``.

    Examples:
        >>> is_punctuation("!"), is_punctuation("$"), is_punctuation("¿"), is_punctuation("a")
        (True, True, True, False)
    """
    cp = ord(char)
    # Every printable ASCII character that is neither a letter, a digit nor a space counts,
    # even those Unicode files as symbols (S*) rather than punctuation.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any Unicode space separator (category Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_dropped(char: str) -> bool:
    """NUL, the replacement character U+FFFD, and control/format/unassigned characters (C*)."""
    if char in "\t\n\r":  # control characters by category, but treated as white space
        return False
    return char in "\x00\ufffd" or unicodedata.category(char).startswith("C")


def _clean(char: str) -> str:
    """One character cleaned: "" for an invisible one, a plain space for any white space."""
    if _is_dropped(char):
        return ""
    return " " if _is_whitespace(char) else char


class _CharacterSteps(dict):
    """The first steps of :func:`basic_tokenize`, which treat each character on its own (lower-case
    if asked, clean, space out a CJK ideograph), as a table for ``str.translate``: code point ->
    its replacement, worked out the first time the character is met and looked up after that.

    Lower-casing one character at a time, as the reference does: a whole-text lower() would turn
    a final "Σ" into "ς", which the reference never produces.
    """

    def __init__(self, lower: bool) -> None:
        super().__init__()
        self.lower = lower

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        cleaned = "".join(_clean(c) for c in (char.lower() if self.lower else char))
        self[code_point] = "".join(f" {c} " if is_cjk(c) else c for c in cleaned)
        return self[code_point]


_CHARACTER_STEPS = {True: _CharacterSteps(lower=True), False: _CharacterSteps(lower=False)}


def _lower_and_strip_accents(word: str) -> str:
    """Lower-case, then decompose (NFD) and drop the combining marks (category Mn): "É" -> "e"."""
    if word.isascii():  # no accents to strip, and lower() acts on each letter alone
        return word.lower()
    # Lower-case one character at a time, as the reference does: a whole-word lower() would
    # turn a final "Σ" into "ς", which the reference never produces.
    lowered = "".join(c.lower() for c in word)
    return "".join(c for c in unicodedata.normalize("NFD", lowered) if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    """Cut a word before and after every punctuation mark: "don't!" -> ["don", "'", "t", "!"]."""
    if word.isalnum():  # letters and digits only: no punctuation mark to cut at
        return [word]
    pieces: list[str] = []
    current = ""
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append(current)
            pieces.append(char)
            current = ""
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def basic_tokenize(text: str, do_lower_case: bool = True) -> list[str]:
    """Cut raw text into words, before WordPiece: BERT's "basic tokenization".

    The steps, in order: lower-case (if asked); drop control characters and map white space to
    spaces; put spaces around CJK ideographs; compose characters (NFC); split on white space;
    strip accents (if lower-casing); split off every punctuation mark.

    Args:
        text: the raw text.
        do_lower_case: lower-case and strip accents, for an uncased vocabulary. Default: True.

    Returns:
        The words, in order.

    Examples:
        >>> basic_tokenize("Héllo, WORLD!  東京")
        ['hello', ',', 'world', '!', '東', '京']
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    # Lower-case, clean, space out CJK ideographs: character by character, through a table.
    text = text.translate(_CHARACTER_STEPS[bool(do_lower_case)])
    # NFC first, so that "e" + a combining accent and the precomposed "é" give the same word.
    text = unicodedata.normalize("NFC", text)
    words: list[str] = []
    for word in text.split():
        if do_lower_case:
            word = _lower_and_strip_accents(word)
        words.extend(_split_punctuation(word))
    return words


# ----- the calling convention both tokenizers share -----------------------------------------


def truncate_and_wrap(
    ids: list[int], cls_id: int, sep_id: int, add_special_tokens: bool, max_length: int | None
) -> list[int]:
    """Keep the first ids so that at most ``max_length`` remain with [CLS]/[SEP]; add them if asked.

    The last step of both tokenizers' ``encode``: ``max_length`` counts [CLS] and [SEP] when they
    are added, so it must leave room for them (at least 2), and at least 1 without them.

    Examples:
        >>> truncate_and_wrap([7, 8, 9], cls_id=2, sep_id=3, add_special_tokens=True, max_length=4)
        [2, 7, 8, 3]
        >>> truncate_and_wrap([7, 8, 9], cls_id=2, sep_id=3, add_special_tokens=False, max_length=None)
        [7, 8, 9]
    """
    _checks.boolean(add_special_tokens, "add_special_tokens")
    if max_length is not None:
        minimum = 2 if add_special_tokens else 1
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < minimum:
            room = " (room for [CLS] and [SEP])" if add_special_tokens else ""
            raise ValueError(f"max_length: expected None or an int >= {minimum}{room}, got {max_length!r}")
        ids = ids[: max_length - 2] if add_special_tokens else ids[:max_length]
    return [cls_id, *ids, sep_id] if add_special_tokens else ids


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """A batch of texts as a non-empty list of str (one string is a batch of one), or a clear error.

    What ``tokenizer(texts)`` of both tokenizers, and every function that takes a batch of texts,
    checks first.

    Examples:
        >>> check_texts("one text"), check_texts(("a", "b"))
        (['one text'], ['a', 'b'])
    """
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts: expected a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts: expected at least one string, got an empty list")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts: expected a list of str, element {i} is {type(text).__name__}")
    return list(texts)


def check_ids(ids: Iterable[int] | torch.Tensor, vocab_size: int) -> list[int]:
    """Return ``ids`` as a list of ints in [0, vocab_size), or raise a clear error.

    What ``decode`` and ``convert_ids_to_tokens`` of both tokenizers check first.

    Shape:
        ids: (T,), a 1-D integer tensor or any iterable of ints.

    Examples:
        >>> check_ids(torch.tensor([2, 7, 3]), vocab_size=10)
        [2, 7, 3]
    """
    if isinstance(ids, torch.Tensor):
        if ids.ndim != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"ids: expected a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids: expected a sequence of ints, got {type(ids).__name__}")
    ids = list(ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"ids: expected ints, got an element of type {type(i).__name__}")
        if not 0 <= i < vocab_size:
            raise ValueError(f"ids: {i} is outside the vocabulary [0, {vocab_size})")
    return ids


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad id sequences of different lengths to the longest, and say which positions are real.

    Args:
        sequences: B lists of ids.
        pad_id: the id written into the padding.

    Shape:
        Returns ``input_ids`` (B, T) and ``attention_mask`` (B, T), torch.long, T the longest
        length; attention_mask is 1 on real tokens (may attend) and 0 on padding.

    Examples:
        >>> batch = pad_batch([[2, 7, 3], [2, 3]], pad_id=0)
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[2, 7, 3], [2, 3, 0]], [[1, 1, 1], [1, 1, 0]])
    """
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence) or len(sequences) == 0:
        raise ValueError("sequences: expected a non-empty list of id lists")
    T = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(sequences), T), dtype=torch.long)  # (B, T)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
