"""What every drawing function of :mod:`~transformer_course.plots` checks first: its ``Axes``."""

from __future__ import annotations

from matplotlib.axes import Axes


def check_axes(ax: object) -> None:
    """Raise a TypeError unless ``ax`` is a matplotlib Axes."""
    if not isinstance(ax, Axes):
        raise TypeError(f"ax: expected a matplotlib Axes, got {type(ax).__name__}")
