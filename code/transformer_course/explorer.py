"""An interactive view of a model's attention: choose a sentence, a layer and a head, point at a word.

:class:`AttentionExplorer` turns the attention weights our classes compute into a heat map drawn
by plotly.js: rows are the tokens that attend (queries), columns the tokens they attend to
(keys), and hovering over a cell shows "from <query> (<position>) to <key> (<position>)" with
the weight, so that a word that occurs twice is told apart. Three menus choose
the sentence, the layer and the head ("all heads" shows their mean). The weights are embedded in
the output exactly, as float32 bytes (base64), so the page shows the numbers the chapter asserts
on; nothing is computed or fetched when the page opens except plotly.js itself, which the book
serves from ``_static/plotly/`` (copied there from npm by ``make``) and JupyterLab from
``/files/_assets/plotly/`` when ``make lab`` runs at the repository's root. No CDN, no kernel.

Legend: L layers, H heads, T tokens of one sentence.
"""

from __future__ import annotations

import base64
import html
import json
import uuid
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HOVER_TEMPLATE", "AttentionExplorer", "PLOTLY_SOURCES"]

# Where the page looks for plotly.js, in order: next to a chapter or deck of the built book
# (both sit one folder below its root), then JupyterLab's file server at the repository's root.
PLOTLY_SOURCES = ("../_static/plotly/plotly.min.js", "/files/_assets/plotly/plotly.min.js")


class AttentionExplorer:
    """Attention weights of several sentences, shown as an interactive heat map in HTML.

    Args:
        tokens: one list of T_i token strings per sentence.
        weights: one tensor (L, H, T_i, T_i) per sentence: the weights of every layer and head,
            padding removed (row = query, column = key, rows summing to 1).
        names: a short label per sentence for the menu. Default: the sentence's tokens joined.

    Shape:
        weights[i]: (L, H, T_i, T_i), with len(tokens[i]) == T_i and the same L and H for all.

    Examples:
        >>> w = torch.softmax(torch.randn(2, 3, 4, 4), dim=-1)  # L = 2 layers, H = 3 heads, T = 4
        >>> view = AttentionExplorer([["the", "cat", "sat", "."]], [w])
        >>> view
        AttentionExplorer(1 sentence, 2 layers, 3 heads)
        >>> torch.equal(view.embedded_weights()[0], w)  # the page gets these numbers exactly
        True
        >>> "http" in view._repr_html_()  # nothing is loaded from another host
        False
    """

    def __init__(
        self,
        tokens: Sequence[Sequence[str]],
        weights: Sequence[torch.Tensor],
        names: Sequence[str] | None = None,
    ) -> None:
        if len(tokens) != len(weights) or not tokens:
            raise ValueError(
                f"tokens, weights: expected one list of tokens per weight tensor (at least one), "
                f"got {len(tokens)} and {len(weights)}"
            )
        shapes = set()
        for i, (words, w) in enumerate(zip(tokens, weights, strict=True)):
            if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.shape[-1] != w.shape[-2]:
                got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
                raise ValueError(f"weights[{i}]: expected a tensor (L, H, T, T), got {got}")
            if w.shape[-1] != len(words):
                raise ValueError(f"weights[{i}]: T = {w.shape[-1]} but tokens[{i}] has {len(words)} tokens")
            shapes.add(tuple(w.shape[:2]))
        if len(shapes) != 1:
            raise ValueError(f"weights: expected the same (L, H) for every sentence, got {sorted(shapes)}")
        self.num_layers, self.num_heads = shapes.pop()
        self.tokens = [list(map(str, words)) for words in tokens]
        self.names = list(names) if names is not None else [" ".join(words) for words in self.tokens]
        if len(self.names) != len(self.tokens):
            raise ValueError(f"names: expected {len(self.tokens)} names, got {len(self.names)}")
        # float32 bytes, little-endian as every browser's Float32Array reads them
        self._encoded = [
            base64.b64encode(w.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())
            .decode("ascii")
            for w in weights
        ]

    def __repr__(self) -> str:
        count = len(self.tokens)
        return (f"AttentionExplorer({count} sentence{'s' * (count > 1)}, {self.num_layers} layers, "
                f"{self.num_heads} heads)")

    def embedded_weights(self) -> list[torch.Tensor]:
        """The weights as the page decodes them: one (L, H, T_i, T_i) float32 tensor per sentence."""
        out = []
        for words, encoded in zip(self.tokens, self._encoded, strict=True):
            flat = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
            T = len(words)
            out.append(torch.from_numpy(flat.copy()).view(self.num_layers, self.num_heads, T, T))
        return out

    def _payload(self) -> dict:
        return {
            "layers": self.num_layers,
            "heads": self.num_heads,
            "sources": list(PLOTLY_SOURCES),
            "sentences": [
                {"name": name, "tokens": words, "weights": encoded}
                for name, words, encoded in zip(self.names, self.tokens, self._encoded, strict=True)
            ],
        }

    def _repr_html_(self) -> str:
        """The view: menus, a plot area, the data as JSON and the script that draws it."""
        root = f"attention-explorer-{uuid.uuid4().hex[:8]}"
        data = json.dumps(self._payload()).replace("</", "<\\/")  # safe inside <script>
        options = "".join(
            f'<option value="{i}">{html.escape(name)}</option>' for i, name in enumerate(self.names)
        )
        layers = "".join(f'<option value="{i}">{i + 1}</option>' for i in range(self.num_layers))
        heads = '<option value="all">all (mean)</option>' + "".join(
            f'<option value="{i}">{i + 1}</option>' for i in range(self.num_heads)
        )
        # Each menu is named by its visible label (<label for=...>); a click on the label focuses it.
        menus = "".join(
            f'<span><label for="{root}-{role}">{role.capitalize()}</label> '
            f'<select id="{root}-{role}" data-role="{role}">{items}</select></span>\n'
            for role, items in (("sentence", options), ("layer", layers), ("head", heads))
        )
        script = _SCRIPT.replace("__ROOT__", root).replace("__HOVER__", HOVER_TEMPLATE)
        return _TEMPLATE.format(root=root, menus=menus, data=data, script=script)

    def html_size_kib(self) -> float:
        """The size of the view's HTML (data included), in KiB."""
        return len(self._repr_html_().encode("utf-8")) / 1024


# What hovering over a cell shows: the query's and the key's words, each with its position in the
# sentence (counted from 0, as the tokens are indexed), and the weight, e.g.
# "from the (1) to the (7): 0.0846". plotly's template syntax; customdata is [query, its position,
# key, its position].
HOVER_TEMPLATE = ("from <b>%{customdata[0]}</b> (%{customdata[1]}) to <b>%{customdata[2]}</b> "
                  "(%{customdata[3]}): %{z:.4f}<extra></extra>")

# For assistive technology: the plot is a figure, not an image (plotly puts its toolbar's buttons
# inside it, and an image may hold no control), labelled with what its rows and columns are; the
# status line (where the script says that plotly.js is missing) is announced when written to.
_TEMPLATE = """<div class="attention-explorer" id="{root}">
<div class="attention-explorer-controls" style="display:flex;gap:1em;flex-wrap:wrap;font-size:90%">
{menus}</div>
<div class="attention-explorer-plot" role="figure"
 aria-label="attention weights: rows are the tokens that attend, columns the tokens attended to"
 style="width:100%;max-width:760px;height:560px"></div>
<p class="attention-explorer-status" role="status" style="font-size:85%"></p>
<script type="application/json" class="attention-explorer-data">{data}</script>
<script>{script}</script>
</div>"""

# Draws the heat map of the chosen sentence, layer and head; "all" averages the heads. The page
# keeps the chosen matrix as element.data[0].z of the plot (what the browser tests read back).
_SCRIPT = r"""
(function () {
  var root = document.getElementById("__ROOT__");
  var data = JSON.parse(root.querySelector(".attention-explorer-data").textContent);
  var plot = root.querySelector(".attention-explorer-plot");
  var status = root.querySelector(".attention-explorer-status");
  var menus = {};
  root.querySelectorAll("select").forEach(function (s) { menus[s.dataset.role] = s; });
  var decoded = data.sentences.map(function (s) {
    var bytes = atob(s.weights), buffer = new Uint8Array(bytes.length);
    for (var i = 0; i < bytes.length; i++) buffer[i] = bytes.charCodeAt(i);
    return new Float32Array(buffer.buffer);
  });
  function matrix(sentence, layer, head) {
    var T = data.sentences[sentence].tokens.length, H = data.heads, w = decoded[sentence];
    var rows = [];
    for (var q = 0; q < T; q++) {
      var row = [];
      for (var k = 0; k < T; k++) {
        var value = 0;
        var heads = head === "all" ? H : 1;
        for (var h = 0; h < heads; h++) {
          var hh = head === "all" ? h : Number(head);
          value += w[((layer * H + hh) * T + q) * T + k];
        }
        row.push(value / heads);
      }
      rows.push(row);
    }
    return rows;
  }
  var HOVER = "__HOVER__";
  function draw() {
    var sentence = Number(menus.sentence.value), layer = Number(menus.layer.value), head = menus.head.value;
    var tokens = data.sentences[sentence].tokens, index = tokens.map(function (_, i) { return i; });
    /* each cell's words with their positions: a word that occurs twice ("the") stays told apart */
    var labels = tokens.map(function (q, i) {
      return tokens.map(function (k, j) { return [q, i, k, j]; });
    });
    var trace = {
      type: "heatmap", z: matrix(sentence, layer, head), x: index, y: index, customdata: labels,
      /* plotly's Cividis reversed: plots.ATTENTION_CMAP ("cividis_r"), light at 0, dark at 1 */
      zmin: 0, zmax: 1, colorscale: "Cividis", reversescale: true, colorbar: {title: {text: "weight"}},
      hovertemplate: HOVER
    };
    var axis = {tickmode: "array", tickvals: index, ticktext: tokens, automargin: true};
    var which = head === "all" ? "mean of all heads" : "head " + (Number(head) + 1);
    var layout = {
      /* under the heat map: above it are the keys' tick labels and axis title, whose height
         depends on the words, and plotly's title there sat over the axis title */
      title: {text: "layer " + (layer + 1) + ", " + which, font: {size: 14},
              yref: "paper", y: 0, yanchor: "top", pad: {t: 12}},
      xaxis: Object.assign({title: {text: "attends to (key)"}, side: "top", tickangle: -45}, axis),
      yaxis: Object.assign({title: {text: "token (query)"}, autorange: "reversed"}, axis),
      margin: {t: 40, l: 110, r: 30, b: 50}
    };
    Plotly.react(plot, [trace], layout, {displaylogo: false, responsive: true});
  }
  function start() {
    Object.keys(menus).forEach(function (role) { menus[role].addEventListener("change", draw); });
    draw();
    root.dataset.ready = "true";
  }
  function load(i) {
    if (window.Plotly) return start();
    if (i >= data.sources.length) {
      status.textContent = "plotly.js was not found next to this page: " +
        "build the book (make book) or start JupyterLab with make lab.";
      return;
    }
    var script = document.createElement("script");
    script.src = data.sources[i];
    script.onload = start;
    script.onerror = function () { script.remove(); load(i + 1); };
    document.head.appendChild(script);
  }
  load(0);
})();
"""
