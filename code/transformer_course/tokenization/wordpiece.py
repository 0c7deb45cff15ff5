"""WordPiece, as BERT does it: from raw text to the ids a real encoder was trained on.

Two stages turn a string into vocabulary entries (Devlin et al., 2019, "BERT", section 3, and
Wu et al., 2016, "Google's Neural Machine Translation System", section 4.1, for WordPiece):

1. **Basic tokenization** (:func:`~transformer_course.tokenization.basic.basic_tokenize`) cuts
   the text into words.
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
from collections.abc import Iterable, Sequence

import torch

from .basic import SPECIAL_TOKENS, basic_tokenize, check_ids, check_texts, pad_batch, truncate_and_wrap

__all__ = ["WordPieceTokenizer"]

# tokenize remembers the cut of up to this many distinct words (then forgets them all and starts
# again): text repeats its words, and a dictionary look-up is far cheaper than a cut.
_REMEMBERED_WORDS = 100_000


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenization, then greedy longest-match WordPiece.

    ``encode`` and ``__call__`` add ``[CLS]`` and ``[SEP]`` unless told
    ``add_special_tokens=False``, as the reference BERT tokenizer does, because the model was
    trained with them (a :class:`~transformer_course.tokenization.bpe.BPETokenizer` leaves them
    out by default: a BPE learned here has no model that expects them).

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
        self._pieces: dict[str, tuple[str, ...]] = {}  # word -> its WordPiece cut, as tokenize met it

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
        start = 0
        i = text.find("[")  # every special token starts with "["
        while i >= 0:
            # None of the special tokens is a prefix of another: at most one matches here.
            special = next((t for t in SPECIAL_TOKENS if text.startswith(t, i)), None)
            if special is None:
                i = text.find("[", i + 1)
                continue
            parts.extend([text[start:i], special])
            start = i + len(special)
            i = text.find("[", start)
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
                pieces = self._pieces.get(word)
                if pieces is None:  # a word met for the first time: cut it, and remember the cut
                    if len(self._pieces) >= _REMEMBERED_WORDS:
                        self._pieces.clear()
                    pieces = self._pieces[word] = tuple(self.wordpiece(word))
                tokens.extend(pieces)
        return tokens

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Tokens -> ids; a token outside the vocabulary gets the id of ``[UNK]``.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"])
            >>> tok.convert_tokens_to_ids(["[CLS]", "hi", "hello"])
            [2, 5, 1]
        """
        return [self.token_to_id.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Ids -> tokens; raises ValueError for an id outside [0, V).

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"])
            >>> tok.convert_ids_to_tokens([2, 5, 3])
            ['[CLS]', 'hi', '[SEP]']
        """
        return [self.id_to_token[i] for i in check_ids(ids, self.vocab_size)]

    def encode(
        self, text: str, *, add_special_tokens: bool = True, max_length: int | None = None
    ) -> list[int]:
        """Text -> ids, by default with ``[CLS]`` first and ``[SEP]`` last, as the model was trained.

        Args:
            text: the raw text.
            add_special_tokens: put ``[CLS]`` first and ``[SEP]`` last. Default: True.
            max_length: if given, drop the last word pieces so that at most ``max_length`` ids
                remain, [CLS] and [SEP] included. Default: None (no truncation).

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
            >>> tok.encode("a b a"), tok.encode("a b a", max_length=4)
            ([2, 5, 6, 5, 3], [2, 5, 6, 3])
            >>> tok.encode("a b a", add_special_tokens=False, max_length=2)
            [5, 6]
        """
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        return truncate_and_wrap(ids, self.cls_id, self.sep_id, add_special_tokens, max_length)

    # ----- ids -> text ----------------------------------------------------------------------

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: word pieces glued back (``"un ##aff ##able" -> "unaffable"``).

        The text is the normalized one (lower-cased, accents stripped, a space around each
        punctuation mark): tokenization forgets case, accents and spacing.

        Args:
            ids: the ids, a sequence of ints or a 1-D tensor.
            skip_special_tokens: leave out [CLS], [SEP], [PAD], [UNK] and [MASK]. Default: False.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing"])
            >>> tok.decode([2, 5, 6, 3]), tok.decode([2, 5, 6, 3], skip_special_tokens=True)
            ('[CLS] playing [SEP]', 'playing')
        """
        words: list[str] = []
        for i in check_ids(ids, self.vocab_size):
            if skip_special_tokens and i in self.special_ids:
                continue
            token = self.id_to_token[i]
            if token.startswith("##") and words:
                words[-1] += token[2:]  # a continuation: no space before it
            else:
                words.append(token)
        return " ".join(words)

    # ----- batches --------------------------------------------------------------------------

    def __call__(
        self, texts: str | Sequence[str], *, add_special_tokens: bool = True, max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of texts, padded with [PAD] to the longest, with its attention mask.

        Args:
            texts: a list of strings (or one string, a batch of one).
            add_special_tokens, max_length: as in :meth:`encode`; the model rejects more than
                512 tokens.

        Shape:
            Returns ``input_ids`` (B, T) and ``attention_mask`` (B, T), both torch.long;
            attention_mask is 1 on real tokens (may attend) and 0 on padding.
        """
        texts = check_texts(texts)
        ids = [self.encode(t, add_special_tokens=add_special_tokens, max_length=max_length) for t in texts]
        return pad_batch(ids, self.pad_id)
