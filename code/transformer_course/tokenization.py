"""WordPiece tokenization, as BERT does it: from raw text to the ids a real encoder was trained on.

Two stages turn a string into vocabulary entries (Devlin et al., 2019, "BERT", section 3, and
Wu et al., 2016, "Google's Neural Machine Translation System", section 4.1, for WordPiece):

1. **Basic tokenization** cuts the text into words: it lower-cases, drops control characters
   and accents, turns every kind of white space into a space, and makes every punctuation mark
   and every CJK ideograph a word of its own.
2. **WordPiece** cuts each word into the longest vocabulary entries it can, left to right;
   pieces that continue a word carry a ``##`` prefix (``"unaffable" -> un ##aff ##able``). A word
   that cannot be cut, or is longer than 100 characters, becomes ``[UNK]``.

:class:`WordPieceTokenizer` reproduces exactly the ids of the reference BERT tokenizer of the
Hugging Face ``transformers`` library for an uncased vocabulary (the tests compare the two on
thousands of strings), without importing it.

Legend: B batch, T length (in tokens, [CLS] and [SEP] included).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence

import torch

__all__ = ["WordPieceTokenizer", "basic_tokenize", "is_cjk", "is_punctuation", "SPECIAL_TOKENS"]

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

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph, which BERT makes a word of its own.

    Examples:
        >>> is_cjk("東"), is_cjk("a"), is_cjk("ひ")
        (True, False, False)
    """
    cp = ord(char)
    return any(low <= cp <= high for low, high in _CJK_RANGES)


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


def _clean(text: str) -> str:
    """Drop invisible characters and turn every white-space character into a plain space."""
    return "".join(" " if _is_whitespace(c) else c for c in text if not _is_dropped(c))


def _lower_and_strip_accents(word: str) -> str:
    """Lower-case, then decompose (NFD) and drop the combining marks (category Mn): "É" -> "e"."""
    # Lower-case one character at a time, as the reference does: a whole-word lower() would
    # turn a final "Σ" into "ς", which the reference never produces.
    lowered = "".join(c.lower() for c in word)
    return "".join(c for c in unicodedata.normalize("NFD", lowered) if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    """Cut a word before and after every punctuation mark: "don't!" -> ["don", "'", "t", "!"]."""
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
    if do_lower_case:
        text = "".join(c.lower() for c in text)
    text = _clean(text)
    text = "".join(f" {c} " if is_cjk(c) else c for c in text)
    # NFC first, so that "e" + a combining accent and the precomposed "é" give the same word.
    text = unicodedata.normalize("NFC", text)
    words: list[str] = []
    for word in text.split():
        if do_lower_case:
            word = _lower_and_strip_accents(word)
        words.extend(_split_punctuation(word))
    return words


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenization, then greedy longest-match WordPiece.

    Args:
        vocab: the vocabulary, one token per id (id = position in the sequence); it must hold
            the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
        do_lower_case: lower-case and strip accents (an "uncased" vocabulary). Default: True.
        max_chars_per_word: longer words become ``[UNK]`` without being cut. Default: 100.
        model_max_length: the longest sequence (in tokens) the model accepts; ``__call__`` and
            ``encode`` truncate to it only when asked. Default: 512.

    Special tokens written in the text (``"[SEP]"``, exactly so) are kept as themselves, as the
    reference tokenizer does.

    Shape:
        ``tokenizer(texts)`` returns ``input_ids`` and ``attention_mask``, LongTensors (B, T)
        padded with ``[PAD]`` to the longest text; attention_mask is 1 (may attend) on real
        tokens and 0 on padding.

    Examples:
        >>> specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        >>> tok = WordPieceTokenizer(specials + ["un", "##aff", "##able", "!"])
        >>> tok.tokenize("Unaffable!")
        ['un', '##aff', '##able', '!']
        >>> tok.encode("Unaffable!")
        [2, 5, 6, 7, 8, 3]
        >>> tok.decode([2, 5, 6, 7, 8, 3], skip_special_tokens=True)
        'unaffable !'
        >>> batch = tok(["un", "unaffable"])
        >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
        ([[2, 5, 3, 0, 0], [2, 5, 6, 7, 3]], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    """

    def __init__(
        self,
        vocab: Sequence[str],
        do_lower_case: bool = True,
        max_chars_per_word: int = 100,
        model_max_length: int = 512,
    ) -> None:
        if isinstance(vocab, str) or not isinstance(vocab, Sequence):
            raise TypeError(f"vocab: expected a sequence of token strings, got {type(vocab).__name__}")
        self.id_to_token = list(vocab)
        self.token_to_id = {token: i for i, token in enumerate(self.id_to_token)}
        if len(self.token_to_id) != len(self.id_to_token):
            raise ValueError("vocab: tokens must be unique (each token has one id)")
        missing = [t for t in SPECIAL_TOKENS if t not in self.token_to_id]
        if missing:
            raise ValueError(f"vocab: lacks the special tokens {missing}")
        self.do_lower_case = do_lower_case
        self.max_chars_per_word = max_chars_per_word
        self.model_max_length = model_max_length
        self.pad_id = self.token_to_id["[PAD]"]
        self.unk_id = self.token_to_id["[UNK]"]
        self.cls_id = self.token_to_id["[CLS]"]
        self.sep_id = self.token_to_id["[SEP]"]
        self.mask_id = self.token_to_id["[MASK]"]
        self.special_ids = frozenset(self.token_to_id[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_file(cls, vocab_path: str | os.PathLike, do_lower_case: bool = True) -> WordPieceTokenizer:
        """Read a ``vocab.txt`` (UTF-8, one token per line, the line number is the id)."""
        with open(vocab_path, encoding="utf-8", newline="") as f:
            text = f.read()
        # Split on "\n" only: str.splitlines() would also cut at U+2028, U+0085 and friends.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls([line.rstrip("\r") for line in lines], do_lower_case=do_lower_case)

    @property
    def vocab_size(self) -> int:
        """Number of tokens V in the vocabulary."""
        return len(self.id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"WordPieceTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case})"

    # ----- text -> tokens -------------------------------------------------------------------

    def _split_specials(self, text: str) -> list[str]:
        """Cut the text around special tokens written in it: "a[SEP]b" -> ["a", "[SEP]", "b"]."""
        parts: list[str] = []
        start = i = 0
        while i < len(text):
            # None of the special tokens is a prefix of another: at most one matches here.
            special = next((t for t in SPECIAL_TOKENS if text.startswith(t, i)), None)
            if special is None:
                i += 1
                continue
            parts.extend([text[start:i], special])
            i = start = i + len(special)
        parts.append(text[start:])
        return [p for p in parts if p]

    def wordpiece(self, word: str) -> list[str]:
        """Cut one word into the longest vocabulary pieces, left to right; ``[UNK]`` if impossible.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing"])
            >>> tok.wordpiece("playing"), tok.wordpiece("plays")
            (['play', '##ing'], ['[UNK]'])
        """
        if len(word) > self.max_chars_per_word:
            return ["[UNK]"]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            # The longest entry that matches at `start`: try the whole rest, then shorter.
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.token_to_id:
                    pieces.append(piece)
                    start = end
                    break
            else:
                return ["[UNK]"]  # no entry matches here: the whole word is unknown
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no [CLS]/[SEP]).

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi", "!"])
            >>> tok.tokenize("Hi!! [MASK] hé")
            ['hi', '!', '!', '[MASK]', '[UNK]']
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        tokens: list[str] = []
        for part in self._split_specials(text):
            if part in SPECIAL_TOKENS:
                tokens.append(part)
                continue
            for word in basic_tokenize(part, self.do_lower_case):
                tokens.extend(self.wordpiece(word))
        return tokens

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Tokens -> ids; a token outside the vocabulary gets the id of ``[UNK]``."""
        return [self.token_to_id.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens; raises ValueError for an id outside [0, V)."""
        ids = self._check_ids(ids)
        return [self.id_to_token[i] for i in ids]

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Text -> ids with ``[CLS]`` first and ``[SEP]`` last, as the model was trained.

        Args:
            text: the raw text.
            max_length: if given, drop the last word pieces so that the result, [CLS] and
                [SEP] included, has at most ``max_length`` ids. Default: None (no truncation).

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
            >>> tok.encode("a b a"), tok.encode("a b a", max_length=4)
            ([2, 5, 6, 5, 3], [2, 5, 6, 3])
        """
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
                raise ValueError(
                    f"max_length: expected an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}"
                )
            ids = ids[: max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    # ----- ids -> text ----------------------------------------------------------------------

    def _check_ids(self, ids: Iterable[int] | torch.Tensor) -> list[int]:
        """Return ``ids`` as a list of ints in [0, V), or raise a clear error."""
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
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"ids: {i} is outside the vocabulary [0, {self.vocab_size})")
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: word pieces glued back (``"un ##aff ##able" -> "unaffable"``).

        The text is the normalized one (lower-cased, accents stripped, a space around each
        punctuation mark): tokenization forgets case, accents and spacing.

        Args:
            ids: the ids, a sequence of ints or a 1-D tensor.
            skip_special_tokens: leave out [CLS], [SEP], [PAD], [UNK] and [MASK]. Default: False.
        """
        words: list[str] = []
        for i in self._check_ids(ids):
            if skip_special_tokens and i in self.special_ids:
                continue
            token = self.id_to_token[i]
            if token.startswith("##") and words:
                words[-1] += token[2:]  # a continuation: no space before it
            else:
                words.append(token)
        return " ".join(words)

    # ----- batches --------------------------------------------------------------------------

    def __call__(self, texts: str | Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Encode a batch of texts, padded with [PAD] to the longest, with its attention mask.

        Args:
            texts: a list of strings (or one string, a batch of one).
            max_length: truncate each text to this many ids, [CLS] and [SEP] included.
                Default: None (no truncation; the model rejects more than 512).

        Shape:
            Returns ``input_ids`` (B, T) and ``attention_mask`` (B, T), both torch.long;
            attention_mask is 1 on real tokens (may attend) and 0 on padding.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence):
            raise TypeError(f"texts: expected a list of str, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("texts: expected at least one string, got an empty list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts: expected a list of str, element {i} is {type(text).__name__}")
        encoded = [self.encode(text, max_length=max_length) for text in texts]
        T = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), T), self.pad_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(encoded), T), dtype=torch.long)  # (B, T)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}
