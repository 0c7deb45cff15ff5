"""plots: the attention heatmap and the attention-row bars draw what they are given, labelled."""

from __future__ import annotations

import matplotlib.patches
import numpy as np
import pytest
import torch

from transformer_course import plots


def _ticks(labels) -> list[str]:
    return [label.get_text() for label in labels]


# ------------------------------------------------------------------------------ heatmap


def test_heatmap_shows_the_matrix_with_token_labels(ax):
    weights = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    plots.attention_heatmap(ax, weights, ["q0", "q1", "q2"], ["k0", "k1", "k2", "k3"], title="t")
    image = ax.get_images()[0]
    assert np.allclose(image.get_array(), weights.numpy())  # row i = query i, column j = key j
    assert _ticks(ax.get_yticklabels()) == ["q0", "q1", "q2"]
    assert _ticks(ax.get_xticklabels()) == ["k0", "k1", "k2", "k3"]
    assert image.get_clim() == (0.0, pytest.approx(weights.max().item()))  # zero is the lightest colour
    assert "query" in ax.get_ylabel() and "key" in ax.get_xlabel() and ax.get_title() == "t"
    colorbars = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "attention weight"


def test_heatmap_annotates_and_honours_vmax_and_colorbar(ax):
    plots.attention_heatmap(ax, np.array([[1.0, 0.0]]), ["a"], ["a", "pad"], annotate=True, vmax=0.5,
                            colorbar=False)
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.00"]
    assert ax.texts[0].get_color() == "white" and ax.texts[1].get_color() == "black"
    assert ax.get_images()[0].get_clim() == (0.0, 0.5)
    assert len(ax.figure.axes) == 1  # no colour bar


def test_heatmap_rejects_bad_input(ax):
    with pytest.raises(ValueError, match="query_tokens: expected 2 labels"):
        plots.attention_heatmap(ax, np.ones((2, 2)), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="key_tokens: expected 2 labels"):
        plots.attention_heatmap(ax, np.ones((2, 2)), ["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\(Tq, Tk\)"):
        plots.attention_heatmap(ax, np.ones((1, 2, 2)), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="finite"):
        plots.attention_heatmap(ax, [[float("nan")]], ["a"], ["a"])
    with pytest.raises(TypeError, match="key_tokens: expected a list"):
        plots.attention_heatmap(ax, [[1.0]], ["a"], "a")
    with pytest.raises(TypeError, match="ax"):
        plots.attention_heatmap("ax", [[1.0]], ["a"], ["a"])


# ------------------------------------------------------------------------------ row bars


def test_row_bars_draw_one_bar_per_row_and_key(ax):
    rows = {"too tired": torch.tensor([0.1, 0.6, 0.3]), "too wide": [0.2, 0.2, 0.6]}
    plots.attention_row_bars(ax, rows, ["the", "animal", "street"], highlight=[1, 2], title="t")
    bars = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle) and p.get_width() < 0.5]
    assert len(bars) == 6
    assert sorted(round(b.get_height(), 6) for b in bars) == sorted([0.1, 0.6, 0.3, 0.2, 0.2, 0.6])
    # The first row's bars sit left of the second row's, in key order.
    heights = [round(b.get_height(), 6) for b in sorted(bars, key=lambda b: b.get_x())]
    assert heights == [0.1, 0.2, 0.6, 0.2, 0.3, 0.6]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["too tired", "too wide"]
    assert _ticks(ax.get_xticklabels()) == ["the", "animal", "street"]
    weights = [label.get_fontweight() for label in ax.get_xticklabels()]
    assert weights[0] == "normal" and weights[1] == weights[2] == "bold"
    assert ax.get_ylabel() == "attention weight" and ax.get_title() == "t"


def test_row_bars_reject_bad_input(ax):
    with pytest.raises(TypeError, match="rows"):
        plots.attention_row_bars(ax, {}, ["a"])
    with pytest.raises(ValueError, match="like the first row"):
        plots.attention_row_bars(ax, {"x": [1.0, 0.0], "y": [1.0]}, ["a", "b"])
    with pytest.raises(ValueError, match="key_tokens: expected 2 labels"):
        plots.attention_row_bars(ax, {"x": [1.0, 0.0]}, ["a"])
    with pytest.raises(ValueError, match="highlight"):
        plots.attention_row_bars(ax, {"x": [1.0, 0.0]}, ["a", "b"], highlight=[2])
    with pytest.raises(ValueError, match="1-D"):
        plots.attention_row_bars(ax, {"x": [[1.0]]}, ["a"])
