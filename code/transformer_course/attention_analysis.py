"""Reading a trained encoder's attention: where a word sits, and how much one word attends to another.

Chapter 4 asks a real encoder a question the lecture notes answer with a picture: in "The animal
didn't cross the street because it was too wide", does "it" attend to "street"? And do some heads
follow relations between words, such as a determiner and its noun? This module holds the
bookkeeping such questions need; the chapter prints the core of each function before it uses its
results:

- :func:`word_positions`: the positions of a word's WordPiece pieces in ``tokenizer.encode(text)``
  (``[CLS]`` is position 0, so positions index the model's attention directly);
- :func:`attention_from_to`: the weight one word's pieces give another word's pieces, in every
  layer and head;
- :class:`ReferentPair` and :func:`pronoun_attention`: Winograd-style sentence pairs that differ in
  one word which flips what a pronoun refers to, and the pronoun's attention to each candidate;
- :func:`pair_correct`, :func:`best_head` and :func:`binomial_p_value`: does a head move its
  attention to the right candidate when the word changes, which head does it best on some pairs,
  how well it does on the others, and how likely that score is by chance;
- :class:`Relation`, :func:`annotate` and :func:`word_piece_relations`: cases of a relation
  between two words (determiner -> noun, object -> verb, a word piece -> the rest of its word),
  written by hand as words or found by the tokenizer;
- :func:`most_attended`, :func:`relation_hits` and :func:`offset_hits`: which token a head
  attends to most from a word, whether that is the relation's target, and whether the positional
  rule "the token k places away" would have found it (the baseline a head must beat).

Why one module of over 500 lines: the two studies of chapter 4 (a pronoun's referent, relations
between words) share the positions, the scoring of a head and its held-out test; split in two,
each half would import the other's bookkeeping.

Legend: B batch, T length (in tokens, ``[CLS]`` and ``[SEP]`` included), L layers, H heads,
N sentence pairs (or cases of a relation), K offsets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import nn

from .tokenization import WordPieceTokenizer

__all__ = [
    "word_positions",
    "attention_from_to",
    "ReferentPair",
    "pronoun_attention",
    "pair_correct",
    "best_head",
    "binomial_p_value",
    "Relation",
    "annotate",
    "word_piece_relations",
    "most_attended",
    "relation_hits",
    "offset_hits",
]


def word_positions(tokenizer: WordPieceTokenizer, text: str, word: str, occurrence: int = 0) -> list[int]:
    """Positions of ``word``'s WordPiece pieces in ``tokenizer.encode(text)``.

    The word is tokenized by the same tokenizer (so ``"Street"`` matches ``street``, and a word the
    vocabulary cuts into pieces matches all of them, in order). Positions count ``[CLS]`` as 0, as
    the rows and columns of the model's attention weights do.

    Args:
        tokenizer: the model's tokenizer.
        text: the sentence.
        word: the word to find (one word: it must not be cut into several words).
        occurrence: which match to return, 0 for the first. Default: 0.

    Returns:
        The positions of the pieces of the chosen match, consecutive, in increasing order.

    Raises:
        ValueError: if ``word`` is empty or several words, or occurs fewer than ``occurrence + 1``
            times.

    Examples:
        >>> specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        >>> tok = WordPieceTokenizer(specials + ["it", "was", "wide", "play", "##ing", "."])
        >>> word_positions(tok, "It was playing.", "playing")
        [3, 4]
        >>> word_positions(tok, "It was wide.", "it")
        [1]
    """
    if not isinstance(text, str) or not isinstance(word, str):
        raise TypeError(f"text and word: expected str, got {type(text).__name__} and {type(word).__name__}")
    if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence < 0:
        raise ValueError(f"occurrence: expected an int >= 0, got {occurrence!r}")
    pieces = tokenizer.tokenize(word)
    if not pieces or len(word.split()) != 1:
        raise ValueError(f"word: expected one word, got {word!r} (tokens {pieces})")
    tokens = ["[CLS]", *tokenizer.tokenize(text), "[SEP]"]  # the tokens of tokenizer.encode(text)
    n = len(pieces)
    starts = [i for i in range(len(tokens) - n + 1) if tokens[i : i + n] == pieces]
    # A match must be a whole word: the next token must not continue it with "##".
    starts = [i for i in starts if i + n == len(tokens) or not tokens[i + n].startswith("##")]
    if len(starts) <= occurrence:
        raise ValueError(
            f"word: {word!r} (tokens {pieces}) occurs {len(starts)} time(s) in {text!r}, "
            f"expected at least {occurrence + 1}"
        )
    start = starts[occurrence]
    return list(range(start, start + n))


def _stack_weights(weights: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """L tensors (B, H, T, T) or one (L, B, H, T, T) tensor -> (L, B, H, T, T)."""
    if isinstance(weights, torch.Tensor):
        stacked = weights
    elif isinstance(weights, Sequence) and weights and all(isinstance(w, torch.Tensor) for w in weights):
        stacked = torch.stack(list(weights))  # L x (B, H, T, T) -> (L, B, H, T, T)
    else:
        raise TypeError("weights: expected a list of L tensors (B, H, T, T) or one tensor (L, B, H, T, T)")
    if stacked.ndim != 5 or stacked.shape[-1] != stacked.shape[-2]:
        raise ValueError(f"weights: expected shape (L, B, H, T, T), got {tuple(stacked.shape)}")
    return stacked


def attention_from_to(
    weights: Sequence[torch.Tensor] | torch.Tensor,
    query_positions: Sequence[int],
    key_positions: Sequence[int],
    batch_index: int = 0,
) -> torch.Tensor:
    """The attention one word gives another, in every layer and head.

    A word cut into several pieces is handled the usual way (Clark et al., 2019, *What Does BERT
    Look At?*): the weights **to** its pieces are summed (attention to the word is attention to
    any of its pieces) and the weights **from** its pieces are averaged (each piece is a query).

    Args:
        weights: the model's attention, a list of L tensors (B, H, T, T) as returned with
            ``return_attention=True``, or one stacked tensor (L, B, H, T, T).
        query_positions: the positions of the attending word's pieces (rows).
        key_positions: the positions of the attended word's pieces (columns).
        batch_index: which sentence of the batch. Default: 0.

    Shape:
        Returns (L, H); with one-piece words, entry [l, h] is ``weights[l][batch_index, h, q, k]``.

    Examples:
        >>> w = torch.full((1, 1, 2, 3, 3), 1 / 3)  # (L, B, H, T, T), uniform rows
        >>> attention_from_to(w, [0], [1, 2])
        tensor([[0.6667, 0.6667]])
    """
    stacked = _stack_weights(weights)
    L, B, H, T, _ = stacked.shape
    if isinstance(batch_index, bool) or not isinstance(batch_index, int) or not 0 <= batch_index < B:
        raise ValueError(f"batch_index: expected an int in [0, {B}), got {batch_index!r}")
    for name, positions in (("query_positions", query_positions), ("key_positions", key_positions)):
        if len(positions) == 0 or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p < T for p in positions
        ):
            raise ValueError(f"{name}: expected a non-empty list of ints in [0, {T}), got {list(positions)}")
    rows = stacked[:, batch_index][:, :, list(query_positions)]  # (L, B, H, T, T) -> (L, H, q, T)
    to_word = rows[..., list(key_positions)].sum(dim=-1)  # (L, H, q, k) -> (L, H, q)
    return to_word.mean(dim=-1)  # (L, H, q) -> (L, H)


@dataclasses.dataclass(frozen=True)
class ReferentPair:
    """Two sentences that differ in one word, which changes what a pronoun refers to.

    ``template`` holds one ``{}`` where ``fillers[i]`` goes; in sentence i the pronoun refers to
    ``candidates[i]``. Both candidates must come before the pronoun.

    Examples:
        >>> pair = ReferentPair("The cup is on the box because it is {}.", ("box", "cup"), ("flat", "round"))
        >>> pair.texts()
        ('The cup is on the box because it is flat.', 'The cup is on the box because it is round.')
    """

    template: str  # the sentence with "{}" where the changing word goes
    candidates: tuple[str, str]  # the two nouns the pronoun may refer to
    fillers: tuple[str, str]  # fillers[i] makes the pronoun refer to candidates[i]

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or self.template.count("{}") != 1:
            raise ValueError(f"template: expected a str with exactly one '{{}}', got {self.template!r}")
        for name in ("candidates", "fillers"):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)):
                raise TypeError(f"{name}: expected a tuple of two str, got {value!r}")
        if self.candidates[0] == self.candidates[1] or self.fillers[0] == self.fillers[1]:
            raise ValueError(f"candidates and fillers: each must hold two different words, got {self}")

    def texts(self) -> tuple[str, str]:
        """The two sentences: the template with ``fillers[0]``, then with ``fillers[1]``."""
        return self.template.format(self.fillers[0]), self.template.format(self.fillers[1])


@torch.no_grad()
def pronoun_attention(
    tokenizer: WordPieceTokenizer,
    model: nn.Module,
    pairs: Sequence[ReferentPair],
    pronoun: str = "it",
) -> torch.Tensor:
    """The attention from the pronoun to each candidate, in both sentences of every pair.

    All 2N sentences go through the model in one padded batch (``tokenizer(texts)`` gives the
    padding mask); the pronoun is the last occurrence of ``pronoun`` in each sentence.

    Args:
        tokenizer: the model's tokenizer.
        model: an encoder called as ``model(input_ids, attention_mask, return_attention=True)``,
            returning ``(hidden, weights)`` with weights a list of L tensors (B, H, T, T).
        pairs: the N sentence pairs.
        pronoun: the word whose attention is read. Default: ``"it"``.

    Shape:
        Returns (N, 2, 2, L, H): entry [n, s, c, l, h] is the attention from the pronoun to
        ``pairs[n].candidates[c]`` in sentence s (the one with ``fillers[s]``), layer l, head h.

    Examples:
        >>> from transformer_course.pretrained import load_minilm
        >>> tokenizer, model = load_minilm(device="cpu")
        >>> template = "The cat chased the mouse because it was {}."
        >>> pair = ReferentPair(template, ("cat", "mouse"), ("hungry", "fast"))
        >>> tuple(pronoun_attention(tokenizer, model, [pair]).shape)
        (1, 2, 2, 6, 12)
    """
    if isinstance(pairs, ReferentPair) or not isinstance(pairs, Sequence) or len(pairs) == 0:
        raise TypeError("pairs: expected a non-empty list of ReferentPair")
    if not all(isinstance(p, ReferentPair) for p in pairs):
        raise TypeError("pairs: every element must be a ReferentPair")
    texts = [text for pair in pairs for text in pair.texts()]  # 2N sentences, pair by pair
    batch = tokenizer(texts)
    device = next(model.parameters()).device
    _, weights = model(
        batch["input_ids"].to(device), batch["attention_mask"].to(device), return_attention=True
    )
    stacked = _stack_weights(weights).cpu()  # L x (2N, H, T, T) -> (L, 2N, H, T, T)
    L, _, H = stacked.shape[:3]
    scores = torch.zeros(len(pairs), 2, 2, L, H, dtype=stacked.dtype)
    for n, pair in enumerate(pairs):
        for s, text in enumerate(pair.texts()):
            occurrences = sum(t == pronoun for t in tokenizer.tokenize(text))
            if occurrences == 0:
                raise ValueError(f"pairs[{n}]: the pronoun {pronoun!r} is not in {text!r}")
            query = word_positions(tokenizer, text, pronoun, occurrence=occurrences - 1)
            for c, candidate in enumerate(pair.candidates):
                key = word_positions(tokenizer, text, candidate)
                if key[0] > query[0]:
                    raise ValueError(
                        f"pairs[{n}]: candidate {candidate!r} comes after the pronoun in {text!r}"
                    )
                scores[n, s, c] = attention_from_to(stacked, query, key, batch_index=2 * n + s)
    return scores


def pair_correct(scores: torch.Tensor, tolerance: float = 1e-3) -> torch.Tensor:
    """For each pair and head: does the pronoun's attention move toward the right candidate?

    Let m_s = (attention to candidate 0) - (attention to candidate 1) in sentence s. Sentence 0's
    referent is candidate 0 and sentence 1's is candidate 1, so a head that follows the referent
    has m_0 > m_1. A pair counts as correct when m_0 - m_1 > ``tolerance``: a head that ignores
    the changing word (always the nearer noun, say) moves by noise only, so it is right on at most
    about half of the pairs (chance is 50% or less), and a head that gives both nouns almost no
    weight does not score by rounding noise.

    Args:
        scores: the pronoun's attention to each candidate, from :func:`pronoun_attention`.
        tolerance: the smallest move (in attention weight) that counts. Default: 1e-3.

    Shape:
        scores: (N, 2, 2, L, H) -> bool (N, L, H)

    Examples:
        >>> scores = torch.tensor([[[0.6, 0.1], [0.2, 0.3]]]).reshape(1, 2, 2, 1, 1)
        >>> pair_correct(scores).flatten().tolist()
        [True]
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 5 or tuple(scores.shape[1:3]) != (2, 2):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"scores: expected shape (N, 2, 2, L, H), got {shape}")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance: expected a weight in [0, 1), got {tolerance}")
    margin = scores[:, :, 0] - scores[:, :, 1]  # (N, 2, 2, L, H) -> (N, 2, L, H)
    return margin[:, 0] - margin[:, 1] > tolerance  # (N, L, H)


def best_head(correct: torch.Tensor, pair_indices: Sequence[int]) -> tuple[int, int]:
    """The (layer, head) with the most correct pairs among ``pair_indices`` (the first on ties).

    Shape:
        correct: bool (N, L, H), as from :func:`pair_correct`.

    Examples:
        >>> correct = torch.zeros(4, 2, 3, dtype=torch.bool)
        >>> correct[:2, 1, 2] = True
        >>> best_head(correct, [0, 1])
        (1, 2)
    """
    if not isinstance(correct, torch.Tensor) or correct.ndim != 3:
        raise ValueError("correct: expected a bool tensor (N, L, H)")
    indices = list(pair_indices)
    if not indices or not all(isinstance(i, int) and 0 <= i < correct.shape[0] for i in indices):
        raise ValueError(f"pair_indices: expected a non-empty list of ints in [0, {correct.shape[0]})")
    counts = correct[indices].sum(dim=0)  # (n, L, H) -> (L, H)
    layer, head = divmod(int(counts.flatten().argmax()), correct.shape[2])
    return layer, head


def binomial_p_value(successes: int, trials: int, p: float = 0.5) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p): how often chance does at least this well.

    Examples:
        >>> binomial_p_value(10, 10)
        0.0009765625
        >>> binomial_p_value(0, 10)
        1.0
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials: expected an int >= 1, got {trials!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= trials:
        raise ValueError(f"successes: expected an int in [0, {trials}], got {successes!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability in (0, 1), got {p}")
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1))


# ---------------------------------------------------------------- relations between words

Word = str | tuple[str, int]  # a word, or (word, occurrence) for a later occurrence (0 = the first)


@dataclasses.dataclass(frozen=True)
class Relation:
    """One case of a relation between two words of a sentence: the query word should attend to the target.

    Positions are token positions in ``tokenizer.encode(text)`` (``[CLS]`` is 0), as in the rows
    and columns of the model's attention; a word cut into pieces has one position per piece.

    Examples:
        >>> Relation(sentence=0, query=(1,), target=(3, 4))  # "the" -> a noun of two pieces
        Relation(sentence=0, query=(1,), target=(3, 4))
    """

    sentence: int  # which sentence of the batch
    query: tuple[int, ...]  # positions of the attending word's pieces
    target: tuple[int, ...]  # positions of the pieces of the word it should attend to

    def __post_init__(self) -> None:
        for name in ("query", "target"):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and value and all(isinstance(p, int) and p > 0 for p in value)):
                raise ValueError(f"{name}: expected a non-empty tuple of positions > 0, got {value!r}")
        if set(self.query) & set(self.target):
            raise ValueError(f"query and target overlap: {self.query} and {self.target}")


def _resolve(tokenizer: WordPieceTokenizer, text: str, word: Word) -> list[int]:
    """The positions of ``word`` (a str, or (str, occurrence)) in ``tokenizer.encode(text)``."""
    if isinstance(word, tuple) and len(word) == 2:
        return word_positions(tokenizer, text, word[0], occurrence=word[1])
    return word_positions(tokenizer, text, word)


def annotate(
    tokenizer: WordPieceTokenizer, texts: Sequence[str], pairs: Sequence[Sequence[tuple[Word, Word]]]
) -> list[Relation]:
    """Relations written by hand as words: ``pairs[i]`` lists the (query word, target word) of ``texts[i]``.

    A word is a str (its first occurrence in the sentence) or ``(str, k)`` for its occurrence k
    (0 = the first), such as ``("the", 1)`` for the second "the".

    Args:
        tokenizer: the model's tokenizer.
        texts: the B sentences.
        pairs: for each sentence, a list of (query word, target word); it may be empty.

    Returns:
        One :class:`Relation` per pair, sentence by sentence.

    Examples:
        >>> specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        >>> tok = WordPieceTokenizer(specials + ["the", "dog", "saw", "cat", "play", "##ing", "."])
        >>> annotate(tok, ["The dog saw the playing cat."], [[(("the", 1), "cat"), ("cat", "saw")]])
        [Relation(sentence=0, query=(4,), target=(7,)), Relation(sentence=0, query=(7,), target=(3,))]
    """
    if isinstance(texts, str) or len(texts) != len(pairs):
        raise ValueError("texts and pairs: expected two lists of the same length, one entry per sentence")
    relations = []
    for b, (text, sentence_pairs) in enumerate(zip(texts, pairs, strict=True)):
        for query, target in sentence_pairs:
            relations.append(
                Relation(b, tuple(_resolve(tokenizer, text, query)), tuple(_resolve(tokenizer, text, target)))
            )
    return relations


def word_piece_relations(tokenizer: WordPieceTokenizer, texts: Sequence[str]) -> list[Relation]:
    """For every word cut into several WordPiece pieces: each piece -> the other pieces of its word.

    Args:
        tokenizer: the model's tokenizer.
        texts: the B sentences.

    Returns:
        One :class:`Relation` per piece of every word of two pieces or more, sentence by sentence.

    Examples:
        >>> specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        >>> tok = WordPieceTokenizer(specials + ["it", "was", "play", "##ing", "."])
        >>> word_piece_relations(tok, ["It was playing."])
        [Relation(sentence=0, query=(3,), target=(4,)), Relation(sentence=0, query=(4,), target=(3,))]
    """
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of sentences, got one str")
    relations = []
    for b, text in enumerate(texts):
        words: list[list[int]] = []  # the positions of each word's pieces; position 0 is [CLS]
        for position, token in enumerate(tokenizer.tokenize(text), start=1):
            if token.startswith("##") and words:
                words[-1].append(position)  # a piece that continues the word before it
            else:
                words.append([position])
        for pieces in words:
            if len(pieces) > 1:
                relations += [Relation(b, (p,), tuple(q for q in pieces if q != p)) for p in pieces]
    return relations


def most_attended(
    weights: Sequence[torch.Tensor] | torch.Tensor,
    relations: Sequence[Relation],
    attention_mask: torch.Tensor,
    return_margin: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The token each head attends to most from each relation's query word.

    The query word's rows are averaged over its pieces (as in :func:`attention_from_to`); the
    most-attended key is then chosen among the sentence's real tokens other than ``[CLS]``,
    ``[SEP]`` and the query word itself: heads with nothing to do park their weight on
    ``[CLS]`` or ``[SEP]``, and a word attending to itself says nothing about a relation.

    Args:
        weights: the model's attention, L tensors (B, H, T, T) or one tensor (L, B, H, T, T).
        relations: the N relations; ``relation.sentence`` indexes the batch.
        attention_mask: (B, T), 1 on the real tokens (``[CLS]`` first, ``[SEP]`` last), 0 on padding.
        return_margin: also return by how much the chosen token's weight beats the runner-up's,
            to check that no choice rests on a near-tie. Default: False.

    Shape:
        Returns a LongTensor (N, L, H) of key positions; with ``return_margin``, also a tensor
        (N, L, H) of weight differences (0 when only one token is a candidate).

    Examples:
        >>> w = torch.zeros(1, 1, 1, 5, 5)  # (L, B, H, T, T): [CLS] a b c [SEP]
        >>> w[0, 0, 0, 1] = torch.tensor([0.5, 0.0, 0.1, 0.3, 0.1])  # from "a": mostly [CLS], then c
        >>> most_attended(w, [Relation(0, (1,), (2,))], torch.ones(1, 5)).flatten().tolist()
        [3]
        >>> _, margin = most_attended(w, [Relation(0, (1,), (2,))], torch.ones(1, 5), return_margin=True)
        >>> round(margin.item(), 6)  # c (0.3) beats b (0.1)
        0.2
    """
    stacked = _stack_weights(weights)  # (L, B, H, T, T)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != stacked.shape[1:4:2]:
        expected = (stacked.shape[1], stacked.shape[3])  # (B, T)
        raise ValueError(f"attention_mask: expected a tensor of shape (B, T) = {expected}")
    lengths = attention_mask.sum(dim=1).tolist()  # real tokens of each sentence, [CLS] and [SEP] included
    result = torch.empty(len(relations), stacked.shape[0], stacked.shape[2], dtype=torch.long)
    margin = torch.zeros(result.shape, dtype=stacked.dtype)
    for n, relation in enumerate(relations):
        length = int(lengths[relation.sentence])
        if max(relation.query + relation.target) >= length - 1:
            raise ValueError(f"relations[{n}]: positions beyond the sentence's last word ({length - 2})")
        rows = stacked[:, relation.sentence][:, :, list(relation.query), :length].mean(dim=2)  # (L, H, T')
        candidates = torch.ones(length, dtype=torch.bool)
        candidates[[0, length - 1, *relation.query]] = False  # not [CLS], [SEP] or the query itself
        rows = rows.masked_fill(~candidates, float("-inf"))
        result[n] = rows.argmax(dim=-1)  # (L, H, T') -> (L, H)
        if return_margin and int(candidates.sum()) > 1:
            top = rows.topk(2, dim=-1).values  # (L, H, 2): the two largest candidate weights
            margin[n] = top[..., 0] - top[..., 1]
    return (result, margin) if return_margin else result


def relation_hits(
    weights: Sequence[torch.Tensor] | torch.Tensor,
    relations: Sequence[Relation],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Does each head attend most to the relation's target (to any of its pieces)?

    Args:
        weights: the model's attention, L tensors (B, H, T, T) or one tensor (L, B, H, T, T).
        relations: the N relations.
        attention_mask: (B, T), 1 on the real tokens.

    Shape:
        Returns a bool tensor (N, L, H), like :func:`pair_correct`, so that :func:`best_head`
        chooses a head on some relations and the others test it.

    Examples:
        >>> w = torch.zeros(1, 1, 2, 5, 5)  # (L, B, H, T, T): two heads
        >>> w[0, 0, 0, 1, 2] = 1.0  # head 0: from position 1 to position 2
        >>> w[0, 0, 1, 1, 3] = 1.0  # head 1: from position 1 to position 3
        >>> relation_hits(w, [Relation(0, (1,), (3,))], torch.ones(1, 5)).tolist()
        [[[False, True]]]
    """
    chosen = most_attended(weights, relations, attention_mask)  # (N, L, H)
    return torch.stack([torch.isin(chosen[n], torch.tensor(r.target)) for n, r in enumerate(relations)])


def offset_hits(relations: Sequence[Relation], offsets: Sequence[int]) -> torch.Tensor:
    """The positional baseline: would the rule "attend to the token k places away" hit the target?

    Offset k > 0 counts from the query word's last piece (k = 1: the next token), k < 0 from its
    first piece (k = -1: the previous token). A head that follows one of these rules is a
    positional head; a relation is only worth crediting to a head that beats all of them.

    Args:
        relations: the N relations.
        offsets: the K offsets to try (non-zero ints).

    Shape:
        Returns a bool tensor (N, K).

    Examples:
        >>> r = [Relation(0, (1,), (3,)), Relation(0, (4,), (3,))]
        >>> offset_hits(r, [-1, 1, 2]).tolist()
        [[False, False, True], [True, False, False]]
    """
    if not offsets or not all(isinstance(k, int) and not isinstance(k, bool) and k != 0 for k in offsets):
        raise ValueError(f"offsets: expected non-zero ints, got {list(offsets)}")
    hits = torch.zeros(len(relations), len(offsets), dtype=torch.bool)
    for n, relation in enumerate(relations):
        for i, k in enumerate(offsets):
            hits[n, i] = (relation.query[-1] + k if k > 0 else relation.query[0] + k) in relation.target
    return hits
