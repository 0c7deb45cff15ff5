"""Figures of attention weights: a (query, key) heat map, and one query's row as grouped bars.

Added for chapter 4 (self-attention); chapter 5, chapter 6 and the slides reuse them. Both take a
tensor (any device), an array or a nested list, and label the rows and columns with the tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes

from ._axes import check_axes
from .style import ATTENTION_CMAP, COLORS, PALETTE

__all__ = ["attention_heatmap", "attention_row_bars"]


def _as_float_array(values: object, name: str) -> np.ndarray:
    """A tensor (any device), array or nested list -> a float64 NumPy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected numbers (a tensor, an array or a list), got {type(values).__name__}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return array


def _check_labels(labels: Sequence[str], expected: int, name: str) -> list[str]:
    """Return ``labels`` as a list of str, checking there is one per row or column."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"{name}: expected a list of str, got {type(labels).__name__}")
    if len(labels) != expected:
        raise ValueError(f"{name}: expected {expected} labels (one per position), got {len(labels)}")
    return [str(label) for label in labels]


def _text_colour_on(rgba: Sequence[float]) -> str:
    """"black" or "white", whichever contrasts more with a cell of colour ``rgba`` (WCAG 2 contrast)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "white" if 1.05 / (luminance + 0.05) > (luminance + 0.05) / 0.05 else "black"


def attention_heatmap(
    ax: Axes,
    weights: object,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str],
    *,
    title: str | None = None,
    cmap: str = ATTENTION_CMAP,
    vmax: float | None = None,
    annotate: bool = False,
    colorbar: bool = True,
) -> Axes:
    """Draw an attention matrix: one row per query token, one column per key token.

    Row i shows how query i spreads its attention over the keys (a row of softmax weights sums to
    1). Colours start at 0 so that zero weights (padding, a causal mask) get the lightest colour and
    the largest weight the darkest.

    Args:
        ax: the Axes to draw on.
        weights: the (Tq, Tk) weights, a tensor (any device), an array or a nested list.
        query_tokens: Tq labels for the rows (the attending tokens).
        key_tokens: Tk labels for the columns (the attended tokens).
        title: optional title (state the finding). Default: None.
        cmap: a matplotlib colour map. Default: :data:`ATTENTION_CMAP` (``"cividis_r"``), the map of
            chapter 4's interactive explorer too; pass another only with a reason.
        vmax: the weight drawn in the darkest colour. Default: None (the largest weight).
        annotate: write each weight (2 decimals) in its cell, in black or white, whichever contrasts
            more with the cell; for small matrices. Default: False.
        colorbar: add a colour bar labelled "attention weight". Default: True.

    Shape:
        weights: (Tq, Tk); query_tokens: Tq labels; key_tokens: Tk labels.

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = attention_heatmap(ax, [[0.9, 0.1], [0.5, 0.5]], ["a", "b"], ["a", "b"], annotate=True)
        >>> [t.get_text() for t in ax.texts]
        ['0.90', '0.10', '0.50', '0.50']
        >>> plt.close(fig)
    """
    check_axes(ax)
    matrix = _as_float_array(weights, "weights")
    if matrix.ndim != 2:
        raise ValueError(f"weights: expected a (Tq, Tk) matrix, got shape {matrix.shape}")
    rows = _check_labels(query_tokens, matrix.shape[0], "query_tokens")
    columns = _check_labels(key_tokens, matrix.shape[1], "key_tokens")
    top = float(matrix.max()) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0  # an all-zero matrix still gets a colour scale
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=top, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("key (attended to)", fontsize=12)
    ax.set_ylabel("query (attending)", fontsize=12)
    ax.tick_params(labelsize=11)
    if annotate:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                cell = image.cmap(image.norm(matrix[i, j]))
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=10,
                        color=_text_colour_on(cell))
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label("attention weight", fontsize=11)
    if title is not None:
        ax.set_title(title, fontsize=13)
    return ax


def attention_row_bars(
    ax: Axes,
    rows: Mapping[str, object],
    key_tokens: Sequence[str],
    *,
    highlight: Sequence[int] = (),
    title: str | None = None,
    ylabel: str = "attention weight",
) -> Axes:
    """Compare one query's attention row in several settings: grouped bars, one group per key.

    Made for chapter 4's question: how does the attention of "it" over the words of a sentence
    change when one word of the sentence changes (or from one head to another)?

    Args:
        ax: the Axes to draw on.
        rows: label -> the Tk weights of one row (a tensor, an array or a list); one bar colour each,
            from :data:`PALETTE` (give the bars hatches too when the colours are the only cue).
        key_tokens: Tk labels, one per key position (write "tired / wide" where the rows' sentences
            differ).
        highlight: key positions to mark (shaded background and bold label), such as the
            candidate referents. Default: none.
        title: optional title (state the finding). Default: None.
        ylabel: the y-axis label. Default: ``"attention weight"``.

    Shape:
        each row: (Tk,); key_tokens: Tk labels.

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = attention_row_bars(ax, {"s1": [0.7, 0.3], "s2": [0.2, 0.8]}, ["x", "y"], highlight=[1])
        >>> len(ax.patches), ax.get_legend() is not None
        (5, True)
        >>> plt.close(fig)
    """
    check_axes(ax)
    if not isinstance(rows, Mapping) or not rows:
        raise TypeError("rows: expected a non-empty mapping label -> weights of one row")
    values = {label: _as_float_array(row, f"rows[{label!r}]") for label, row in rows.items()}
    first = next(iter(values.values()))
    if first.ndim != 1:
        raise ValueError(f"rows: each row must be 1-D (Tk,), got shape {first.shape}")
    for label, row in values.items():
        if row.shape != first.shape:
            raise ValueError(
                f"rows[{label!r}]: expected shape {first.shape} like the first row, got {row.shape}"
            )
    labels = _check_labels(key_tokens, first.shape[0], "key_tokens")
    marked = list(highlight)
    if not all(isinstance(p, (int, np.integer)) and 0 <= p < len(labels) for p in marked):
        raise ValueError(f"highlight: expected key positions in [0, {len(labels)}), got {marked}")
    positions = np.arange(len(labels))
    width = 0.8 / len(values)
    for p in marked:  # drawn first: behind the bars
        ax.axvspan(p - 0.45, p + 0.45, color=COLORS["highlight"], zorder=0)
    for i, (label, row) in enumerate(values.items()):
        ax.bar(positions - 0.4 + width * (i + 0.5), row, width=width, label=label, zorder=2,
               color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(positions, labels, rotation=60, ha="right", rotation_mode="anchor")
    for p in marked:
        ax.get_xticklabels()[p].set_fontweight("bold")
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xlabel("key (attended to)", fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(True, axis="y", alpha=0.3, zorder=1)
    ax.legend(fontsize=11)
    if title is not None:
        ax.set_title(title, fontsize=13)
    return ax
