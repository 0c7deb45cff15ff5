"""Diagrams of the architecture, drawn box by box: the encoder stack, the encoder-decoder of 2017,
and one encoder layer post-LN or pre-LN.

Each block is a pale tint of the palette (:data:`~transformer_course.plots.style.COLORS`) and is
labelled in words; the residual connections are drawn as lines round the left side.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ._axes import check_axes
from .style import COLORS

__all__ = ["draw_encoder_stack", "draw_encoder_decoder", "draw_norm_placement"]


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
    check_axes(ax)
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
    check_axes(ax)
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
    check_axes(ax)
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

