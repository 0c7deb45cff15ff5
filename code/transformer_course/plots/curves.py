"""Curves over several orders of magnitude: values given as log10, drawn on a linear axis whose
ticks read as powers of ten, so that even numbers below float64's range (1e-330) can be plotted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ._axes import check_axes
from .style import MARKERS, PALETTE

__all__ = ["plot_log10_curves"]


def _power_of_ten(value: float, _position: object = None) -> str:
    """Tick label for a log10 value: 10^k in math text."""
    return f"$10^{{{int(round(value))}}}$"


def plot_log10_curves(
    ax: Axes,
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    log2_x: bool = False,
    reference: Mapping[str, Sequence[float]] | None = None,
) -> Axes:
    """Plot curves given as log10 values, with y ticks written as powers of ten.

    A log-scale axis cannot show 1e-330 (below the smallest float64), but the log10 of such a
    number is an ordinary float: plotting log10 values on a linear axis and labelling its ticks
    10^k draws exactly the log-scale picture, for any range.

    Args:
        ax: the Axes to draw on.
        x: the common x values.
        curves: label -> log10 values (one per x), drawn as lines in the colours of :data:`PALETTE`,
            each with its own marker.
        xlabel, ylabel: axis labels (give units where there are some).
        title: optional title (state the finding).
        log2_x: use a base-2 log scale on x (lengths 8, 16, ..., 1024). Default: False.
        reference: label -> log10 values drawn as dashed grey guide lines (for example a 1/T
            slope). Default: none.

    Shape:
        x: (N,); each curve and reference: (N,).

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = plot_log10_curves(ax, [8, 16], {"a": [-1.0, -2.0]}, xlabel="T", ylabel="norm")
        >>> [line.get_label() for line in ax.get_lines()]
        ['a']
        >>> plt.close(fig)
    """
    check_axes(ax)
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("curves: expected a non-empty mapping label -> log10 values")
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"x: expected a non-empty 1-D sequence, got shape {xs.shape}")
    if log2_x and (xs <= 0).any():
        raise ValueError("x: a log2 x axis needs positive values")
    if reference is not None and not isinstance(reference, Mapping):
        raise TypeError("reference: expected a mapping label -> log10 values, or None")
    for name, group, dashed in (("curves", curves, False), ("reference", reference or {}, True)):
        for i, (label, values) in enumerate(group.items()):
            ys = np.asarray(values, dtype=float)
            if ys.shape != xs.shape:
                raise ValueError(
                    f"{name}[{label!r}]: expected {xs.size} values (one per x), got shape {ys.shape}"
                )
            if dashed:  # guide lines go underneath the measured curves
                ax.plot(xs, ys, "--", color="0.35", linewidth=1.6, label=label, zorder=1)
            else:
                ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)],
                        linewidth=2.2, markersize=7, label=label, zorder=2)
    if log2_x:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{int(v)}" if float(v).is_integer() else f"{v:g}" for v in xs])
        ax.minorticks_off()
    ax.yaxis.set_major_locator(MaxNLocator(nbins=7, integer=True, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax.set_xlabel(xlabel, fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=11)
    if title is not None:
        ax.set_title(title, fontsize=13)
    return ax

