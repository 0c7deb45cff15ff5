"""Checkers of chapter 6's exercises: a GRU run from its equations, a decoder layer assembled from
the package's parts, and greedy decoding that stops each row at an end symbol.

- ``ch6-gru``: the student's ``gru_run`` against ``torch.nn.GRUCell`` stepped in a loop (forwards,
  and backwards as the second direction of a bidirectional GRU reads), at sizes the chapter does not
  use. ``torch.nn.GRU`` and ``GRUCell`` are refused while the student's function runs.
- ``ch6-decoder-layer``: the student's class gets the weights of a seeded
  :class:`~transformer_course.decoder.DecoderLayer` (layer norms' gamma and beta away from 1 and 0,
  so that a norm in the wrong place shows) and is compared with it on padded memories, post-LN and
  pre-LN. The layer's plausible mistakes are recomputed from the reference layer's own modules
  (:func:`decoder_layer_variant`), so that each gets its own hint.
- ``ch6-greedy``: the student's ``greedy(model, source, length, end)`` against the greedy decoding
  of :func:`~transformer_course.seq2seq.greedy_decode` with every row stopped at its first ``end``
  and padded with :data:`PAD` after it, on small untrained models of both families, other alphabets
  and lengths; the decoder's runs are counted, and must stop once every row has finished.

Weights are drawn from fixed seeds inside ``torch.random.fork_rng``, so that checking never moves
the chapter's random stream. The untrained seq2seq models' weights are scaled up
(:data:`_WEIGHT_SCALE`) so that their output changes from one position to the next, as a trained
model's would: feeding back the wrong thing then shows.

The cases (:data:`GRU_CASES`, :data:`LAYER_CASES`, :data:`GREEDY_CASES`), the models and sources
the greedy check builds (:func:`seeded_model`, :func:`seeded_source`), its reference
(:func:`greedy_until_end`) and the variants of the decoder layer are public: the tests read them to
show that the cases cover what the exercises promise and that every mistake is told apart.
"""

from __future__ import annotations

import itertools
from unittest import mock

import torch
from torch import nn

from .. import decoder, seq2seq
from ._core import NotYet, checker, close, expect

# ---------------------------------------------------------------- ch6-gru

# (B, T, input width, N_h, seed, reverse): sizes the chapter does not use; a single step (T = 1)
# and a batch of one among them; both directions.
GRU_CASES = (
    (3, 6, 5, 4, 31, False),
    (2, 7, 3, 6, 32, True),
    (4, 1, 6, 3, 33, False),
    (1, 9, 2, 5, 34, True),
)
GRU_ORDER = "rzn"  # torch.nn.GRU's order of the three blocks of rows in weight_ih and weight_hh


def gru_weights(input_size: int, N_h: int, seed: int) -> dict[str, torch.Tensor]:
    """The weights of a seeded ``torch.nn.GRUCell(input_size, N_h)``, doubled so that every gate matters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cell = nn.GRUCell(input_size, N_h)
    return {name: 2 * parameter.detach().clone() for name, parameter in cell.named_parameters()}


def gru_reference(x: torch.Tensor, h: torch.Tensor, weights: dict[str, torch.Tensor],
                  reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.GRUCell`` with ``weights``, stepped over x (forwards, or backwards with ``reverse``).

    Shape:
        x (B, T, I), h (B, N_h) -> outputs (B, T, N_h) (outputs[:, t]: the state after reading x_t),
        final (B, N_h)
    """
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten anyway
        cell = nn.GRUCell(x.shape[-1], h.shape[-1])
    with torch.no_grad():
        for name, value in weights.items():
            getattr(cell, name).copy_(value)
        outputs = [None] * x.shape[1]
        for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
            h = cell(x[:, t], h)
            outputs[t] = h
    return torch.stack(outputs, dim=1), h


def gru_variant(x: torch.Tensor, h: torch.Tensor, weights: dict[str, torch.Tensor], *, order: str = GRU_ORDER,
                reset: str = "torch", update: str = "torch", reverse: bool = False,
                realign: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A GRU written out with one of the plausible mistakes, for the hints.

    ``order``: the order in which the blocks of rows are read as r, z, n; ``reset``: ``"torch"``
    (r multiplies W_hn h + b_hn), ``"before"`` (r multiplies h before W_hn, as Cho et al. 2014) or
    ``"no bias"`` (r multiplies W_hn h only); ``update``: ``"torch"`` (z keeps the old state) or
    ``"swapped"``; ``realign=False`` leaves a backward run's outputs in the order they were made.
    """
    W_i, W_h, b_i, b_h = (dict(zip(order, weights[name].chunk(3, dim=0), strict=True))
                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    steps = list(reversed(range(x.shape[1]))) if reverse else list(range(x.shape[1]))
    outputs = []
    for t in steps:
        x_t = x[:, t]
        r = torch.sigmoid(x_t @ W_i["r"].T + b_i["r"] + h @ W_h["r"].T + b_h["r"])
        z = torch.sigmoid(x_t @ W_i["z"].T + b_i["z"] + h @ W_h["z"].T + b_h["z"])
        read = x_t @ W_i["n"].T + b_i["n"]
        if reset == "before":
            n = torch.tanh(read + (r * h) @ W_h["n"].T + b_h["n"])
        elif reset == "no bias":
            n = torch.tanh(read + r * (h @ W_h["n"].T) + b_h["n"])
        else:
            n = torch.tanh(read + r * (h @ W_h["n"].T + b_h["n"]))
        h = z * n + (1 - z) * h if update == "swapped" else (1 - z) * n + z * h
        outputs.append(h)
    if reverse and realign:
        outputs.reverse()
    return torch.stack(outputs, dim=1), h


def _refuse_torch_gru(*args, **kwargs):
    """Stands in for torch.nn.GRU's and GRUCell's forward while the student's function runs."""
    raise NotYet("your function runs torch.nn.GRU or torch.nn.GRUCell: write the step from the equations")


def _gru_inputs(B: int, T: int, input_size: int, N_h: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, input_size) and an initial state (B, N_h)."""
    generator = torch.Generator().manual_seed(500 + seed)
    return torch.randn(B, T, input_size, generator=generator), torch.randn(B, N_h, generator=generator)


@checker("ch6-gru")
def check_gru(gru_run) -> None:
    """``gru_run(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reverse)`` against GRUCell in a loop."""
    for B, T, input_size, N_h, seed, reverse in GRU_CASES:
        weights = gru_weights(input_size, N_h, seed)
        x, h = _gru_inputs(B, T, input_size, N_h, seed)
        outputs, final = gru_reference(x, h, weights, reverse)
        where = f"for B={B}, T={T}, input width {input_size}, N_h={N_h}, reverse={reverse}:"
        with mock.patch.object(nn.GRUCell, "forward", _refuse_torch_gru), \
                mock.patch.object(nn.GRU, "forward", _refuse_torch_gru), torch.no_grad():
            answer = gru_run(x.clone(), h.clone(), *(weights[name].clone() for name in
                                                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
                             reverse=reverse)
        expect(isinstance(answer, tuple) and len(answer) == 2,
               "gru_run should return two tensors: (outputs, final)")
        answer_outputs, answer_final = answer
        for value, name, shape in ((answer_outputs, "outputs", (B, T, N_h)),
                                   (answer_final, "final", (B, N_h))):
            expect(isinstance(value, torch.Tensor),
                   f"{name} should be a torch.Tensor, got {type(value).__name__}")
            expect(tuple(value.shape) == shape,
                   f"{where} {name} should have shape {shape}, got {tuple(value.shape)}")
        if close(answer_outputs, outputs) and close(answer_final, final):
            continue
        _diagnose_gru(answer_outputs, answer_final, x, h, weights, reverse, where)


def _diagnose_gru(answer_outputs, answer_final, x, h, weights, reverse, where) -> None:
    """Raise NotYet with the hint of the mistake that explains the student's GRU, or a general one."""
    def matches(**kwargs) -> bool:
        outputs, final = gru_variant(x, h, weights, reverse=reverse, **kwargs)
        return close(answer_outputs, outputs, 1e-4) and close(answer_final, final, 1e-4)

    orders = ("".join(order) for order in itertools.permutations(GRU_ORDER))
    if any(matches(order=order) for order in orders if order != GRU_ORDER):
        raise NotYet("your gates read the wrong blocks of rows: check in which order torch.nn.GRU stacks the "
                     "three blocks of weight_ih and weight_hh (the chapter's section on the GRU says)")
    if matches(reset="before"):
        raise NotYet("your reset gate multiplies h before the recurrent matrix, as the 2014 paper writes it: "
                     "check where torch.nn.GRU's candidate applies r")
    if matches(reset="no bias"):
        raise NotYet("your reset gate multiplies W_hn h but not its bias b_hn: check what r multiplies in "
                     "the candidate's equation")
    if matches(update="swapped"):
        raise NotYet("your update gate weighs the two states the other way round: with z near 1, which one "
                     "should the new state keep?")
    if reverse:
        unaligned, _ = gru_variant(x, h, weights, reverse=True, realign=False)
        if close(answer_outputs, unaligned, 1e-4):
            raise NotYet(f"{where} outputs[:, t] should be the state after reading x_t; yours are in the "
                         "order the steps were taken")
        forwards, forwards_final = gru_variant(x, h, weights)
        if close(answer_outputs, forwards, 1e-4) or close(answer_final, forwards_final, 1e-4):
            raise NotYet(f"{where} with reverse=True the GRU reads x from the last position to the first")
    if close(answer_outputs, gru_variant(x, h, weights, reverse=reverse)[0], 1e-4):
        raise NotYet(f"{where} your outputs are right but final is not: final is the state after the "
                     "last step")
    raise NotYet(f"{where} your states differ from torch.nn.GRUCell's: compute one step by hand for "
                 "T = 1 and compare r, z and n with the equations one by one")


# ---------------------------------------------------------------- ch6-decoder-layer

# (d_model, num_heads, d_ff, B, Tq, Tk, seed): sizes the chapter never shows, Tq != Tk mostly, a
# single head in one; never B == Tq, so that a (Tq, Tq) mask cannot pass for a (B, Tk) one.
LAYER_CASES = ((24, 3, 40, 3, 6, 9, 41), (40, 5, 72, 2, 11, 7, 42), (16, 1, 24, 4, 5, 5, 43))
SUBLAYERS = ("self", "cross", "feed_forward")  # the order of a decoder layer's sub-layers


def seeded_decoder_layer(d_model: int, num_heads: int, d_ff: int, norm_first: bool,
                         seed: int) -> decoder.DecoderLayer:
    """A package DecoderLayer without dropout, in eval mode, its weights and norms drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = decoder.DecoderLayer(d_model, num_heads, d_ff, dropout=0.0, norm_first=norm_first)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2, layer.norm3):  # gamma, beta away from 1 and 0
            norm.weight.copy_(1 + 0.5 * torch.randn(d_model, generator=generator))
            norm.bias.copy_(0.5 * torch.randn(d_model, generator=generator))
    return layer.eval()


def layer_inputs(d_model: int, B: int, Tq: int, Tk: int, seed: int) -> tuple[torch.Tensor, ...]:
    """x (B, Tq, D), memory (B, Tk, D) and its padding mask (B, Tk) (row 0 full, others shorter)."""
    generator = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(B, Tq, d_model, generator=generator)
    memory = torch.randn(B, Tk, d_model, generator=generator)
    lengths = torch.randint(1, Tk, (B,), generator=generator)
    lengths[0] = Tk
    return x, memory, torch.arange(Tk)[None, :] < lengths[:, None]


def decoder_layer_variant(layer: decoder.DecoderLayer, x: torch.Tensor, memory: torch.Tensor,
                          memory_mask: torch.Tensor | None, *, norm_first: bool | None = None,
                          causal: bool = True, cross_from: str = "memory", residual: tuple = (1, 1, 1),
                          order: tuple = SUBLAYERS, norms_follow: str = "sublayer") -> torch.Tensor:
    """``layer``'s forward pass recomputed from its modules, with one of the plausible mistakes.

    ``cross_from="decoder"``: cross-attention takes its keys and values from x; ``residual``: 1 or
    0 per sub-layer; ``order``: the order the sub-layers run in; ``norms_follow``: ``"sublayer"``
    (norm1 stays with self-attention wherever it runs) or ``"position"`` (the first sub-layer to
    run gets norm1). The defaults give the layer's own output.
    """
    norm_first = layer.norm_first if norm_first is None else norm_first
    Tq = x.shape[1]
    look_ahead = torch.ones(Tq, Tq, dtype=torch.bool).tril()[None, None] if causal else None

    def run(name: str, h: torch.Tensor) -> torch.Tensor:
        if name == "self":
            return layer.self_attn(h, attention_mask=look_ahead)[0]
        if name == "cross":
            source = memory if cross_from == "memory" else h
            mask = memory_mask if cross_from == "memory" else None
            return layer.cross_attn(h, source, source, attention_mask=mask)[0]
        return layer.feed_forward(h)

    norms = {"self": layer.norm1, "cross": layer.norm2, "feed_forward": layer.norm3}
    for position, name in enumerate(order):
        norm = norms[name] if norms_follow == "sublayer" else list(norms.values())[position]
        keep = residual[SUBLAYERS.index(name)]
        x = keep * x + run(name, norm(x)) if norm_first else norm(keep * x + run(name, x))
    return x


@checker("ch6-decoder-layer")
def check_decoder_layer(layer_class) -> None:
    """``layer_class(d_model, num_heads, d_ff, norm_first)`` against the package's layer, both placements."""
    expect(isinstance(layer_class, type) and issubclass(layer_class, nn.Module),
           "pass the class itself (a subclass of nn.Module), not an instance of it")
    for norm_first in (False, True):
        name = "pre-LN (norm_first=True)" if norm_first else "post-LN (norm_first=False)"
        for d_model, num_heads, d_ff, B, Tq, Tk, seed in LAYER_CASES:
            reference = seeded_decoder_layer(d_model, num_heads, d_ff, norm_first, seed)
            with torch.random.fork_rng(devices=[]):
                mine = layer_class(d_model, num_heads, d_ff, norm_first=norm_first)
            theirs, ours = set(reference.state_dict()), set(mine.state_dict())
            expect(ours == theirs,
                   f"the parameter names differ from decoder.DecoderLayer's: missing "
                   f"{sorted(theirs - ours)}, unexpected {sorted(ours - theirs)} (name the parts "
                   "self_attn, cross_attn, feed_forward, norm1, norm2, norm3)")
            try:
                mine.load_state_dict(reference.state_dict())
            except RuntimeError as error:
                raise NotYet(f"the weights of decoder.DecoderLayer({d_model}, {num_heads}, {d_ff}) do not "
                             f"fit your layer: {str(error).splitlines()[-1].strip()}") from None
            mine.eval()
            x, memory, memory_mask = layer_inputs(d_model, B, Tq, Tk, seed)
            with torch.no_grad():
                answer = mine(x, memory, memory_mask=memory_mask)
                if not close(answer, reference(x, memory, memory_mask)):
                    _diagnose_layer(answer, reference, x, memory, memory_mask, name)
                expect(close(mine(x, memory), reference(x, memory)),
                       f"your {name} layer is wrong when called without memory_mask")


def _diagnose_layer(answer, reference, x, memory, memory_mask, name) -> None:
    """Raise NotYet with the most specific hint for an output that differs from ``reference``'s."""
    def matches(**kwargs) -> bool:
        return close(answer, decoder_layer_variant(reference, x, memory, memory_mask, **kwargs), 1e-4)

    expect(isinstance(answer, torch.Tensor) and tuple(answer.shape) == tuple(x.shape),
           f"your layer should return one tensor of the shape of x, {tuple(x.shape)}")
    if matches(norm_first=not reference.norm_first):
        raise NotYet(f"your {name} layer computes the other placement of the norms")
    if matches(causal=False):
        raise NotYet(f"in your {name} layer, each position's self-attention also sees the positions after "
                     "it: the decoder must not read the symbols it is about to predict")
    if matches(cross_from="decoder"):
        raise NotYet(f"your {name} layer's cross-attention takes its keys and values from the decoder's own "
                     "states: which tensor should the decoder read there?")
    if close(answer, reference(x, memory), 1e-4):
        raise NotYet(f"your {name} layer ignores memory_mask: padding positions of the memory must get no "
                     "attention")
    for k, sublayer in enumerate(("self-attention", "cross-attention", "feed-forward")):
        if matches(residual=tuple(int(i != k) for i in range(3))):
            raise NotYet(f"the {sublayer} sub-layer of your {name} layer has no residual connection")
    if matches(residual=(0, 0, 0)):
        raise NotYet(f"your {name} layer has no residual connections")
    for order in itertools.permutations(SUBLAYERS):
        if order != SUBLAYERS and (matches(order=order) or matches(order=order, norms_follow="position")):
            raise NotYet(f"the sub-layers of your {name} layer run in another order than a decoder layer's")
    B, Tq, D = x.shape
    raise NotYet(f"your {name} layer differs from decoder.DecoderLayer with the same weights (d_model={D}, "
                 f"num_heads={reference.self_attn.num_heads}, B={B}, Tq={Tq}, Tk={memory.shape[1]}, padded "
                 "memory): check each sub-layer's inputs, its residual and which tensor each norm receives")


# ---------------------------------------------------------------- ch6-greedy

PAD = -1  # what a row holds after its end symbol
_WEIGHT_SCALE = 3.0  # untrained weights times this: outputs that vary with the position

# (family, seed, B, S, length, end): lengths equal to the source's, longer and shorter; batches of one
# and several sources. In the first, second and fourth case every row writes ``end`` (the second's last
# row at its last position), at different steps, and the decoder must stop early in the first and
# fourth; in the others some row, or every row, never writes it. The seeds are ones whose untrained
# model writes at least three different symbols in every row (a test pins what each case covers).
GREEDY_CASES = (
    ("gru+attention", 1, 4, 9, 9, 6),
    ("transformer", 3, 3, 7, 12, 5),
    ("gru", 4, 5, 11, 6, 0),
    ("gru+attention", 7, 1, 5, 8, 0),
    ("transformer", 22, 2, 14, 3, 4),
    ("gru", 9, 3, 4, 10, 6),
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


def greedy_until_end(
    model: nn.Module, source: torch.Tensor, length: int, end: int
) -> tuple[torch.Tensor, int]:
    """Greedy decoding with each row stopped at its first ``end`` and :data:`PAD` after it, and the
    number of decoder runs it takes (``length``, or fewer once every row has written ``end``).

    Shape:
        source (B, S) -> (B, length) symbols, an int
    """
    written = seq2seq.greedy_decode(model, source, length)  # (B, length)
    first_ends = torch.where((written == end).any(1), (written == end).long().argmax(1) + 1, length)
    return _pad_after_end(written, end), int(first_ends.max())


def _pad_after_end(symbols: torch.Tensor, end: int) -> torch.Tensor:
    """(B, n) symbols with :data:`PAD` at every position after each row's first ``end``."""
    is_end = (symbols == end).long()
    return symbols.masked_fill(is_end.cumsum(dim=1) - is_end > 0, PAD)


class _Counted:
    """A seq2seq model that counts its decoder's runs and refuses padding fed back to it."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.start, self.num_symbols, self.runs = model, model.start, model.num_symbols, 0

    def encode(self, source):
        return self.model.encode(source)

    def decode(self, memory, decoder_input, *args, **kwargs):
        self.runs += 1
        if isinstance(decoder_input, torch.Tensor) and (decoder_input < 0).any():
            raise NotYet(f"your decoder was fed the padding {PAD}: the decoder reads symbols only; what does "
                         "a finished row need the decoder for?")
        return self.model.decode(memory, decoder_input, *args, **kwargs)

    def __call__(self, source, decoder_input):
        return self.decode(self.encode(source), decoder_input)


@checker("ch6-greedy")
def check_greedy(greedy) -> None:
    """``greedy(model, source, length, end)`` against :func:`greedy_until_end` on small untrained models."""
    for family, seed, B, S, length, end in GREEDY_CASES:
        model = seeded_model(family, seed)
        source = seeded_source(model, B, S, seed)
        where = f"for a {family} model, {B} source(s) of length {S}, length={length} and end={end},"
        with torch.no_grad():
            expected, runs = greedy_until_end(model, source, length, end)
            counted = _Counted(model)
            answer = greedy(counted, source.clone(), length, end)
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
                expect(counted.runs <= runs,
                       f"{where} your decoder ran {counted.runs} times, but every row had written end "
                       f"after {runs} steps: stop once no row is left to write")
                continue
            _diagnose_greedy(answer, expected, model, source, length, end, where)


def _diagnose_greedy(answer, expected, model, source, length, end, where) -> None:
    """Raise NotYet with the hint of the mistake that explains the student's symbols, or a general one."""
    B, S = source.shape
    plain = seq2seq.greedy_decode(model, source, length)
    if torch.equal(answer, plain):
        raise NotYet(f"{where} your rows go on after their end symbol: every position after a row's first "
                     f"end should hold {PAD}")
    if torch.equal(answer, expected.masked_fill(expected == end, PAD)):
        raise NotYet(f"{where} keep each row's end symbol itself; only the positions after it hold {PAD}")
    ends = (plain == end).any(1)  # (B,): rows that write end
    if ends.any():
        stop = int(((plain == end).long().argmax(1) + 1)[ends].min())  # the step the first row ends at
        cut = expected.clone()
        cut[:, stop:] = PAD
        if not torch.equal(cut, expected) and torch.equal(answer, cut):
            raise NotYet(f"{where} your rows stop when the first row has finished; a row stops at "
                         "its own end")
    memory = model.encode(source)
    forced = model.decode(memory, seq2seq.shift_right(source, model.start)).argmax(-1)  # (B, S)
    if S == length and (torch.equal(answer, forced) or torch.equal(answer, _pad_after_end(forced, end))):
        raise NotYet("your decoder reads the source as if it were its own previous outputs (teacher "
                     "forcing); when it writes, the decoder only has the symbols it has written so far")
    first = model.decode(memory, torch.full((B, 1), model.start, dtype=torch.long))[:, -1].argmax(-1)  # (B,)
    repeated = first[:, None].expand(B, 2)  # (B, 2): the first symbol twice
    if torch.equal(answer[:, :2], repeated) and not torch.equal(expected[:, :2], repeated):
        raise NotYet(f"{where} your rows repeat one symbol: each new symbol is the prediction at the last "
                     "position of everything written so far")
    raise NotYet(f"{where} your symbols differ from greedy decoding's: check what the decoder reads at each "
                 "step, which position's prediction you keep, and where each row stops")
