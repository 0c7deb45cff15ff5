"""Figures of the book, drawn with matplotlib so that every chapter makes its own.

- :func:`draw_encoder_stack`: the encoder diagram (input embedding + positional encoding, then
  L × [multi-head self-attention, add & norm, feed-forward, add & norm], then the outputs).
- :func:`draw_encoder_decoder`: the 2017 Transformer's two stacks side by side, with the arrow
  that carries the encoder's output into every decoder layer's cross-attention.
- :func:`draw_norm_placement`: one encoder layer drawn post-LN (2017, BERT) or pre-LN, to put
  the two placements of layer norm side by side.
- :func:`plot_log10_curves`: curves whose values are already log10 (such as gradients far below
  float64's range, 1e-330) on a linear axis whose ticks read as powers of ten.
- :func:`attention_heatmap` and :func:`attention_row_bars`: attention weights as a (query, key)
  heat map, and one query's weights as bars, with the tokens as labels.
- :func:`use_book_style`: the book's colours (:data:`PALETTE`, for colour-blind readers too) as
  matplotlib's colour cycle; every chapter calls it in its set-up cell.

Every function draws on an ``Axes`` it is given and returns it, so a chapter controls the figure.
Colours come from one palette, Okabe-Ito (:data:`OKABE_ITO`); heat maps of attention weights use
one colour map, :data:`ATTENTION_CMAP`, the same as chapter 4's interactive explorer.

Why one module of over 500 lines: the functions share nothing but the colours and a few
drawing helpers, and a reader opens one function, never the whole file; splitting it would only
spread the shared helpers over several modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = [
    "draw_encoder_stack", "draw_encoder_decoder", "draw_norm_placement", "plot_log10_curves",
    "attention_heatmap", "attention_row_bars", "use_book_style",
    "OKABE_ITO", "PALETTE", "MARKERS", "LINESTYLES", "ATTENTION_CMAP", "COLORS",
]

# ------------------------------------------------------------------------------ colours
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


def _check_axes(ax: object) -> None:
    """Raise a TypeError unless ``ax`` is a matplotlib Axes."""
    if not isinstance(ax, Axes):
        raise TypeError(f"ax: expected a matplotlib Axes, got {type(ax).__name__}")


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    """A rounded box with centred text, its lower-left corner at (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.15",
            facecolor=color, edgecolor=COLORS["edge"], linewidth=1.4,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=12)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **kwargs: object) -> None:
    """An arrow from ``start`` to ``end`` (optionally bent with ``connectionstyle``)."""
    style = {"arrowstyle": "-|>", "mutation_scale": 14, "linewidth": 1.4, "color": COLORS["edge"]}
    style.update(kwargs)
    ax.add_patch(FancyArrowPatch(start, end, shrinkA=0, shrinkB=0, **style))


def _layers_label(num_layers: object) -> str:
    """ "L×", or "6×" for six layers: the label beside a repeated layer (num_layers checked here)."""
    if num_layers is None:
        return "L×"
    if isinstance(num_layers, bool) or not isinstance(num_layers, int):
        raise TypeError(f"num_layers: expected a positive int or None, got {type(num_layers).__name__}")
    if num_layers <= 0:
        raise ValueError(f"num_layers: expected a positive int or None, got {num_layers}")
    return f"{num_layers}×"


def _residual(ax: Axes, y_from: float, y_to: float, x_box: float, x_side: float) -> None:
    """A skip connection: leave the main line at ``y_from``, go round on the left, enter at ``y_to``."""
    x_mid = x_box + 0.0
    ax.plot([x_mid, x_side, x_side], [y_from, y_from, y_to], color=COLORS["edge"], linewidth=1.4)
    _arrow(ax, (x_side, y_to), (x_box, y_to))


def draw_encoder_stack(
    ax: Axes, num_layers: int | None = None, show_shapes: bool = True, title: str | None = None
) -> Axes:
    """Draw the Transformer encoder: embeddings + positions, then the stack of layers.

    The diagram follows Figure 1 (left half) of "Attention Is All You Need" (2017) with the
    post-LN layer our ``Encoder`` implements by default: each sub-layer is wrapped in a residual
    connection (the arrow round the side) and followed by a layer norm ("Add & norm").

    Args:
        ax: the matplotlib Axes to draw on (its axis lines are hidden).
        num_layers: the L of "L×" next to the repeated layer; ``None`` writes "L×" (the book's symbol
            for the number of layers).
        show_shapes: write the tensor shape of each stage on the right. Default: True.
        title: optional title of the Axes.

    Shape:
        The annotations use the book's legend: B batch, T length, D model width, H heads.

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = draw_encoder_stack(ax, num_layers=6)
        >>> "6×" in [t.get_text() for t in ax.texts]
        True
        >>> plt.close(fig)
    """
    _check_axes(ax)
    label = _layers_label(num_layers)
    if not isinstance(show_shapes, bool):
        raise TypeError(f"show_shapes: expected a bool, got {type(show_shapes).__name__}")

    x0, w, h = 3.0, 4.0, 0.9  # main column: left edge, width, box height
    xc = x0 + w / 2  # its centre line
    # Bottom to top.
    y_ids, y_emb, y_add = 0.3, 1.5, 3.2
    y_frame0 = 4.1
    y_attn, y_norm1, y_ff, y_norm2 = 5.2, 6.9, 8.4, 10.1
    y_frame1 = 11.4
    y_out = 12.6

    ax.text(xc, y_ids, "token ids", ha="center", va="bottom", fontsize=12, style="italic")
    _arrow(ax, (xc, y_ids + 0.45), (xc, y_emb))
    _box(ax, x0, y_emb, w, h, "Input embedding", COLORS["embedding"])
    # Positional encoding is added: a circled plus fed from the left.
    _arrow(ax, (xc, y_emb + h), (xc, y_add - 0.3))
    ax.add_patch(
        FancyBboxPatch((xc - 0.3, y_add - 0.3), 0.6, 0.6, boxstyle="circle,pad=0",
                       facecolor="white", edgecolor=COLORS["edge"], linewidth=1.4)
    )
    ax.text(xc, y_add, "+", ha="center", va="center", fontsize=16)
    _box(ax, 0.1, y_add - 0.45, 2.2, h, "Positional\nencoding", COLORS["positional"])
    _arrow(ax, (2.3, y_add), (xc - 0.3, y_add))

    # The repeated layer, in a frame.
    ax.add_patch(
        FancyBboxPatch((x0 - 0.9, y_frame0), w + 1.8, y_frame1 - y_frame0,
                       boxstyle="round,pad=0.05,rounding_size=0.3",
                       facecolor=COLORS["layer"], edgecolor=COLORS["edge"], linewidth=1.6)
    )
    ax.text(x0 - 1.2, (y_frame0 + y_frame1) / 2, label, ha="right", va="center",
            fontsize=16, fontweight="bold")
    _arrow(ax, (xc, y_add + 0.3), (xc, y_attn))
    # Queries, keys and values all come from the same input: three arrows into attention.
    y_split = y_attn - 0.55
    for dx in (-1.2, 1.2):
        ax.plot([xc, xc + dx], [y_split, y_split], color=COLORS["edge"], linewidth=1.4)
        _arrow(ax, (xc + dx, y_split), (xc + dx, y_attn))
    _box(ax, x0, y_attn, w, h, "Multi-head\nself-attention", COLORS["attention"])
    _arrow(ax, (xc, y_attn + h), (xc, y_norm1))
    _box(ax, x0, y_norm1, w, h * 0.7, "Add & norm", COLORS["norm"])
    _arrow(ax, (xc, y_norm1 + h * 0.7), (xc, y_ff))
    _box(ax, x0, y_ff, w, h, "Feed-forward\n(each position alone)", COLORS["feed_forward"])
    _arrow(ax, (xc, y_ff + h), (xc, y_norm2))
    _box(ax, x0, y_norm2, w, h * 0.7, "Add & norm", COLORS["norm"])
    # Residual connections round the left side of each sub-layer.
    _residual(ax, y_split - 0.25, y_norm1 + h * 0.35, x0, x0 - 0.5)
    _residual(ax, y_ff - 0.35, y_norm2 + h * 0.35, x0, x0 - 0.5)
    ax.plot([xc, x0], [y_split - 0.25, y_split - 0.25], color=COLORS["edge"], linewidth=1.4)
    ax.plot([xc, x0], [y_ff - 0.35, y_ff - 0.35], color=COLORS["edge"], linewidth=1.4)

    _arrow(ax, (xc, y_norm2 + h * 0.7), (xc, y_out))
    ax.text(xc, y_out + 0.1, "one context vector per token", ha="center", va="bottom",
            fontsize=12, style="italic")

    if show_shapes:
        x_shape = x0 + w + 1.1
        shapes = [
            (y_ids + 0.2, "(B, T)"),
            (y_emb + h / 2, "(B, T, D)"),
            (y_add, "(B, T, D)"),
            (y_attn + h / 2, "weights (B, H, T, T)"),
            (y_ff + h / 2, "(B, T, D)"),
            (y_out + 0.3, "(B, T, D)"),
        ]
        for y, text in shapes:
            ax.text(x_shape, y, text, ha="left", va="center", fontsize=11,
                    family="monospace", color="#444444")

    ax.set_xlim(-0.1, 11.2)
    ax.set_ylim(0, y_out + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=13)
    return ax


def draw_encoder_decoder(ax: Axes, num_layers: int | None = None, title: str | None = None) -> Axes:
    """Draw the encoder-decoder of "Attention Is All You Need" (Figure 1): two stacks side by side.

    Left, the encoder (as in :func:`draw_encoder_stack`, without the residual lines). Right, the
    decoder: its input is the output written so far, shifted right by a start token; each of its
    layers has masked self-attention, then **cross-attention** whose queries come from the
    decoder and whose keys and values are the encoder's output (the thick arrow), then the
    feed-forward network, each followed by add & norm; a linear map and a softmax turn the last
    vectors into probabilities of the next token.

    Args:
        ax: the matplotlib Axes to draw on (its axis lines are hidden).
        num_layers: the L of "L×" next to both stacks; ``None`` writes "L×" (the book's symbol
            for the number of layers).
        title: optional title of the Axes.

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> texts = [t.get_text() for t in draw_encoder_decoder(ax, num_layers=2).texts]
        >>> "Cross-attention\\n(K, V: encoder)" in texts, texts.count("2×")
        (True, 2)
        >>> plt.close(fig)
    """
    _check_axes(ax)
    label = _layers_label(num_layers)
    w, h, hn = 4.0, 0.9, 0.6  # box width, box height, add & norm height
    xe, xd = 1.0, 7.6  # left edges of the encoder and decoder columns
    ce, cd = xe + w / 2, xd + w / 2  # their centre lines

    def column_input(x: float, c: float, text: str, embedding: str) -> None:
        ax.text(c, 0.2, text, ha="center", va="bottom", fontsize=11, style="italic")
        _arrow(ax, (c, 0.65), (c, 1.2))
        _box(ax, x, 1.2, w, h, embedding, COLORS["embedding"])
        _arrow(ax, (c, 1.2 + h), (c, 3.0))

    def frame(x: float, y0: float, y1: float, side: str) -> None:
        ax.add_patch(FancyBboxPatch((x - 0.5, y0), w + 1.0, y1 - y0,
                                    boxstyle="round,pad=0.05,rounding_size=0.3",
                                    facecolor=COLORS["layer"], edgecolor=COLORS["edge"], linewidth=1.6))
        x_label, ha = (x - 0.7, "right") if side == "left" else (x + w + 0.7, "left")
        ax.text(x_label, (y0 + y1) / 2, label, ha=ha, va="center", fontsize=16, fontweight="bold")

    def stack(x: float, c: float, boxes: list[tuple[str, str]], y: float) -> float:
        """Boxes bottom to top from y, each followed by add & norm; returns the top."""
        for text, color in boxes:
            _box(ax, x, y, w, h, text, COLORS[color])
            _arrow(ax, (c, y + h), (c, y + h + 0.3))
            _box(ax, x, y + h + 0.3, w, hn, "Add & norm", COLORS["norm"])
            y += h + 0.3 + hn
            _arrow(ax, (c, y), (c, y + 0.35))
            y += 0.35
        return y

    step = h + 0.3 + hn + 0.35  # height of one sub-layer with its add & norm and arrows
    encoder_boxes = [("Self-attention", "attention"), ("Feed-forward", "feed_forward")]
    decoder_boxes = [("Masked self-attention\n(no look-ahead)", "attention"),
                     ("Cross-attention\n(K, V: encoder)", "cross_attention"),
                     ("Feed-forward", "feed_forward")]

    # Encoder, left.
    column_input(xe, ce, "source tokens", "Embedding + positions")
    frame(xe, 2.8, 3.0 + len(encoder_boxes) * step - 0.15, "left")
    top_e = stack(xe, ce, encoder_boxes, 3.0)

    # Decoder, right.
    column_input(xd, cd, "output so far, shifted right", "Embedding + positions")
    frame(xd, 2.8, 3.0 + len(decoder_boxes) * step - 0.15, "right")
    top_d = stack(xd, cd, decoder_boxes, 3.0)
    _box(ax, xd, top_d, w, h, "Linear + softmax", COLORS["output"])
    _arrow(ax, (cd, top_d + h), (cd, top_d + h + 0.4))
    ax.text(cd, top_d + h + 0.45, "probabilities of the next token", ha="center", va="bottom",
            fontsize=11, style="italic")

    # The encoder's output feeds the cross-attention of every decoder layer (the thick line).
    y_cross = 3.0 + step + h / 2  # middle of the cross-attention box
    y_turn, x_turn = top_e + 0.4, (xe + w + xd) / 2
    ax.plot([ce, ce, x_turn, x_turn], [top_e - 0.35, y_turn, y_turn, y_cross],
            color=COLORS["edge"], linewidth=3)
    _arrow(ax, (x_turn, y_cross), (xd, y_cross), linewidth=3)
    ax.text(ce - 0.2, y_turn + 0.15, "encoder output: one vector\nper source token", ha="center",
            va="bottom", fontsize=11, style="italic")

    ax.set_xlim(-0.6, 14.6)
    ax.set_ylim(0, top_d + h + 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=13)
    return ax


def _circled_plus(ax: Axes, x: float, y: float, radius: float = 0.3) -> None:
    """The ⊕ of a residual addition, centred at (x, y)."""
    ax.add_patch(
        FancyBboxPatch((x - radius, y - radius), 2 * radius, 2 * radius, boxstyle="circle,pad=0",
                       facecolor="white", edgecolor=COLORS["edge"], linewidth=1.4)
    )
    ax.text(x, y, "+", ha="center", va="center", fontsize=16)


def draw_norm_placement(ax: Axes, norm_first: bool, title: str | None = None) -> Axes:
    """Draw one encoder layer with its residual connections and layer norms, bottom to top.

    Post-LN (``norm_first=False``, the 2017 paper and BERT): each sub-layer's output is added
    to its input and the sum is normalized, ``x = norm(x + sublayer(x))``, so every path from
    the input to the output crosses a norm. Pre-LN (``norm_first=True``): the sub-layer reads a
    normalized copy and its output is added to the untouched input,
    ``x = x + sublayer(norm(x))``, so the residual path from input to output is a plain sum
    (a pre-LN stack adds one final norm after its last layer).

    Args:
        ax: the Axes to draw on (its axis lines are hidden).
        norm_first: pre-LN if True, post-LN if False, as in :class:`~transformer_course.encoder.EncoderLayer`.
        title: optional title. Default: ``"post-LN"`` or ``"pre-LN"`` with its formula.

    Returns:
        ``ax``.

    Examples:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = draw_norm_placement(ax, norm_first=True)
        >>> sum(t.get_text() == "LayerNorm" for t in ax.texts)
        2
        >>> plt.close(fig)
    """
    _check_axes(ax)
    if not isinstance(norm_first, bool):
        raise TypeError(f"norm_first: expected a bool, got {type(norm_first).__name__}")
    x0, w, h, gap = 1.6, 3.6, 0.8, 0.55  # main column: left edge, width, box height, spacing
    xc, x_skip = x0 + w / 2, x0 - 0.8  # centre line; the residual path runs on the left
    sublayers = (("Multi-head\nself-attention", COLORS["attention"]),
                 ("Feed-forward", COLORS["feed_forward"]))
    y = 0.2
    ax.text(xc, y, "x  (B, T, D)", ha="center", va="bottom", fontsize=12, style="italic")
    y += 0.5
    for text, color in sublayers:
        y_branch = y + 0.25  # where the residual leaves the main line
        ax.plot([xc, x_skip, x_skip], [y_branch, y_branch, y_branch + 0.01], color=COLORS["edge"],
                linewidth=1.4)
        y_box = y + gap
        if norm_first:
            _arrow(ax, (xc, y), (xc, y_box))
            _box(ax, x0, y_box, w, h * 0.7, "LayerNorm", COLORS["norm"])
            y = y_box + h * 0.7
            y_box = y + gap * 0.7
        _arrow(ax, (xc, y), (xc, y_box))
        _box(ax, x0, y_box, w, h, text, color)
        y_add = y_box + h + gap
        _arrow(ax, (xc, y_box + h), (xc, y_add - 0.3))
        _circled_plus(ax, xc, y_add)
        ax.plot([x_skip, x_skip], [y_branch, y_add], color=COLORS["edge"], linewidth=1.4)
        _arrow(ax, (x_skip, y_add), (xc - 0.3, y_add))
        y = y_add + 0.3
        if not norm_first:
            y_box = y + gap * 0.7
            _arrow(ax, (xc, y), (xc, y_box))
            _box(ax, x0, y_box, w, h * 0.7, "LayerNorm", COLORS["norm"])
            y = y_box + h * 0.7
    _arrow(ax, (xc, y), (xc, y + gap))
    top = "to the next layer" + (" (final LayerNorm after the last)" if norm_first else "")
    ax.text(xc, y + gap + 0.05, top, ha="center", va="bottom", fontsize=11, style="italic")
    ax.set_xlim(-0.2, 6.8)
    ax.set_ylim(0, y + gap + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is None:
        title = ("pre-LN: x = x + sublayer(norm(x))" if norm_first
                 else "post-LN: x = norm(x + sublayer(x))")
    ax.set_title(title, fontsize=13)
    return ax


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
    _check_axes(ax)
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


# ------------------------------------------------------------------------------ attention figures
# Added for chapter 4 (self-attention); chapter 5 and the slides reuse them.


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
    _check_axes(ax)
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
    _check_axes(ax)
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
