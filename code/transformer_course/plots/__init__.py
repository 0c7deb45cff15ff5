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

The figures live in one module per kind, and a chapter calls them all as ``plots.<name>``:

- :mod:`.style`: the colours (:data:`OKABE_ITO`, :data:`PALETTE`, :data:`COLORS`), markers and
  dashes, :data:`ATTENTION_CMAP` and :func:`use_book_style`;
- :mod:`.diagrams`: the architecture diagrams;
- :mod:`.curves`: :func:`plot_log10_curves`;
- :mod:`.attention_maps`: the figures of attention weights.
"""

from .attention_maps import attention_heatmap, attention_row_bars
from .curves import plot_log10_curves
from .diagrams import draw_encoder_decoder, draw_encoder_stack, draw_norm_placement
from .style import ATTENTION_CMAP, COLORS, LINESTYLES, MARKERS, OKABE_ITO, PALETTE, use_book_style

__all__ = [
    "draw_encoder_stack", "draw_encoder_decoder", "draw_norm_placement", "plot_log10_curves",
    "attention_heatmap", "attention_row_bars", "use_book_style",
    "OKABE_ITO", "PALETTE", "MARKERS", "LINESTYLES", "ATTENTION_CMAP", "COLORS",
]
