"""Chapter 6's exercise checkers: the instructor's solutions pass, plausible wrong answers get a
hint that does not give the answer away, and the student notebook's stubs are "not attempted yet"."""

from __future__ import annotations

import pytest
import torch
from conftest import exercise_stub, solution_namespace
from torch import nn

from transformer_course import attention, decoder, encoder, seq2seq
from transformer_course.exercises import evaluate
from transformer_course.exercises.ch6 import (
    GREEDY_CASES,
    GRU_CASES,
    LAYER_CASES,
    PAD,
    decoder_layer_variant,
    greedy_until_end,
    gru_reference,
    gru_weights,
    layer_inputs,
    seeded_decoder_layer,
    seeded_model,
    seeded_source,
)

CHAPTER = "06_encoder_at_work"


@pytest.fixture(scope="module")
def gru_solution():
    return solution_namespace(CHAPTER, "ch6-gru")["gru_run"]


@pytest.fixture(scope="module")
def layer_solution():
    return solution_namespace(CHAPTER, "ch6-decoder-layer")["MyDecoderLayer"]


@pytest.fixture(scope="module")
def greedy_solution():
    return solution_namespace(CHAPTER, "ch6-greedy")["greedy"]


def assert_not_yet(verdict, *forbidden: str) -> None:
    """A "not yet" verdict whose hint is non-empty and contains none of the ``forbidden`` texts."""
    assert verdict.status == "not yet", verdict
    assert verdict.hint
    for text in forbidden:
        assert text not in verdict.hint, (text, verdict.hint)


# ---------------------------------------------------------------- ch6-gru


def gru_with(order="rzn", reset="torch", update="torch", realign=True, ignore_reverse=False, final="last"):
    """A GRU run written by a student, with the chosen mistake."""

    def gru_run(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reverse=False):
        blocks = [dict(zip(order, w.chunk(3), strict=True)) for w in (weight_ih, weight_hh, bias_ih, bias_hh)]
        (W_i, W_h, b_i, b_h), T = blocks, x.shape[1]
        steps = list(range(T))[::-1] if reverse and not ignore_reverse else list(range(T))
        outputs, first = [], h
        for t in steps:
            r = torch.sigmoid(x[:, t] @ W_i["r"].T + b_i["r"] + h @ W_h["r"].T + b_h["r"])
            z = torch.sigmoid(x[:, t] @ W_i["z"].T + b_i["z"] + h @ W_h["z"].T + b_h["z"])
            if reset == "before":
                n = torch.tanh(x[:, t] @ W_i["n"].T + b_i["n"] + (r * h) @ W_h["n"].T + b_h["n"])
            elif reset == "no bias":
                n = torch.tanh(x[:, t] @ W_i["n"].T + b_i["n"] + r * (h @ W_h["n"].T) + b_h["n"])
            else:
                n = torch.tanh(x[:, t] @ W_i["n"].T + b_i["n"] + r * (h @ W_h["n"].T + b_h["n"]))
            h = z * n + (1 - z) * h if update == "swapped" else (1 - z) * n + z * h
            outputs.append(h)
        if reverse and realign and not ignore_reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=1), (first if final == "initial" else h)

    return gru_run


def test_gru_solution_is_correct(gru_solution):
    assert evaluate("ch6-gru", gru_solution).correct


def test_gru_solution_equals_torch_gru_both_directions(gru_solution):
    # The reference the checker uses (GRUCell stepped in a loop) is a bidirectional nn.GRU's two halves.
    torch.manual_seed(0)
    gru = nn.GRU(3, 5, batch_first=True, bidirectional=True)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        outputs, finals = gru(x)
        for direction, suffix in enumerate(("", "_reverse")):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            weights = [getattr(gru, f"{name}_l0{suffix}") for name in names]
            mine, final = gru_solution(x, torch.zeros(2, 5), *weights, reverse=bool(direction))
            assert torch.allclose(mine, outputs[..., 5 * direction:5 * (direction + 1)], atol=1e-6)
            assert torch.allclose(final, finals[direction], atol=1e-6)
            reference, _ = gru_reference(x, torch.zeros(2, 5), dict(zip(names, weights, strict=True)),
                                         reverse=bool(direction))
            assert torch.allclose(reference, mine, atol=1e-6)


def test_gru_cases_cover_both_directions_a_single_step_and_unseen_sizes():
    assert {reverse for *_, reverse in GRU_CASES} == {False, True}
    assert any(T == 1 for _, T, *_ in GRU_CASES) and any(B == 1 for B, *_ in GRU_CASES)
    assert all(N_h not in (64, 128) for _, _, _, N_h, _, _ in GRU_CASES)  # the chapter's widths
    for _, _, input_size, N_h, seed, _ in GRU_CASES:  # every gate and bias matters
        assert all(w.abs().max() > 0.3 for w in gru_weights(input_size, N_h, seed).values())


@pytest.mark.parametrize(
    ("wrong", "hint_word"),
    [
        (gru_with(order="zrn"), "order"),
        (gru_with(order="nzr"), "order"),
        (gru_with(reset="before"), "before the recurrent matrix"),
        (gru_with(reset="no bias"), "bias"),
        (gru_with(update="swapped"), "other way round"),
        (gru_with(realign=False), "order the steps were taken"),
        (gru_with(ignore_reverse=True), "last position to the first"),
        (gru_with(final="initial"), "final"),
    ],
    ids=["gate-order-zrn", "gate-order-nzr", "reset-before", "reset-no-bias", "update-swapped",
         "reverse-not-realigned", "reverse-ignored", "final-initial"],
)
def test_gru_rejects_wrong_steps(wrong, hint_word):
    verdict = evaluate("ch6-gru", wrong)
    assert_not_yet(verdict, "r * (h", "(1 - z)", "r, z, n", "reset, update and candidate")
    assert hint_word in verdict.hint


def test_gru_refuses_torch_s_own_gru():
    def borrowed(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reverse=False):
        cell = nn.GRUCell(x.shape[-1], h.shape[-1])
        states = []
        for t in range(x.shape[1]):
            h = cell(x[:, t], h)
            states.append(h)
        return torch.stack(states, 1), h

    original = nn.GRUCell.forward
    verdict = evaluate("ch6-gru", borrowed)
    assert verdict.status == "not yet" and "equations" in verdict.hint
    assert nn.GRUCell.forward is original  # restored after the check


def test_gru_rejects_a_single_tensor():
    verdict = evaluate("ch6-gru", lambda x, h, *weights, reverse=False: x)
    assert_not_yet(verdict)
    assert "(outputs, final)" in verdict.hint


def test_gru_stub_is_not_attempted():
    assert evaluate("ch6-gru", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch6-decoder-layer


class WrongDecoderLayer(nn.Module):
    """A decoder layer with the right parts and one mistake in ``forward``, chosen by ``MISTAKE``."""

    MISTAKE = ""

    def __init__(self, d_model, num_heads, d_ff, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = attention.MultiHeadAttention(d_model, num_heads)
        self.cross_attn = attention.MultiHeadAttention(d_model, num_heads)
        self.feed_forward = encoder.FeedForward(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))

    def forward(self, x, memory, memory_mask=None):
        mistake = self.MISTAKE
        look_ahead = None if mistake == "no causal mask" else decoder.causal_mask(x.shape[1])[None, None]
        source = None if mistake == "cross from decoder" else memory
        mask = None if mistake in ("ignores memory mask", "cross from decoder") else memory_mask
        sublayers = {
            "self": (lambda h: self.self_attn(h, attention_mask=look_ahead)[0], self.norm1),
            "cross": (lambda h: self.cross_attn(h, source, source, attention_mask=mask)[0], self.norm2),
            "ff": (self.feed_forward, self.norm3),
        }
        order = ("cross", "self", "ff") if mistake == "cross before self" else ("self", "cross", "ff")
        norm_first = self.norm_first != (mistake == "placements swapped")
        for name in order:
            sublayer, norm = sublayers[name]
            keep = 0 if mistake == "no residual" or mistake == f"no residual {name}" else 1
            x = keep * x + sublayer(norm(x)) if norm_first else norm(keep * x + sublayer(x))
        return x


def wrong_layer(mistake: str) -> type:
    return type(f"Wrong{mistake.title().replace(' ', '')}", (WrongDecoderLayer,), {"MISTAKE": mistake})


def test_decoder_layer_solution_is_correct(layer_solution):
    assert evaluate("ch6-decoder-layer", layer_solution).correct


def test_decoder_layer_accepts_the_reference_mistake_free():
    assert evaluate("ch6-decoder-layer", wrong_layer("")).correct


def test_decoder_layer_variant_without_mistake_is_the_package_layer():
    for norm_first in (False, True):
        for d, h, f, B, Tq, Tk, seed in LAYER_CASES:
            layer = seeded_decoder_layer(d, h, f, norm_first, seed)
            x, memory, mask = layer_inputs(d, B, Tq, Tk, seed)
            with torch.no_grad():
                assert torch.allclose(decoder_layer_variant(layer, x, memory, mask), layer(x, memory, mask),
                                      atol=1e-6)


def test_decoder_layer_cases_pad_the_memory_and_differ_from_the_chapter():
    for d, h, f, B, Tq, Tk, seed in LAYER_CASES:
        assert B != Tq and (d, h, f) != (64, 4, 256) and (d, h, f) != (16, 2, 32)
        _, _, mask = layer_inputs(d, B, Tq, Tk, seed)
        assert mask[0].all() and not mask.all()  # one full row, some padding
    assert any(Tq != Tk for *_, Tq, Tk, _ in LAYER_CASES)


@pytest.mark.parametrize(
    ("mistake", "hint_word"),
    [
        ("no causal mask", "positions after it"),
        ("cross from decoder", "keys and values"),
        ("ignores memory mask", "memory_mask"),
        ("no residual", "no residual connections"),
        ("no residual cross", "cross-attention sub-layer"),
        ("no residual ff", "feed-forward sub-layer"),
        ("cross before self", "another order"),
        ("placements swapped", "other placement"),
    ],
)
def test_decoder_layer_rejects_wrong_layers(mistake, hint_word):
    verdict = evaluate("ch6-decoder-layer", wrong_layer(mistake))
    assert_not_yet(verdict, "tril", "memory, memory")
    assert hint_word in verdict.hint


def test_decoder_layer_rejects_other_names_and_instances(layer_solution):
    class OtherNames(nn.Module):
        def __init__(self, d_model, num_heads, d_ff, norm_first=False):
            super().__init__()
            self.self_attn = attention.MultiHeadAttention(d_model, num_heads)
            self.enc_dec_attn = attention.MultiHeadAttention(d_model, num_heads)
            self.feed_forward = encoder.FeedForward(d_model, d_ff)
            self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))

    verdict = evaluate("ch6-decoder-layer", OtherNames)
    assert_not_yet(verdict)
    assert "cross_attn" in verdict.hint
    d, h, f, *_ = LAYER_CASES[0]
    assert_not_yet(evaluate("ch6-decoder-layer", layer_solution(d, h, f)))


def test_decoder_layer_stub_is_not_attempted():
    class Stub(nn.Module):
        def __init__(self, d_model, num_heads, d_ff, norm_first=False):
            super().__init__()
            self.norm_first = norm_first
            raise NotImplementedError("write this function")

    assert evaluate("ch6-decoder-layer", Stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch6-greedy


def _written(model, source, steps, position=-1):
    """The decoding loop with a choice of the position whose prediction is kept; includes the start."""
    memory = model.encode(source)
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long)
    for _ in range(steps):
        best = model.decode(memory, written)[:, position].argmax(-1, keepdim=True)
        written = torch.cat([written, best], dim=1)
    return written


def _pad_after_end(symbols, end, pad_the_end=False):
    is_end = (symbols == end).long()
    after = is_end.cumsum(1) - (0 if pad_the_end else is_end) > 0
    return symbols.masked_fill(after, PAD)


def never_stops_early(model, source, length, end):
    return _pad_after_end(_written(model, source, length)[:, 1:], end)


def no_padding(model, source, length, end):
    return _written(model, source, length)[:, 1:]


def end_padded_too(model, source, length, end):
    return _pad_after_end(_written(model, source, length)[:, 1:], end, pad_the_end=True)


def stops_at_first_finished_row(model, source, length, end):
    written = _written(model, source, length)[:, 1:]
    hits = (written == end).any(1)
    if hits.any():
        stop = int(((written == end).long().argmax(1) + 1)[hits].min())
        written[:, stop:] = PAD
    return _pad_after_end(written, end)


def feeds_padding_back(model, source, length, end):
    memory = model.encode(source)
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long)
    for _ in range(length):
        best = model.decode(memory, written)[:, -1].argmax(-1, keepdim=True)
        done = (written[:, 1:] == end).any(1, keepdim=True)
        written = torch.cat([written, best.masked_fill(done, PAD)], dim=1)
    return written[:, 1:]


def with_start_token(model, source, length, end):
    return _written(model, source, length)


def one_short(model, source, length, end):
    return _pad_after_end(_written(model, source, length - 1)[:, 1:], end)


def teacher_forced_with_source(model, source, length, end):
    return model.decode(model.encode(source), seq2seq.shift_right(source, model.start)).argmax(-1)


def first_position_kept(model, source, length, end):
    return _pad_after_end(_written(model, source, length, position=0)[:, 1:], end)


def scores_returned(model, source, length, end):
    memory, written, scores = model.encode(source), torch.full((source.shape[0], 1), model.start), []
    for _ in range(length):
        last = model.decode(memory, written)[:, -1]
        scores.append(last)
        written = torch.cat([written, last.argmax(-1, keepdim=True)], dim=1)
    return torch.stack(scores, dim=1)


def reencoded_every_step(model, source, length, end):
    """Right, only slower: runs model(source, written), which encodes again at every step."""
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long)
    for _ in range(length):
        if (written[:, 1:] == end).any(1).all():
            break
        written = torch.cat([written, model(source, written)[:, -1].argmax(-1, keepdim=True)], dim=1)
    symbols = torch.full((source.shape[0], length), PAD)
    symbols[:, :written.shape[1] - 1] = written[:, 1:]
    return _pad_after_end(symbols, end)


def test_greedy_solution_is_correct(greedy_solution):
    assert evaluate("ch6-greedy", greedy_solution).correct


def test_greedy_accepts_re_encoding_at_every_step():
    assert evaluate("ch6-greedy", reencoded_every_step).correct


def test_greedy_reference_is_greedy_decode_cut_at_end():
    model = seeded_model("gru", 4)
    source = seeded_source(model, 5, 11, 4)
    symbols, runs = greedy_until_end(model, source, 6, 0)
    plain = seq2seq.greedy_decode(model, source, 6)
    assert runs == 6 and symbols[1].tolist() == plain[1].tolist()  # row 1 never writes 0
    assert symbols[0].tolist() == plain[0, :3].tolist() + [PAD] * 3  # row 0 ends at its third symbol


def test_greedy_cases_cover_both_families_lengths_and_ways_to_end():
    families = {family for family, *_ in GREEDY_CASES}
    assert families == {"gru", "gru+attention", "transformer"}
    assert any(S == length for _, _, _, S, length, _ in GREEDY_CASES)
    assert any(S < length for _, _, _, S, length, _ in GREEDY_CASES)
    assert any(S > length for _, _, _, S, length, _ in GREEDY_CASES)
    early, some_never, none_end, uneven = 0, 0, 0, 0
    for family, seed, B, S, length, end in GREEDY_CASES:
        model = seeded_model(family, seed)
        plain = seq2seq.greedy_decode(model, seeded_source(model, B, S, seed), length)
        # Untrained models must not write one symbol everywhere, or feeding back the wrong thing
        # would go unnoticed.
        assert all(len(set(row)) >= min(3, length) for row in plain.tolist()), (family, seed)
        ends = (plain == end).any(1)
        _, runs = greedy_until_end(model, seeded_source(model, B, S, seed), length, end)
        early += runs < length
        some_never += bool(ends.any() and not ends.all())
        none_end += bool(not ends.any())
        first = (plain == end).long().argmax(1)[ends]
        uneven += len(set(first.tolist())) > 1
    assert early >= 2 and some_never >= 2 and none_end >= 1 and uneven >= 2


@pytest.mark.parametrize(
    ("wrong", "hint_word"),
    [
        (never_stops_early, "stop once"),
        (no_padding, "go on after"),
        (end_padded_too, "keep each row's end"),
        (stops_at_first_finished_row, "its own end"),
        (feeds_padding_back, "fed the padding"),
        (with_start_token, "did not write"),
        (one_short, "steps of your loop"),
        (teacher_forced_with_source, "teacher forcing"),
        (first_position_kept, "differ"),
        (scores_returned, "integers"),
    ],
    ids=["never-stops-early", "no-padding", "end-padded", "first-row-stops-all", "padding-fed-back",
         "start-token", "one-short", "teacher-forced", "first-position", "scores"],
)
def test_greedy_rejects_wrong_decoders(wrong, hint_word):
    verdict = evaluate("ch6-greedy", wrong)
    assert_not_yet(verdict, "argmax", "[:, -1]", "torch.cat", "cumsum")
    assert hint_word in verdict.hint


def test_greedy_hint_shows_no_expected_symbols(greedy_solution):
    # The hint names the case (family, batch, lengths, end) but never the symbols to write.
    verdict = evaluate("ch6-greedy", first_position_kept)
    family, seed, B, S, length, end = GREEDY_CASES[0]
    model = seeded_model(family, seed)
    expected = greedy_solution(model, seeded_source(model, B, S, seed), length, end)
    assert str(expected.tolist()) not in verdict.hint and str(expected[0].tolist()) not in verdict.hint


def test_greedy_stub_is_not_attempted():
    assert evaluate("ch6-greedy", exercise_stub).status == "not attempted yet"


def test_checks_leave_the_global_random_stream_alone(gru_solution, layer_solution, greedy_solution):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    evaluate("ch6-gru", gru_solution)
    evaluate("ch6-decoder-layer", layer_solution)
    evaluate("ch6-greedy", greedy_solution)
    assert torch.equal(torch.get_rng_state(), before)
