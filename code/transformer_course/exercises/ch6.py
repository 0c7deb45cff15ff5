"""Checkers of chapter 6's exercises: the decoder's look-ahead mask, and greedy decoding written for
any model with ``encode``, ``decode`` and ``start``.

The mask is compared with :func:`~transformer_course.decoder.causal_mask` at lengths the chapter
does not show. Greedy decoding is compared with :func:`~transformer_course.seq2seq.greedy_decode`
on small untrained models of both families (a GRU encoder-decoder with and without attention, a
Transformer), other alphabets than the copy task's, and output lengths that differ from the
source's. Their weights are drawn from fixed seeds inside ``torch.random.fork_rng``, so that
checking never moves the chapter's random stream, and scaled up (:data:`_WEIGHT_SCALE`) so that an
untrained model's output changes from one position to the next, as a trained model's would:
feeding back the wrong thing then shows.

The cases (:data:`MASK_LENGTHS`, :data:`GREEDY_CASES`) and the models and sources the greedy check
builds for them (:func:`seeded_model`, :func:`seeded_source`) are public: the tests read them to
show that the cases cover both families and every kind of length, and that each model's output
varies.
"""

from __future__ import annotations

from unittest import mock

import torch
from torch import nn

from .. import decoder, seq2seq
from ._core import NotYet, checker, expect

# Sequence lengths T for the mask; the chapter shows T = 5. The first ones tell mistakes apart,
# T = 1 is the edge case of a single position.
MASK_LENGTHS = (6, 13, 1, 2)

_WEIGHT_SCALE = 3.0  # untrained weights times this: outputs that vary with the position

# (family, seed, B, S, length): the first case writes as many symbols as it reads, the others
# more or fewer; batches of one and several sources. The seeds are ones whose untrained model
# writes at least three different symbols in every row (a test pins this).
GREEDY_CASES = (
    ("gru+attention", 1, 4, 9, 9),
    ("transformer", 3, 3, 7, 12),
    ("gru", 4, 5, 11, 6),
    ("gru+attention", 7, 1, 5, 8),
    ("transformer", 22, 2, 14, 3),
    ("gru", 9, 3, 4, 10),
)


def seeded_model(family: str, seed: int) -> nn.Module:
    """A small untrained seq2seq model of ``family``, in eval mode, its weights drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "transformer":
            model = seq2seq.TransformerSeq2Seq(num_symbols=6, d_model=16, num_heads=2, d_ff=32,
                                               num_layers=1, max_len=16)
        else:
            model = seq2seq.GRUSeq2Seq(attention=family == "gru+attention", num_symbols=7,
                                       embed_dim=12, hidden_size=10)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(_WEIGHT_SCALE)
    return model.eval()


def seeded_source(model: nn.Module, B: int, S: int, seed: int) -> torch.Tensor:
    """(B, S) random symbols of ``model``'s alphabet."""
    generator = torch.Generator().manual_seed(100 + seed)
    return torch.randint(0, model.num_symbols, (B, S), generator=generator)


def _refuse_the_package_mask(*args, **kwargs):
    """Stands in for ``decoder.causal_mask`` while the student's function runs."""
    raise NotYet("your function calls decoder.causal_mask: write the mask with torch only")


@checker("ch6-causal-mask")
def check_causal_mask(look_ahead_mask) -> None:
    """``look_ahead_mask(T)`` against ``decoder.causal_mask(T)`` at lengths the chapter does not use.
    The package's own mask is not an answer: the exercise asks for torch only."""
    expect(look_ahead_mask is not decoder.causal_mask,
           "that is the package's decoder.causal_mask itself: write the mask with torch only")
    masks = {T: decoder.causal_mask(T) for T in MASK_LENGTHS}
    with mock.patch.object(decoder, "causal_mask", _refuse_the_package_mask):
        answers = {T: look_ahead_mask(T) for T in MASK_LENGTHS}
    for T in MASK_LENGTHS:
        answer = answers[T]
        expect(isinstance(answer, torch.Tensor),
               f"look_ahead_mask should return a torch.Tensor, got {type(answer).__name__}")
        expect(tuple(answer.shape) == (T, T),
               f"look_ahead_mask({T}) should have shape (T, T) = ({T}, {T}), got {tuple(answer.shape)}")
        expected = masks[T]
        if answer.dtype != torch.bool:
            if torch.equal(answer.detach().cpu() != 0, expected):
                raise NotYet(f"the pattern is right, but the tensor's dtype is {answer.dtype}: a mask "
                             "in this book is a tensor of dtype torch.bool (True = may attend)")
            raise NotYet(f"return a tensor of dtype torch.bool (True = may attend), got {answer.dtype}")
        answer = answer.detach().cpu()
        if torch.equal(answer, expected):
            continue
        if torch.equal(answer, expected.T):
            raise NotYet("with your mask each position sees the positions after it and none before: "
                         "in mask[i, j], i is the query (the position that attends) and j the key")
        if torch.equal(answer, ~expected):
            raise NotYet("your mask is True where attending is forbidden; in this book True means "
                         "'may attend' (the opposite of torch.nn.MultiheadAttention's attn_mask)")
        if torch.equal(answer, expected.tril(-1)):
            raise NotYet("look at the diagonal: with your mask the first position has no key at all "
                         "to attend to, so its softmax has nothing to spread over")
        raise NotYet(f"look_ahead_mask({T}) is not the look-ahead mask: write out the mask for three "
                     "positions by hand, one row per query, and compare it with yours")


@checker("ch6-greedy")
def check_greedy(greedy) -> None:
    """``greedy(model, source, length)`` against ``seq2seq.greedy_decode`` on small untrained models."""
    for family, seed, B, S, length in GREEDY_CASES:
        model = seeded_model(family, seed)
        source = seeded_source(model, B, S, seed)
        where = f"for a {family} model, {B} source(s) of length {S} and length={length},"
        with torch.no_grad():
            expected = seq2seq.greedy_decode(model, source, length)
            answer = greedy(model, source.clone(), length)
            expect(isinstance(answer, torch.Tensor),
                   f"greedy should return a torch.Tensor of symbols, got {type(answer).__name__}")
            expect(not answer.is_floating_point(),
                   f"greedy should return symbol ids (integers), got a tensor of dtype {answer.dtype}: "
                   "which symbol does each score vector pick?")
            answer = answer.detach().cpu()
            if tuple(answer.shape) == (B, length + 1) and (answer[:, 0] == model.start).all():
                raise NotYet("your result begins with a token the model did not write: return only "
                             "the symbols it wrote, (B, length)")
            if answer.ndim == 2 and answer.shape[0] == B and answer.shape[1] in (length - 1, length + 1):
                raise NotYet(f"{where} your result has {answer.shape[1]} symbols per row: count the "
                             "steps of your loop (one new symbol per step, length in all)")
            expect(tuple(answer.shape) == (B, length),
                   f"{where} expected shape (B, length) = ({B}, {length}), got {tuple(answer.shape)}")
            if torch.equal(answer, expected):
                continue
            memory = model.encode(source)
            forced = model.decode(memory, seq2seq.shift_right(source, model.start)).argmax(-1)  # (B, S)
            if S == length and torch.equal(answer, forced):
                raise NotYet("your decoder reads the source as if it were its own previous outputs "
                             "(teacher forcing); when it writes, the decoder only has the symbols it "
                             "has written so far")
            start = torch.full((B, 1), model.start, dtype=torch.long)
            first = model.decode(memory, start)[:, -1].argmax(-1)  # (B,): the first symbol written
            if torch.equal(answer, first[:, None].expand(B, length)):
                raise NotYet(f"{where} your rows repeat one symbol: each new symbol is the prediction "
                             "at the last position of everything written so far")
        raise NotYet(f"{where} your symbols differ from greedy decoding's: check what the decoder "
                     "reads at each step and which position's prediction you keep")
