"""Byte-pair encoding (BPE), learned here from raw text: the other family of sub-word tokenizers.

BPE (Sennrich et al., 2016, "Neural Machine Translation of Rare Words with Subword Units",
section 3.2) learns its vocabulary by merging the most frequent pair of adjacent tokens, again
and again, and encodes new text by replaying those merges in the order they were learned.
:class:`BPETokenizer` follows the calling convention of
:class:`~transformer_course.tokenization.wordpiece.WordPieceTokenizer` (``encode``,
``tokenize``, ``decode``, ``convert_ids_to_tokens``, ``tokenizer(texts)``, ``vocab_size``).

Legend: B batch, T length (in tokens, [CLS] and [SEP] included when added).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

import torch

from .basic import SPECIAL_TOKENS, check_ids, check_texts, pad_batch, truncate_and_wrap

__all__ = ["BPETokenizer", "Merge", "bpe_pretokenize"]

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
    """One step of BPE learning: the pair ``(left, right)`` became the token ``left + right``.

    ``count`` is how often the pair stood side by side in the corpus at that step.

    Examples:
        >>> Merge("lo", "w", count=3).token
        'low'
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
    """Byte-pair encoding, learned from raw text with :meth:`learn` and applied by replaying merges.

    BPE follows Sennrich et al., 2016, "Neural Machine Translation of Rare Words with Subword
    Units", section 3.2. Learning starts from the characters of the corpus and repeatedly
    merges the pair of adjacent tokens that occurs most often into a new token, until the
    vocabulary has ``vocab_size`` entries. Encoding replays the merges, in the order they were
    learned, on each chunk of :func:`bpe_pretokenize`. Text is kept exactly as written (no
    lower-casing): decoding the ids gives the text back, character for character.

    A character the corpus never showed is **unknown**. With ``byte_fallback=True`` (the
    default, as in SentencePiece and Llama) it is written as its UTF-8 bytes, one token
    ``<0xNN>`` per byte, so nothing is ever lost; with ``byte_fallback=False`` it becomes
    ``[UNK]`` and decoding cannot bring it back.

    ``encode`` and ``__call__`` add ``[CLS]`` and ``[SEP]`` only when told
    ``add_special_tokens=True``, because a BPE learned here has no model that expects them (a
    :class:`~transformer_course.tokenization.wordpiece.WordPieceTokenizer` adds them by default,
    as the BERT model it serves was trained with them).

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
        padded with ``[PAD]`` to the longest text; attention_mask is 1 (may attend) on real
        tokens and 0 on padding.

    Examples:
        >>> tok = BPETokenizer.learn(["low low lower newest newest widest"], vocab_size=278)
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
        >>> tok(["lowest", "low"])["input_ids"].tolist()
        [[275, 273], [275, 0]]
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

    # ----- learning the merges ---------------------------------------------------------------

    @classmethod
    def learn(cls, texts: Iterable[str], vocab_size: int, byte_fallback: bool = True) -> BPETokenizer:
        """Learn merges from ``texts`` until the vocabulary holds ``vocab_size`` tokens.

        At each step the most frequent pair of adjacent tokens (counted inside the chunks of
        :func:`bpe_pretokenize`, each chunk weighted by how often it occurs) is merged; a tie
        goes to the pair that sorts first, so the result depends on nothing but the text: the
        same texts, in any order, give the same tokenizer, and a smaller ``vocab_size`` gives
        a prefix of the same merges. Learning stops early when no pair is left.

        Args:
            texts: the corpus, an iterable of strings.
            vocab_size: the number of tokens wanted, special and byte tokens included; at least
                the size of the base vocabulary (5 special + 256 byte tokens + the alphabet).
            byte_fallback: see :class:`BPETokenizer`. Default: True.

        Returns:
            The tokenizer; ``tokenizer.merges`` lists the merges in order, with counts.

        Examples:
            >>> tok = BPETokenizer.learn(["aaab"], vocab_size=264)  # 261 + "a", "b": room for one merge
            >>> tok.merges
            [Merge(left='a', right='a', count=2)]
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
        """Greedy BPE learning with incremental pair counts (only words holding the pair change)."""
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
            # (learning never goes back to an earlier merge, so neither does encoding).
            ranks = [self.merge_ranks[p][0] for p in pairwise(symbols) if p in self.merge_ranks]
            ranks = [r for r in ranks if last_rank < r < limit]
            if not ranks:
                break
            last_rank = min(ranks)
            left, right = self._merge_pairs[last_rank]
            symbols = _merge_pair(symbols, left, right, self.merge_ranks[left, right][1])
        return symbols

    def encode(
        self,
        text: str,
        *,
        add_special_tokens: bool = False,
        max_length: int | None = None,
        num_merges: int | None = None,
    ) -> list[int]:
        """Text -> ids. ``decode(encode(text)) == text`` for every string (with byte fallback).

        Args:
            text: the raw text.
            add_special_tokens: put ``[CLS]`` first and ``[SEP]`` last. Default: False.
            max_length: if given, drop the last tokens so that at most ``max_length`` ids remain,
                [CLS] and [SEP] included. Default: None (no truncation).
            num_merges: apply only the first ``num_merges`` merges, to watch learning step by
                step. Default: None (all of them).

        Examples:
            >>> tok = BPETokenizer.learn(["aaab"], vocab_size=264)  # one merge: "a" + "a"
            >>> tok.encode("aab"), tok.encode("aab", add_special_tokens=True)
            ([263, 262], [2, 263, 262, 3])
            >>> tok.encode("aab", max_length=1), tok.encode("aab", num_merges=0)
            ([263], [261, 261, 262])
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
        return truncate_and_wrap(ids, self.cls_id, self.sep_id, add_special_tokens, max_length)

    def tokenize(self, text: str, *, num_merges: int | None = None) -> list[str]:
        """Text -> tokens (strings), no special tokens; see :meth:`encode` for ``num_merges``.

        Examples:
            >>> tok = BPETokenizer.learn(["aaab"], vocab_size=264)
            >>> tok.tokenize("aaaab"), tok.tokenize("aaaab", num_merges=0)
            (['aa', 'aa', 'b'], ['a', 'a', 'a', 'a', 'b'])
        """
        return [self.id_to_token[i] for i in self.encode(text, num_merges=num_merges)]

    def convert_ids_to_tokens(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Ids -> tokens; raises ValueError for an id outside [0, V).

        Examples:
            >>> BPETokenizer(["a"]).convert_ids_to_tokens([2, 261, 5, 3])
            ['[CLS]', 'a', '<0x00>', '[SEP]']
        """
        return [self.id_to_token[i] for i in check_ids(ids, self.vocab_size)]

    # ----- ids -> text ----------------------------------------------------------------------

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        """Ids -> text: pieces concatenated, byte tokens turned back into their characters.

        Special tokens are written as their names (``[CLS]``) unless skipped. Byte tokens that
        do not form valid UTF-8 (possible only for ids not made by :meth:`encode`) become U+FFFD.

        Args:
            ids: the ids, a sequence of ints or a 1-D tensor.
            skip_special_tokens: leave out [PAD], [UNK], [CLS], [SEP] and [MASK]. Default: False.

        Examples:
            >>> tok = BPETokenizer(["a", "é"], byte_fallback=True)
            >>> tok.decode([2, 261, 0xC3 + 5, 0xA9 + 5, 3]), tok.decode([2, 261, 3], skip_special_tokens=True)
            ('[CLS]aé[SEP]', 'a')
        """
        parts: list[str] = []
        pending = bytearray()  # consecutive byte tokens, decoded together
        for i in check_ids(ids, self.vocab_size):
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

    def __call__(
        self, texts: str | Sequence[str], *, add_special_tokens: bool = False, max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of texts, padded with [PAD] to the longest, with its attention mask.

        Args:
            texts: a list of strings (or one string, a batch of one).
            add_special_tokens, max_length: as in :meth:`encode`.

        Shape:
            Returns ``input_ids`` (B, T) and ``attention_mask`` (B, T), both torch.long;
            attention_mask is 1 on real tokens (may attend) and 0 on padding.

        Examples:
            >>> tok = BPETokenizer(["a", "b"])
            >>> batch = tok(["ab", "a"], add_special_tokens=True)
            >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
            ([[2, 261, 262, 3], [2, 261, 3, 0]], [[1, 1, 1, 1], [1, 1, 1, 0]])
        """
        texts = check_texts(texts)
        ids = [self.encode(t, add_special_tokens=add_special_tokens, max_length=max_length) for t in texts]
        return pad_batch(ids, self.pad_id)
