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

:class:`BPETokenizer` is the other family of sub-word tokenizers, trained here from scratch:
byte-pair encoding learns its vocabulary by merging the most frequent pair of adjacent tokens,
again and again, and encodes new text by replaying those merges (Sennrich et al., 2016).

Legend: B batch, T length (in tokens, [CLS] and [SEP] included).
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

import torch

__all__ = [
    "WordPieceTokenizer", "basic_tokenize", "is_cjk", "is_punctuation", "SPECIAL_TOKENS",
    "BPETokenizer", "Merge", "bpe_pretokenize", "pad_batch",
]

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
        ids = _check_ids(ids, self.vocab_size)
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

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: word pieces glued back (``"un ##aff ##able" -> "unaffable"``).

        The text is the normalized one (lower-cased, accents stripped, a space around each
        punctuation mark): tokenization forgets case, accents and spacing.

        Args:
            ids: the ids, a sequence of ints or a 1-D tensor.
            skip_special_tokens: leave out [CLS], [SEP], [PAD], [UNK] and [MASK]. Default: False.
        """
        words: list[str] = []
        for i in _check_ids(ids, self.vocab_size):
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
        texts = _check_texts(texts)
        return pad_batch([self.encode(text, max_length=max_length) for text in texts], self.pad_id)


# ---------------------------------------------------------------------------------------------
# Byte-pair encoding (BPE), trained from scratch
# ---------------------------------------------------------------------------------------------

# Pre-tokenization: BPE merges never cross these chunks. A chunk is a run of letters/digits or a
# run of other symbols, each with at most one leading space, or a run of white space. Every
# character of any string falls in exactly one chunk, so joining the chunks gives the text back.
_BPE_CHUNK = re.compile(r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+")

_BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))


def bpe_pretokenize(text: str) -> list[str]:
    """Cut text into the chunks BPE works inside: words and symbol runs (with their leading space), spaces.

    Nothing is lost: ``"".join(bpe_pretokenize(text)) == text`` for every string.

    Examples:
        >>> bpe_pretokenize("Hello,  world!\\n")
        ['Hello', ',', ' ', ' world', '!', '\\n']
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _BPE_CHUNK.findall(text)


@dataclasses.dataclass(frozen=True)
class Merge:
    """One step of BPE training: the pair ``(left, right)`` became the token ``left + right``.

    ``count`` is how often the pair stood side by side in the training corpus at that step.
    """

    left: str
    right: str
    count: int = 0

    @property
    def token(self) -> str:
        """The merged token, ``left + right``."""
        return self.left + self.right


def _merge_pair(symbols: list[int], left: int, right: int, new: int) -> list[int]:
    """Replace each ``left, right`` in ``symbols`` by ``new``, left to right, without overlaps."""
    out: list[int] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-pair encoding, trained from raw text with :meth:`train` and applied by replaying merges.

    BPE follows Sennrich et al., 2016, "Neural Machine Translation of Rare Words with Subword
    Units", section 3.2. Training starts from the characters of the corpus and repeatedly
    merges the pair of adjacent tokens that occurs most often into a new token, until the
    vocabulary has ``vocab_size`` entries. Encoding replays the merges, in the order they were
    learned, on each chunk of :func:`bpe_pretokenize`. Text is kept exactly as written (no
    lower-casing): decoding the ids gives the text back, character for character.

    A character the corpus never showed is **unknown**. With ``byte_fallback=True`` (the
    default, as in SentencePiece and Llama) it is written as its UTF-8 bytes, one token
    ``<0xNN>`` per byte, so nothing is ever lost; with ``byte_fallback=False`` it becomes
    ``[UNK]`` and decoding cannot bring it back.

    The vocabulary, in id order: the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids
    0-4), the 256 byte tokens (with byte fallback), the alphabet (the corpus's characters by code
    point), then one token per merge. Special tokens written in the text are ordinary text.

    Args:
        alphabet: the single characters the tokenizer knows.
        merges: the merges, in the order they were learned: :class:`Merge` objects or
            ``(left, right)`` pairs; each side must be a token known before that merge.
        byte_fallback: write unknown characters as UTF-8 byte tokens. Default: True.

    Shape:
        ``tokenizer(texts)`` returns ``input_ids`` and ``attention_mask``, LongTensors (B, T),
        each text as ``[CLS] ... [SEP]`` padded with ``[PAD]`` to the longest; attention_mask is
        1 (may attend) on real tokens and 0 on padding.

    Examples:
        >>> tok = BPETokenizer.train(["low low lower newest newest widest"], vocab_size=278)
        >>> tok.merges[0]
        Merge(left='e', right='s', count=3)
        >>> [m.token for m in tok.merges]
        ['es', 'est', 'lo', 'low', ' low', ' n']
        >>> tok.tokenize("lowest newer")
        ['low', 'est', ' n', 'e', 'w', 'e', 'r']
        >>> tok.decode(tok.encode("lowest newer"))
        'lowest newer'
        >>> tok.tokenize("low°")  # "°" is unknown: its two UTF-8 bytes
        ['low', '<0xC2>', '<0xB0>']
    """

    def __init__(
        self,
        alphabet: Iterable[str],
        merges: Iterable[Merge | tuple[str, str]] = (),
        byte_fallback: bool = True,
    ) -> None:
        if isinstance(alphabet, str) or not isinstance(alphabet, Iterable):
            raise TypeError(
                f"alphabet: expected an iterable of single characters, got {type(alphabet).__name__}"
            )
        self.byte_fallback = bool(byte_fallback)
        self.id_to_token: list[str] = list(SPECIAL_TOKENS)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(len(SPECIAL_TOKENS))
        self.byte_offset = len(self.id_to_token)
        if self.byte_fallback:
            self.id_to_token.extend(_BYTE_TOKENS)
        self.first_piece_id = len(self.id_to_token)
        # Text pieces (characters and merged tokens) -> id. Special and byte tokens live in
        # their own id ranges, so a text that spells "[PAD]" or "<0x41>" is never confused with them.
        self.piece_to_id: dict[str, int] = {}
        self.alphabet: list[str] = list(alphabet)
        for char in self.alphabet:
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"alphabet: expected single characters, got {char!r}")
            if char in self.piece_to_id:
                raise ValueError(f"alphabet: {char!r} appears twice")
            self._add_piece(char)
        self.merges: list[Merge] = []
        self.merge_ranks: dict[tuple[int, int], tuple[int, int]] = {}  # (left id, right id) -> (rank, new id)
        self._merge_pairs: list[tuple[int, int]] = []  # rank -> (left id, right id)
        for merge in merges:
            self._add_merge(merge if isinstance(merge, Merge) else Merge(*merge))
        self._cache: dict[str, list[int]] = {}

    def _add_piece(self, piece: str) -> int:
        """Give a new text piece the next id (or return the id it already has)."""
        if piece not in self.piece_to_id:
            self.piece_to_id[piece] = len(self.id_to_token)
            self.id_to_token.append(piece)
        return self.piece_to_id[piece]

    def _add_merge(self, merge: Merge) -> int:
        """Record a merge (its two sides must be known pieces); return the id of its token."""
        for side in (merge.left, merge.right):
            if side not in self.piece_to_id:
                raise ValueError(f"merges: {merge.left!r} + {merge.right!r} uses {side!r}, not a known token")
        pair = (self.piece_to_id[merge.left], self.piece_to_id[merge.right])
        if pair in self.merge_ranks:
            raise ValueError(f"merges: {merge.left!r} + {merge.right!r} appears twice")
        new_id = self._add_piece(merge.token)  # two merges may spell the same token: one id
        self.merge_ranks[pair] = (len(self.merges), new_id)
        self._merge_pairs.append(pair)
        self.merges.append(merge)
        return new_id

    # ----- training -------------------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, byte_fallback: bool = True) -> BPETokenizer:
        """Learn merges from ``texts`` until the vocabulary holds ``vocab_size`` tokens.

        At each step the most frequent pair of adjacent tokens (counted inside the chunks of
        :func:`bpe_pretokenize`, each chunk weighted by how often it occurs) is merged; a tie
        goes to the pair that sorts first, so training depends on nothing but the text: the
        same texts, in any order, give the same tokenizer, and a smaller ``vocab_size`` gives
        a prefix of the same merges. Training stops early when no pair is left.

        Args:
            texts: the training corpus, an iterable of strings.
            vocab_size: the number of tokens wanted, special and byte tokens included; at least
                the size of the base vocabulary (5 special + 256 byte tokens + the alphabet).
            byte_fallback: see :class:`BPETokenizer`. Default: True.

        Returns:
            The trained tokenizer; ``tokenizer.merges`` lists the merges in order, with counts.
        """
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise TypeError(f"texts: expected an iterable of str, got {type(texts).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size: expected an int, got {type(vocab_size).__name__}")
        chunk_counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts: expected str elements, element {i} is {type(text).__name__}")
            chunk_counts.update(bpe_pretokenize(text))
        alphabet = sorted({char for chunk in chunk_counts for char in chunk})
        tokenizer = cls(alphabet, byte_fallback=byte_fallback)
        if vocab_size < tokenizer.vocab_size:
            bytes_part = ", 256 byte tokens" if byte_fallback else ""
            raise ValueError(
                f"vocab_size: expected at least {tokenizer.vocab_size} (5 special tokens{bytes_part} "
                f"and {len(alphabet)} characters), got {vocab_size}"
            )
        tokenizer._learn_merges(chunk_counts, vocab_size)
        return tokenizer

    def _learn_merges(self, chunk_counts: Counter[str], vocab_size: int) -> None:
        """Greedy BPE training with incremental pair counts (only words holding the pair change)."""
        chunks = sorted(chunk_counts)  # a fixed order: nothing depends on hash seeds
        words = [[self.piece_to_id[c] for c in chunk] for chunk in chunks]
        freqs = [chunk_counts[chunk] for chunk in chunks]
        pair_counts: Counter[tuple[int, int]] = Counter()
        where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of words that may hold it
        for w, (symbols, freq) in enumerate(zip(words, freqs, strict=True)):
            for pair in pairwise(symbols):
                pair_counts[pair] += freq
                where.setdefault(pair, set()).add(w)
        # Max-heap on (count, then the pair's text in sorting order). Entries go stale when a
        # count changes; a fresh one is pushed then, and stale ones are skipped when popped.
        text = self.id_to_token
        heap = [(-count, text[a], text[b], a, b) for (a, b), count in pair_counts.items()]
        heapq.heapify(heap)
        while self.vocab_size < vocab_size and heap:
            neg_count, _, _, a, b = heapq.heappop(heap)
            if pair_counts.get((a, b), 0) != -neg_count or neg_count == 0:
                continue  # stale entry
            new = self._add_merge(Merge(text[a], text[b], -neg_count))
            changed: set[tuple[int, int]] = set()
            for w in sorted(where.pop((a, b))):
                symbols = words[w]
                merged = _merge_pair(symbols, a, b, new)
                if len(merged) == len(symbols):
                    continue  # the word no longer holds the pair
                for pair in pairwise(symbols):
                    pair_counts[pair] -= freqs[w]
                    changed.add(pair)
                for pair in pairwise(merged):
                    pair_counts[pair] += freqs[w]
                    where.setdefault(pair, set()).add(w)
                    changed.add(pair)
                words[w] = merged
            for pair in changed:
                count = pair_counts[pair]
                if count <= 0:
                    del pair_counts[pair]
                elif pair != (a, b):
                    heapq.heappush(heap, (-count, text[pair[0]], text[pair[1]], *pair))
            pair_counts.pop((a, b), None)

    # ----- text -> ids ----------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of tokens V in the vocabulary (special and byte tokens included)."""
        return len(self.id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"byte_fallback={self.byte_fallback})"
        )

    def _encode_chunk(self, chunk: str, num_merges: int | None = None) -> list[int]:
        """Ids of one pre-tokenized chunk: its characters, then the merges in learned order."""
        symbols: list[int] = []
        for char in chunk:
            if char in self.piece_to_id:
                symbols.append(self.piece_to_id[char])
            elif self.byte_fallback:
                symbols.extend(self.byte_offset + b for b in char.encode("utf-8"))
            else:
                symbols.append(self.unk_id)
        limit = len(self.merges) if num_merges is None else num_merges
        last_rank = -1
        while len(symbols) > 1:
            # The earliest-learned merge that applies here and comes after the last one applied
            # (training never goes back to an earlier merge, so neither does encoding).
            ranks = [self.merge_ranks[p][0] for p in pairwise(symbols) if p in self.merge_ranks]
            ranks = [r for r in ranks if last_rank < r < limit]
            if not ranks:
                break
            last_rank = min(ranks)
            left, right = self._merge_pairs[last_rank]
            symbols = _merge_pair(symbols, left, right, self.merge_ranks[left, right][1])
        return symbols

    def encode(self, text: str, add_special_tokens: bool = False, num_merges: int | None = None) -> list[int]:
        """Text -> ids. ``decode(encode(text)) == text`` for every string (with byte fallback).

        Args:
            text: the raw text.
            add_special_tokens: put ``[CLS]`` first and ``[SEP]`` last. Default: False.
            num_merges: apply only the first ``num_merges`` merges, to watch training step by
                step. Default: None (all of them).

        Examples:
            >>> tok = BPETokenizer.train(["aaab"], vocab_size=264)  # one merge: "a" + "a"
            >>> tok.tokenize("aaaab"), tok.encode("aab"), tok.encode("aab", add_special_tokens=True)
            (['aa', 'aa', 'b'], [263, 262], [2, 263, 262, 3])
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if num_merges is not None and (
            isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0
        ):
            raise ValueError(f"num_merges: expected None or an int >= 0, got {num_merges!r}")
        ids: list[int] = []
        for chunk in bpe_pretokenize(text):
            if num_merges is not None:
                ids.extend(self._encode_chunk(chunk, num_merges))
                continue
            if chunk not in self._cache:
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return [self.cls_id, *ids, self.sep_id] if add_special_tokens else ids

    def tokenize(self, text: str, num_merges: int | None = None) -> list[str]:
        """Text -> tokens (strings), no special tokens; see :meth:`encode` for ``num_merges``."""
        return [self.id_to_token[i] for i in self.encode(text, num_merges=num_merges)]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens; raises ValueError for an id outside [0, V)."""
        return [self.id_to_token[i] for i in _check_ids(ids, self.vocab_size)]

    # ----- ids -> text ----------------------------------------------------------------------

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: pieces concatenated, byte tokens turned back into their characters.

        Special tokens are written as their names (``[CLS]``) unless skipped. Byte tokens that
        do not form valid UTF-8 (possible only for ids not made by :meth:`encode`) become U+FFFD.

        Args:
            ids: the ids, a sequence of ints or a 1-D tensor.
            skip_special_tokens: leave out [PAD], [UNK], [CLS], [SEP] and [MASK]. Default: False.
        """
        parts: list[str] = []
        pending = bytearray()  # consecutive byte tokens, decoded together
        for i in _check_ids(ids, self.vocab_size):
            if self.byte_fallback and self.byte_offset <= i < self.first_piece_id:
                pending.append(i - self.byte_offset)
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            if i < len(SPECIAL_TOKENS) and skip_special_tokens:
                continue
            parts.append(self.id_to_token[i])
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)

    # ----- batches --------------------------------------------------------------------------

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Encode a batch as ``[CLS] ... [SEP]``, padded with [PAD] to the longest (see :func:`pad_batch`)."""
        texts = _check_texts(texts)
        return pad_batch([self.encode(text, add_special_tokens=True) for text in texts], self.pad_id)


def _check_texts(texts: str | Sequence[str]) -> list[str]:
    """A batch of texts as a non-empty list of str (one string is a batch of one), or a clear error."""
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


def _check_ids(ids: Iterable[int] | torch.Tensor, vocab_size: int) -> list[int]:
    """Return ``ids`` as a list of ints in [0, vocab_size), or raise a clear error."""
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
