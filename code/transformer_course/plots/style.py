"""The book's look: the Okabe-Ito colours, the palette of series, the diagrams' fills, the colour
map of attention, and :func:`use_book_style`, which makes the palette matplotlib's colour cycle.

Every other module of :mod:`~transformer_course.plots` takes its colours from here, and a chapter
names only these (``"C0"``...``"C5"`` or ``plots.OKABE_ITO[...]``) besides greys and black.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from cycler import cycler

__all__ = ["OKABE_ITO", "PALETTE", "MARKERS", "LINESTYLES", "ATTENTION_CMAP", "COLORS", "use_book_style"]

# The eight colours of Okabe & Ito, "Color Universal Design (CUD): how to make figures and
# presentations that are friendly to colorblind people" (2008), with their published sRGB values.
# They stay distinct for readers with protanopia, deuteranopia and tritanopia as well as for
# everyone else (tests/test_colours.py simulates the three and measures the differences).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

# The book's colours for lines, bars and points, in the order of matplotlib's colour cycle
# ("C0" is blue, "C1" orange, ...). Black is kept for guide lines and text, and yellow is left out
# of the cycle: a thin yellow line is hard to see on a white page.
PALETTE = tuple(
    OKABE_ITO[name] for name in ("blue", "orange", "bluish green", "reddish purple", "vermillion", "sky blue")
)

# Shapes and dashes paired with the palette by ``use_book_style(markers=True)``, one per colour, so
# that a series never differs from the others by its colour alone.
MARKERS = ("o", "s", "^", "v", "D", "P")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))

# The colour map of every attention heat map, here and in chapter 4's explorer (plotly's
# "Cividis" with ``reversescale``; its colours are matplotlib's to within ΔE 4). Why cividis: it was
# designed to look nearly the same to readers with a red-green deficiency as to everyone else
# (Nuñez, Anderton & Renslow, PLoS ONE 13(7), 2018), its lightness changes evenly and in one
# direction (equal steps of weight look like equal steps), and it is defined in both matplotlib and
# plotly.js, so the static figures and the interactive view show a weight in one colour; "Blues" is
# not the same scale in the two libraries. Reversed ("_r") so that a weight of 0 is the lightest
# colour and a large weight the darkest, as the captions read them.
ATTENTION_CMAP = "cividis_r"


def _tint(colour: str, share: float) -> str:
    """``colour`` mixed with white: ``share`` of the colour, the rest white (a pale fill for a box)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    mixed = share * rgb + (1 - share) * 255.0
    return "#" + "".join(f"{round(v):02x}" for v in mixed)


def use_book_style(markers: bool = False) -> None:
    """Make :data:`PALETTE` matplotlib's colour cycle, for every figure drawn after the call.

    Chapters call it once in their set-up cell. It changes one setting, ``rcParams["axes.prop_cycle"]``:
    the n-th line, bar group or scatter series of an Axes that is not given a colour gets the n-th
    colour of the palette ("C0" ... "C5" name them too). Nothing else changes (sizes, fonts, colour
    maps). Restore the previous cycle with ``matplotlib.rc_context()`` or
    ``matplotlib.rcdefaults()``.

    Args:
        markers: also cycle :data:`MARKERS` and :data:`LINESTYLES` with the colours, so that the
            n-th series differs from the others by shape and dash as well. A ``fmt`` string or a
            ``marker=`` / ``linestyle=`` argument still overrides them. Default: False (a line
            without its own marker then has none; the chapters set markers and styles per line).

    Examples:
        >>> import matplotlib
        >>> with matplotlib.rc_context():
        ...     use_book_style(markers=True)
        ...     cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()
        >>> cycle["color"][:2], cycle["marker"][:2], cycle["linestyle"][:2]
        (['#0072B2', '#E69F00'], ['o', 's'], ['-', '--'])
    """
    if not isinstance(markers, bool):
        raise TypeError(f"markers: expected a bool, got {type(markers).__name__}")
    cycle = cycler(color=list(PALETTE))
    if markers:
        cycle = cycle + cycler(marker=list(MARKERS)) + cycler(linestyle=list(LINESTYLES))
    matplotlib.rcParams["axes.prop_cycle"] = cycle


# One colour per kind of block of the diagrams, reused by every figure of the book: pale tints of
# the palette, so that black text stays readable on them. Each block is also labelled in words.
COLORS = {
    "embedding": _tint(OKABE_ITO["vermillion"], 0.3),  # token embedding
    "positional": _tint(OKABE_ITO["reddish purple"], 0.35),  # positional encoding
    "attention": _tint(OKABE_ITO["orange"], 0.45),  # multi-head self-attention
    "norm": _tint(OKABE_ITO["yellow"], 0.45),  # add & norm
    "feed_forward": _tint(OKABE_ITO["sky blue"], 0.4),  # position-wise feed-forward
    "layer": "#f2f2f2",  # the frame of one encoder layer
    "cross_attention": _tint(OKABE_ITO["orange"], 0.75),  # the decoder's attention to the encoder's output
    "output": _tint(OKABE_ITO["bluish green"], 0.3),  # linear + softmax over the vocabulary
    "edge": "#333333",
    "highlight": _tint(OKABE_ITO["yellow"], 0.35),  # the shading behind highlighted keys
}
