"""plots: the encoder diagram and log10 curves draw what they promise and reject bad input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyBboxPatch

from transformer_course import plots


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]



# ------------------------------------------------------------------------------ encoder diagram


def test_encoder_stack_has_every_block_in_order(ax):
    plots.draw_encoder_stack(ax)
    texts = _texts(ax)
    for label in ("Input embedding", "Positional\nencoding", "Multi-head\nself-attention"):
        assert label in texts
    assert texts.count("Add & norm") == 2
    assert any(t.startswith("Feed-forward") for t in texts)
    assert "L×" in texts
    # Bottom to top: embedding, attention, first add & norm, feed-forward, second add & norm.
    y = {t.get_text(): t.get_position()[1] for t in ax.texts}
    norms = sorted(t.get_position()[1] for t in ax.texts if t.get_text() == "Add & norm")
    feed_forward = next(t.get_position()[1] for t in ax.texts if t.get_text().startswith("Feed"))
    assert y["Input embedding"] < y["Multi-head\nself-attention"] < norms[0] < feed_forward < norms[1]
    assert not ax.axison  # a diagram, not a plot
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) >= 7


def test_encoder_stack_labels_the_number_of_layers_and_shapes(ax):
    plots.draw_encoder_stack(ax, num_layers=6, show_shapes=False, title="six layers")
    texts = _texts(ax)
    assert "6×" in texts and "L×" not in texts
    assert not any(t.startswith("(B, T") for t in texts)
    assert ax.get_title() == "six layers"
    fig, other = plt.subplots()
    plots.draw_encoder_stack(other)
    assert "(B, T)" in _texts(other) and "weights (B, H, T, T)" in _texts(other)
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_layers": 0}, ValueError, "num_layers"),
        ({"num_layers": 2.5}, TypeError, "num_layers"),
        ({"num_layers": True}, TypeError, "num_layers"),
        ({"show_shapes": "yes"}, TypeError, "show_shapes"),
    ],
)
def test_encoder_stack_rejects_bad_arguments(ax, kwargs, error, match):
    with pytest.raises(error, match=match):
        plots.draw_encoder_stack(ax, **kwargs)


def test_encoder_stack_needs_axes():
    with pytest.raises(TypeError, match="ax: expected a matplotlib Axes"):
        plots.draw_encoder_stack(plt.figure())
    plt.close("all")


# ------------------------------------------------------------------------------ encoder-decoder diagram


def test_encoder_decoder_has_both_stacks_and_cross_attention(ax):
    plots.draw_encoder_decoder(ax, num_layers=2, title="two stacks")
    texts = _texts(ax)
    assert texts.count("2×") == 2 and ax.get_title() == "two stacks"
    assert texts.count("Add & norm") == 5  # 2 sub-layers in the encoder, 3 in the decoder
    assert texts.count("Embedding + positions") == 2
    position = {t.get_text(): t.get_position() for t in ax.texts}
    cross = position["Cross-attention\n(K, V: encoder)"]
    masked = position["Masked self-attention\n(no look-ahead)"]
    encoder_attention = position["Self-attention"]
    assert encoder_attention[0] < cross[0]  # encoder on the left, decoder on the right
    assert masked[1] < cross[1] < position["Linear + softmax"][1]  # bottom to top in the decoder
    assert not ax.axison


@pytest.mark.parametrize(("num_layers", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_encoder_decoder_rejects_bad_arguments(ax, num_layers, error):
    with pytest.raises(error, match="num_layers"):
        plots.draw_encoder_decoder(ax, num_layers=num_layers)
    with pytest.raises(TypeError, match="ax"):
        plots.draw_encoder_decoder("not axes")


# ------------------------------------------------------------------------------ log10 curves


def test_log10_curves_draw_each_curve_and_label_ticks_as_powers_of_ten(ax):
    x = [8, 16, 32]
    plots.plot_log10_curves(
        ax, x, {"rnn": [-2.0, -5.0, -11.0], "encoder": [-0.5, -0.8, -1.1]},
        xlabel="T", ylabel="norm", title="finding", log2_x=True,
        reference={"fit": [-2.0, -5.5, -11.5]},
    )
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"rnn", "encoder", "fit"}
    assert np.allclose(lines["rnn"].get_ydata(), [-2.0, -5.0, -11.0])
    assert lines["fit"].get_linestyle() == "--" and lines["rnn"].get_linestyle() == "-"
    assert lines["fit"].get_zorder() < lines["rnn"].get_zorder()  # guides stay underneath
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "32"]
    assert ax.yaxis.get_major_formatter()(-300.0, 0) == "$10^{-300}$"
    assert ax.get_xlabel() == "T" and ax.get_ylabel() == "norm" and ax.get_title() == "finding"
    assert ax.get_legend() is not None


def test_log10_curves_handle_values_far_below_float64(ax):
    plots.plot_log10_curves(ax, [1, 2], {"tiny": [-330.0, -400.0]}, xlabel="x", ylabel="y")
    low, high = ax.get_ylim()
    assert low <= -400 and high >= -330 and ax.get_yscale() == "linear"


@pytest.mark.parametrize(
    ("x", "curves", "kwargs", "error", "match"),
    [
        ([1, 2], {}, {}, TypeError, "curves"),
        ([1, 2], {"a": [1.0]}, {}, ValueError, r"curves\['a'\]"),
        ([1, 2], {"a": [1.0, 2.0]}, {"reference": {"r": [1.0]}}, ValueError, r"reference\['r'\]"),
        ([1, 2], {"a": [1.0, 2.0]}, {"reference": [1.0, 2.0]}, TypeError, "reference"),
        ([0, 2], {"a": [1.0, 2.0]}, {"log2_x": True}, ValueError, "log2"),
        ([[1, 2]], {"a": [1.0, 2.0]}, {}, ValueError, "x: expected a non-empty 1-D"),
    ],
)
def test_log10_curves_reject_bad_input(ax, x, curves, kwargs, error, match):
    with pytest.raises(error, match=match):
        plots.plot_log10_curves(ax, x, curves, xlabel="x", ylabel="y", **kwargs)


def test_log10_curves_need_axes():
    with pytest.raises(TypeError, match="ax"):
        plots.plot_log10_curves(None, [1], {"a": [1.0]}, xlabel="x", ylabel="y")


@pytest.mark.parametrize("norm_first", [False, True])
def test_norm_placement_puts_the_norm_before_or_after_each_sublayer(ax, norm_first):
    plots.draw_norm_placement(ax, norm_first=norm_first)
    heights = {}
    for text in ax.texts:
        heights.setdefault(text.get_text(), []).append(text.get_position()[1])
    assert len(heights["LayerNorm"]) == 2 and len(heights["+"]) == 2  # two sub-layers, two residuals
    first_norm, attention = min(heights["LayerNorm"]), heights["Multi-head\nself-attention"][0]
    first_add = min(heights["+"])
    if norm_first:  # pre-LN: norm, attention, then the addition
        assert first_norm < attention < first_add
    else:  # post-LN: attention, the addition, then the norm
        assert attention < first_add < first_norm
    assert ("pre-LN" if norm_first else "post-LN") in ax.get_title()


def test_norm_placement_rejects_a_non_bool(ax):
    with pytest.raises(TypeError, match="norm_first: expected a bool, got str"):
        plots.draw_norm_placement(ax, norm_first="pre")
