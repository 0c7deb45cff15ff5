"""Chapter 5's exercise checkers: the instructor's solutions pass, plausible wrong answers get a
hint that does not give the answer away, and the student notebook's stubs are "not attempted yet"."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import exercise_stub, solution_namespace
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from transformer_course import attention, encoder
from transformer_course.exercises import evaluate
from transformer_course.exercises.ch5 import (
    FEED_FORWARD_CASES,
    FORWARD_CASES,
    LAYER_NORM_CASES,
    LENGTHS,
    SIZES,
    feed_forward_variant,
    layer_flops,
    layer_norm_variant,
)

CHAPTER = "05_encoder"


@pytest.fixture(scope="module")
def count_solution():
    ns = solution_namespace(CHAPTER, "ch5-count")
    return ns["encoder_layer_parameters"], ns["encoder_layer_flops"]


@pytest.fixture(scope="module")
def layer_norm_solution():
    return solution_namespace(CHAPTER, "ch5-layer-norm")["layer_norm_by_hand"]


@pytest.fixture(scope="module")
def feed_forward_solution():
    return solution_namespace(CHAPTER, "ch5-feed-forward")["feed_forward_by_hand"]


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


# ---------------------------------------------------------------- ch5-layer-norm


def test_layer_norm_solution_is_correct(layer_norm_solution):
    assert evaluate("ch5-layer-norm", layer_norm_solution).correct


def test_layer_norm_solution_equals_nn_layer_norm_in_float32_too(layer_norm_solution):
    # The check runs in float64; the student's function is the same formula in float32.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=generator)
    norm = nn.LayerNorm((4, 5))
    with torch.no_grad():
        norm.weight.copy_(torch.randn(4, 5, generator=generator))
        norm.bias.copy_(torch.randn(4, 5, generator=generator))
        assert torch.allclose(layer_norm_solution(x, norm.weight, norm.bias, norm.eps), norm(x), atol=1e-5)


def test_layer_norm_checker_covers_several_normalized_dimensions_and_epsilons():
    assert {len(normalized) for _, normalized, _, _ in LAYER_NORM_CASES} == {1, 2}
    assert len({eps for _, _, eps, _ in LAYER_NORM_CASES}) >= 2
    assert all(shape[-1] != 32 for shape, *_ in LAYER_NORM_CASES)  # the chapter's D


def _torch_var_default(x, gamma, beta, eps):  # x.var() divides by n - 1 unless told otherwise
    dims = tuple(range(-gamma.dim(), 0))
    normalized = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, keepdim=True) + eps)
    return gamma * normalized + beta


def _layer_norm_over(dims):
    return lambda x, gamma, beta, eps: layer_norm_variant(x, gamma, beta, eps, dims=dims)


@pytest.mark.parametrize(
    ("wrong", "words_in_hint"),
    [
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, unbiased=True), "n - 1"),
        (_torch_var_default, "n - 1"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, eps_at="outside"), "outside the square root"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, eps_at="none"), "leaves out epsilon"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, affine="none"), "never scaled by gamma"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, affine="gamma"), "not shifted by beta"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, affine="beta"), "not scaled by gamma"),
        (_layer_norm_over((-1,)), "last dimension only"),
        (_layer_norm_over((0,)), "wrong dimensions"),
        (_layer_norm_over((1,)), "wrong dimensions"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, dims=tuple(range(x.dim()))),
         "wrong dimensions"),  # every dimension at once
        (lambda x, g, b, eps: torch.nn.functional.layer_norm(x, g.shape, g, b, eps), "library's layer norm"),
        (lambda x, g, b, eps: (x - x.mean()) / x.std() * g + b, "differs from nn.LayerNorm"),
        (lambda x, g, b, eps: layer_norm_variant(x, g, b, eps)[..., :1], "x's shape"),
    ],
    ids=["unbiased", "torch-var-default", "eps-outside", "no-eps", "no-affine", "no-beta", "no-gamma",
         "last-dim-only", "over-batch", "over-positions", "over-all", "library", "other", "shape"],
)
def test_layer_norm_mistakes_get_their_hint(wrong, words_in_hint):
    verdict = evaluate("ch5-layer-norm", wrong)
    assert_not_yet(verdict)
    assert words_in_hint in verdict.hint, verdict.hint


def test_layer_norm_check_puts_the_library_back(layer_norm_solution):
    evaluate("ch5-layer-norm", lambda x, g, b, eps: torch.nn.functional.layer_norm(x, g.shape, g, b, eps))
    x = torch.randn(2, 4)
    assert torch.allclose(torch.nn.functional.layer_norm(x, (4,)), nn.LayerNorm(4)(x))
    assert evaluate("ch5-layer-norm", layer_norm_solution).correct


def test_layer_norm_stub_is_not_attempted():
    assert evaluate("ch5-layer-norm", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch5-feed-forward

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _transposed_weights(x, w1, b1, w2, b2, activation):
    return ACTIVATIONS[activation](x @ w1 + b1) @ w2 + b2


def _always_relu(x, w1, b1, w2, b2, activation):
    return torch.relu(x @ w1.T + b1) @ w2.T + b2


def _always_gelu(x, w1, b1, w2, b2, activation):
    return F.gelu(x @ w1.T + b1) @ w2.T + b2


def _gelu_by_tanh(x, w1, b1, w2, b2, activation):
    act = ACTIVATIONS["relu"] if activation == "relu" else lambda z: F.gelu(z, approximate="tanh")
    return act(x @ w1.T + b1) @ w2.T + b2


def _no_activation(x, w1, b1, w2, b2, activation):
    return (x @ w1.T + b1) @ w2.T + b2


def _across_positions(x, w1, b1, w2, b2, activation):  # the hidden vectors averaged over positions
    hidden = ACTIVATIONS[activation](x @ w1.T + b1)
    return hidden.mean(dim=-2, keepdim=True) @ w2.T + b2 + 0 * x


def _flattened_positions(x, w1, b1, w2, b2, activation):  # positions and features mixed by a reshape
    flat = x.transpose(-1, -2).reshape(x.shape)
    return ACTIVATIONS[activation](flat @ w1.T + b1) @ w2.T + b2


def _transposed_square_only(x, w1, b1, w2, b2, activation):  # right unless the block is square
    if w1.shape[0] == w1.shape[1]:
        return _transposed_weights(x, w1, b1, w2, b2, activation)
    return ACTIVATIONS[activation](x @ w1.T + b1) @ w2.T + b2


@pytest.mark.parametrize(
    ("wrong", "words_in_hint"),
    [
        (_no_activation, "no activation"),
        (_always_relu, "activation is not gelu"),
        (_always_gelu, "activation is not relu"),
        (_gelu_by_tanh, "tanh approximation"),
        (lambda x, w1, b1, w2, b2, a: feed_forward_variant(x, w1, b1, w2, b2, ACTIVATIONS[a], after=True),
         "output too"),
        (_transposed_weights, "(out_features, in_features)"),
        (_transposed_square_only, "used transposed"),
        (lambda x, w1, b1, w2, b2, a: feed_forward_variant(x, w1, b1, w2, b2, ACTIVATIONS[a], biases="none"),
         "neither bias"),
        (lambda x, w1, b1, w2, b2, a: feed_forward_variant(x, w1, b1, w2, b2, ACTIVATIONS[a], biases="b2"),
         "leaves out b1"),
        (lambda x, w1, b1, w2, b2, a: feed_forward_variant(x, w1, b1, w2, b2, ACTIVATIONS[a], biases="b1"),
         "leaves out b2"),
        (_across_positions, "other positions change"),
        (_flattened_positions, "other positions change"),
        (lambda x, w1, b1, w2, b2, a: 2 * _no_activation(x, w1, b1, w2, b2, a), "differs from"),
        (lambda x, w1, b1, w2, b2, a: _no_activation(x, w1, b1, w2, b2, a)[..., :1], "x's shape"),
    ],
    ids=["no-activation", "relu-for-gelu", "gelu-for-relu", "gelu-tanh", "activation-on-output", "transposed",
         "transposed-square", "no-biases", "no-b1", "no-b2", "mean-over-positions", "reshape-mixes-positions",
         "other", "shape"],
)
def test_feed_forward_mistakes_get_their_hint(wrong, words_in_hint):
    verdict = evaluate("ch5-feed-forward", wrong)
    assert_not_yet(verdict)
    assert words_in_hint in verdict.hint, verdict.hint


def test_feed_forward_solution_is_correct(feed_forward_solution):
    assert evaluate("ch5-feed-forward", feed_forward_solution).correct


def test_feed_forward_checker_covers_both_activations_a_square_block_and_several_shapes():
    assert {activation for _, _, activation, _, _ in FEED_FORWARD_CASES} == {"relu", "gelu"}
    assert any(d == f for d, f, *_ in FEED_FORWARD_CASES)  # where transposed weights still multiply
    assert {len(lead) for _, _, _, lead, _ in FEED_FORWARD_CASES} == {1, 2, 3}


def test_feed_forward_solution_matches_the_package_s_gelu_layer(feed_forward_solution):
    # The same weights in encoder.FeedForward(..., activation="gelu") give the same output.
    torch.manual_seed(0)
    ff = encoder.FeedForward(16, 48, activation="gelu")
    x = torch.randn(2, 5, 16)
    weights = (ff.linear1.weight, ff.linear1.bias, ff.linear2.weight, ff.linear2.bias)
    with torch.no_grad():
        assert torch.allclose(feed_forward_solution(x, *weights, "gelu"), ff(x), atol=1e-6)


def test_feed_forward_stub_is_not_attempted():
    assert evaluate("ch5-feed-forward", exercise_stub).status == "not attempted yet"


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


def test_checks_leave_the_global_random_stream_alone(
    layer_solution, layer_norm_solution, feed_forward_solution, count_solution
):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    evaluate("ch5-assemble-layer", layer_solution)
    evaluate("ch5-layer-norm", layer_norm_solution)
    evaluate("ch5-layer-norm", lambda x, g, b, eps: layer_norm_variant(x, g, b, eps, dims=(0,)))
    evaluate("ch5-feed-forward", feed_forward_solution)
    evaluate("ch5-feed-forward", _across_positions)  # the diagnosis draws new inputs
    evaluate("ch5-count", *count_solution)
    assert torch.equal(torch.get_rng_state(), before)
