"""Chapter 5's exercise checkers: the instructor's solutions pass, plausible wrong answers get a
hint that does not give the answer away, and the student notebook's stubs are "not attempted yet"."""

from __future__ import annotations

import pytest
import torch
from conftest import exercise_stub, solution_namespace
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from transformer_course import attention, encoder
from transformer_course.exercises import evaluate
from transformer_course.exercises.ch5 import FORWARD_CASES, LENGTHS, SIZES, layer_flops

CHAPTER = "05_encoder"


@pytest.fixture(scope="module")
def count_solution():
    ns = solution_namespace(CHAPTER, "ch5-count")
    return ns["encoder_layer_parameters"], ns["encoder_layer_flops"]


@pytest.fixture(scope="module")
def pre_ln_solution():
    return solution_namespace(CHAPTER, "ch5-pre-ln")["pre_ln_forward"]


@pytest.fixture(scope="module")
def layer_solution():
    return solution_namespace(CHAPTER, "ch5-assemble-layer")["MyEncoderLayer"]


def assert_not_yet(verdict, *forbidden: object) -> None:
    """A "not yet" verdict whose hint is non-empty and shows none of the ``forbidden`` values."""
    assert verdict.status == "not yet", verdict
    assert verdict.hint
    for value in forbidden:
        assert str(value) not in verdict.hint, (value, verdict.hint)


def expected_parameters() -> list[int]:
    """The package layers' parameter counts at the checker's sizes (none may appear in a hint)."""
    return [sum(p.numel() for p in encoder.EncoderLayer(d, h, f).parameters()) for d, h, f in SIZES]


# ---------------------------------------------------------------- ch5-count


def test_count_solution_is_correct(count_solution):
    assert evaluate("ch5-count", *count_solution).correct


def test_count_checker_truth_is_flop_counter_mode():
    # The checker reads the count off the layer's modules; it must be what FlopCounterMode counts.
    for d, h, f in SIZES:
        layer = encoder.EncoderLayer(d, h, f, dropout=0.0)
        for T in LENGTHS:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                layer(torch.zeros(1, T, d), return_attention=True)  # the explicit path
            assert layer_flops(layer, T) == counter.get_total_flops()


def test_count_solution_backs_the_worked_answer(count_solution):
    # The worked answer's numbers for all-MiniLM-L6-v2 (D = 384, F = 1536, T = 128).
    parameters, flops = count_solution
    layer = encoder.EncoderLayer(384, 12, 1536, dropout=0.0)
    assert parameters(384, 1536) == sum(p.numel() for p in layer.parameters()) == 1_774_464
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(torch.zeros(1, 128, 384), return_attention=True)
    assert flops(384, 1536, 128) == counter.get_total_flops()
    D, F, T = 384, 1536, 128
    assert round(8 * T * D**2 / 1e6) == 151 and round(4 * T**2 * D / 1e6) == 25
    assert round(4 * T * D * F / 1e6) == 302
    # The T^2 part (4 T^2 D) overtakes the rest (8 T D^2 + 4 T D F) exactly after T = 2D + F.
    assert 2 * D + F == 2304 == 18 * T
    for T in (2304, 2305):
        assert (4 * T**2 * D > 8 * T * D**2 + 4 * T * D * F) == (T > 2304)


@pytest.mark.parametrize(
    "wrong_parameters",
    [
        lambda d, f: 4 * d * d + 2 * d * f,  # no biases, no norms
        lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d,  # no layer norms
        lambda d, f: 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * d,  # one vector per layer norm
        lambda d, f: 4 * d * d + 2 * d * f + f + 9 * d + 4 * d,  # a norm counted twice
    ],
    ids=["no-biases", "no-norms", "norms-one-vector", "too-many"],
)
def test_count_rejects_wrong_parameter_formulas(count_solution, wrong_parameters):
    _, flops = count_solution
    assert_not_yet(evaluate("ch5-count", wrong_parameters, flops), *expected_parameters())


@pytest.mark.parametrize(
    "wrong_flops",
    [
        lambda d, f, t: 4 * t * d * d + 2 * t * t * d + 2 * t * d * f,  # a multiply-add as 1
        lambda d, f, t: 8 * t * d * d + 4 * t * d * f,  # no T^2 part
        lambda d, f, t: 6 * t * d * d + 4 * t * t * d + 4 * t * d * f,  # no output projection
    ],
    ids=["multiply-add-as-one", "no-attention-T2", "no-out-proj"],
)
def test_count_rejects_wrong_flop_formulas(count_solution, wrong_flops):
    parameters, _ = count_solution
    counts = [8 * t * d * d + 4 * t * t * d + 4 * t * d * f for d, _, f in SIZES for t in LENGTHS]
    assert_not_yet(evaluate("ch5-count", parameters, wrong_flops), *counts)


def test_count_rejects_a_non_number(count_solution):
    _, flops = count_solution
    assert_not_yet(evaluate("ch5-count", lambda d, f: "many", flops))


def test_count_stub_is_not_attempted(count_solution):
    parameters, flops = count_solution
    assert evaluate("ch5-count", exercise_stub, exercise_stub).status == "not attempted yet"
    assert evaluate("ch5-count", parameters, exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch5-pre-ln


def test_pre_ln_solution_is_correct(pre_ln_solution):
    assert evaluate("ch5-pre-ln", pre_ln_solution).correct


def post_ln_answer(layer, x):
    return layer(x)  # the layer as it is: post-LN


def norm_after_sublayer(layer, x):
    h = layer.norm1(x + layer.self_attn(x)[0])
    return layer.norm2(h + layer.feed_forward(h))


def no_residual(layer, x):
    h = layer.self_attn(layer.norm1(x))[0]
    return layer.feed_forward(layer.norm2(h))


def attention_residual_only(layer, x):
    h = x + layer.self_attn(layer.norm1(x))[0]
    return layer.feed_forward(layer.norm2(h))


def norms_swapped(layer, x):
    h = x + layer.self_attn(layer.norm2(x))[0]
    return h + layer.feed_forward(layer.norm1(h))


def second_norm_on_input(layer, x):
    h = x + layer.self_attn(layer.norm1(x))[0]
    return h + layer.feed_forward(layer.norm2(x))


@pytest.mark.parametrize(
    "wrong", [post_ln_answer, norm_after_sublayer, no_residual, attention_residual_only, norms_swapped,
              second_norm_on_input],
)
def test_pre_ln_rejects_wrong_passes(wrong):
    assert_not_yet(evaluate("ch5-pre-ln", wrong))


def test_pre_ln_hints_name_the_mistake():
    assert "post-LN" in evaluate("ch5-pre-ln", norm_after_sublayer).hint
    assert "residual" in evaluate("ch5-pre-ln", no_residual).hint


def test_pre_ln_stub_is_not_attempted():
    assert evaluate("ch5-pre-ln", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch5-assemble-layer


class WrongLayer(nn.Module):
    """An encoder layer with the right parts and one mistake in ``forward``, chosen by ``MISTAKE``."""

    MISTAKE = ""

    def __init__(self, d_model, num_heads, d_ff, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = attention.MultiHeadAttention(d_model, num_heads)
        self.feed_forward = encoder.FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def attend(self, x, mask):
        if self.MISTAKE == "ignores mask":
            mask = None
        return self.self_attn(x, attention_mask=mask)[0]

    def forward(self, x, attention_mask=None):
        norm_first = self.norm_first != (self.MISTAKE == "placements swapped")
        residual = 0 if self.MISTAKE == "no residual" else 1
        if norm_first:
            h = residual * x + self.attend(self.norm1(x), attention_mask)
            if self.MISTAKE == "second norm on wrong tensor":
                return h + self.feed_forward(self.norm2(x))  # norm2 of the layer's input
            return residual * h + self.feed_forward(self.norm2(h))
        h = self.norm1(residual * x + self.attend(x, attention_mask))
        if self.MISTAKE == "second norm on wrong tensor":
            return h + self.norm2(self.feed_forward(h))  # norm2 of the sub-layer's output
        return self.norm2(residual * h + self.feed_forward(h))


def wrong_layer(mistake: str) -> type:
    return type(f"Wrong{mistake.title().replace(' ', '')}", (WrongLayer,), {"MISTAKE": mistake})


def test_assemble_solution_is_correct(layer_solution):
    assert evaluate("ch5-assemble-layer", layer_solution).correct


def test_assemble_accepts_the_reference_mistake_free():
    assert evaluate("ch5-assemble-layer", wrong_layer("")).correct  # the test's layer without a mistake


@pytest.mark.parametrize(
    ("mistake", "hint_word"),
    [
        ("placements swapped", "other placement"),
        ("no residual", "residual"),
        ("second norm on wrong tensor", "norm"),
        ("ignores mask", "attention_mask"),
    ],
)
def test_assemble_rejects_wrong_layers(mistake, hint_word):
    verdict = evaluate("ch5-assemble-layer", wrong_layer(mistake))
    assert_not_yet(verdict)
    assert hint_word in verdict.hint


def test_assemble_rejects_a_mistake_in_one_placement_only(layer_solution):
    class PreLNOnlyRight(layer_solution):
        def forward(self, x, attention_mask=None):
            if self.norm_first:
                return super().forward(x, attention_mask)
            x = self.norm1(x + self.self_attn(x, attention_mask=attention_mask)[0])
            return self.norm2(self.feed_forward(x))  # the FFN's residual is missing

    verdict = evaluate("ch5-assemble-layer", PreLNOnlyRight)
    assert_not_yet(verdict)
    assert "post-LN" in verdict.hint


def test_assemble_rejects_other_names_and_instances(layer_solution):
    class OtherNames(nn.Module):
        def __init__(self, d_model, num_heads, d_ff, norm_first=False):
            super().__init__()
            self.attn = attention.MultiHeadAttention(d_model, num_heads)
            self.ffn = encoder.FeedForward(d_model, d_ff)
            self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    verdict = evaluate("ch5-assemble-layer", OtherNames)
    assert_not_yet(verdict)
    assert "self_attn" in verdict.hint
    d, h, f, *_ = FORWARD_CASES[0]
    assert_not_yet(evaluate("ch5-assemble-layer", layer_solution(d, h, f)))


def test_assemble_stub_is_not_attempted():
    class Stub(nn.Module):
        def __init__(self, d_model, num_heads, d_ff, norm_first=False):
            super().__init__()
            self.norm_first = norm_first
            raise NotImplementedError("write this function")

        def forward(self, x, attention_mask=None):
            raise NotImplementedError("write this function")

    assert evaluate("ch5-assemble-layer", Stub).status == "not attempted yet"


def test_checks_leave_the_global_random_stream_alone(layer_solution, pre_ln_solution, count_solution):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    evaluate("ch5-assemble-layer", layer_solution)
    evaluate("ch5-pre-ln", pre_ln_solution)
    evaluate("ch5-count", *count_solution)
    assert torch.equal(torch.get_rng_state(), before)
