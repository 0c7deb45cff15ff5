"""Colours of the book: readable by colour-blind readers, one palette, one colour map for attention.

- The palette (Okabe-Ito) stays distinct under simulated protanopia, deuteranopia and tritanopia,
  and for normal vision; the same check fails for a red/green pair (negative control).
- Every chapter's code names only colour maps that are safe for colour-blind readers, and only
  colours of the palette, greys, black or white.
- ``plots.use_book_style`` sets the palette as matplotlib's colour cycle.
- ``plots.attention_heatmap`` and chapter 4's explorer use the same colour map by default.

How colours are compared, with the colorspacious library. A colour is decoded from sRGB to linear
RGB; a colour vision deficiency is simulated there with the matrices of Machado, Oliveira &
Fernandes, "A physiologically-based model for simulation of color vision deficiency", IEEE TVCG
15(6), 2009 (severity 100: dichromacy, the strongest form), and clipped to the displayable range;
the result goes to CIE XYZ (D65) and CIELAB, and two colours differ by their CIE76 distance ΔE, the
Euclidean distance in L*a*b*.

The threshold, ΔE ≥ 12. One ΔE of about 2.3 is a just-noticeable difference between two large
patches side by side (Sharma, *Digital Color Imaging Handbook*, 2003). Figures show colours on thin
lines, small markers and narrow bars, and a reader matches them with a legend across the figure:
the difference needed grows as the marks shrink (Stone, Szafir & Setlur, "An engineering model for
color difference as a function of size", 2014). We ask for about five just-noticeable differences.
Named red and green fall below it for a protanope (ΔE ≈ 10), matplotlib's default red and green
for a deuteranope (ΔE ≈ 7): the negative controls below fail the check as they should.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import re
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from colorspacious import cspace_convert, deltaE

from transformer_course import plots
from transformer_course.explorer import AttentionExplorer

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
PLOTLY_JS = ROOT / "node_modules" / "plotly.js-dist-min" / "plotly.min.js"

MIN_DELTA_E = 12.0  # CIE76; see the module docstring for why

# Okabe & Ito (2008), "Color Universal Design", the published sRGB values (0-255), copied here
# from the source so that a typo in plots.OKABE_ITO fails a test.
PUBLISHED_OKABE_ITO = {
    "black": (0, 0, 0),
    "orange": (230, 159, 0),
    "sky blue": (86, 180, 233),
    "bluish green": (0, 158, 115),
    "yellow": (240, 228, 66),
    "blue": (0, 114, 178),
    "vermillion": (213, 94, 0),
    "reddish purple": (204, 121, 167),
}

# Each kind of vision, and colorspacious's name for the deficiency simulated (None: normal vision).
VISIONS = {"normal": None, "protanopia": "protanomaly", "deuteranopia": "deuteranomaly",
           "tritanopia": "tritanomaly"}

# For each kind of vision, a pair of colours it confuses: the check must fail on it.
NEGATIVE_CONTROLS = {
    "normal": ("#0072B2", "tab:blue"),  # two blues, ΔE ≈ 3
    "protanopia": ("red", "green"),  # matplotlib's named red and green, ΔE ≈ 10 for a protanope
    "deuteranopia": ("tab:red", "tab:green"),  # matplotlib's default red and green, ΔE ≈ 7
    "tritanopia": ("green", "teal"),  # a green and a blue-green, ΔE ≈ 8 for a tritanope
}

# Colour maps a chapter may name: perceptually ordered and readable with a colour vision
# deficiency. Sequential: viridis and its family (magma, inferno, plasma), cividis, and the
# single-hue ColorBrewer maps; diverging (for signed values): RdBu, PuOr. Each also reversed ("_r").
# Never jet, rainbow, hsv, or a red-green map such as RdYlGn or PiYG.
CVD_SAFE_MAPS = {"viridis", "cividis", "magma", "inferno", "plasma", "blues", "greys", "purples",
                 "rdbu", "puor"}


# ------------------------------------------------------------------------------ colour science


def _linear_rgb(colour: str) -> np.ndarray:
    """Any matplotlib colour -> its linear RGB (the sRGB transfer curve undone)."""
    return cspace_convert(mcolors.to_rgb(colour), "sRGB1", "sRGB1-linear")


def seen(colour: str, vision: str) -> np.ndarray:
    """``colour`` as seen with ``vision``, in linear RGB clipped to the displayable [0, 1]."""
    deficiency = VISIONS[vision]
    space = "sRGB1" if deficiency is None else {"name": "sRGB1+CVD", "cvd_type": deficiency, "severity": 100}
    return np.clip(cspace_convert(mcolors.to_rgb(colour), space, "sRGB1-linear"), 0.0, 1.0)


def delta_e(first: str, second: str, vision: str) -> float:
    """CIE76 ΔE between two colours as seen with ``vision``."""
    pair = (seen(first, vision), seen(second, vision))
    return float(deltaE(*pair, input_space="sRGB1-linear", uniform_space="CIELab"))


def assert_distinct(colours: tuple[str, ...], vision: str) -> float:
    """Fail unless every pair of ``colours`` differs by at least MIN_DELTA_E for ``vision``."""
    closest = min(itertools.combinations(colours, 2), key=lambda pair: delta_e(*pair, vision))
    smallest = delta_e(*closest, vision)
    assert smallest >= MIN_DELTA_E, (
        f"{vision}: {closest[0]} and {closest[1]} differ by ΔE = {smallest:.1f} < {MIN_DELTA_E}"
    )
    return smallest


def test_the_simulation_is_right_on_known_cases():
    # Greys are the same for every vision (each matrix's rows sum to 1).
    for vision in VISIONS:
        assert np.allclose(seen("0.5", vision), _linear_rgb("0.5"), atol=1e-5), vision
    # Dichromacy, not a milder anomaly: a protanope sees pure red as the first column of Machado et
    # al.'s published protanopia matrix (its negative blue clipped to 0).
    assert np.allclose(seen("#FF0000", "protanopia"), [0.152286, 0.114503, 0.0], atol=1e-6)
    # Black against white is 100 L* units, for every vision.
    assert all(abs(delta_e("black", "white", v) - 100) < 1e-2 for v in VISIONS)
    # CIELAB of pure sRGB red: L* 53.24, a* 80.09, b* 67.20 (the D65 white of the sources differs
    # in its fourth digit, which moves a* by 0.02).
    assert np.allclose(cspace_convert([1.0, 0.0, 0.0], "sRGB1", "CIELab"), [53.24, 80.09, 67.20], atol=0.03)


def test_the_palette_is_okabe_ito_with_its_published_values():
    published = {name: "#{:02X}{:02X}{:02X}".format(*rgb) for name, rgb in PUBLISHED_OKABE_ITO.items()}
    assert plots.OKABE_ITO == published
    assert set(plots.PALETTE) <= set(published.values())
    assert len(set(plots.PALETTE)) == len(plots.PALETTE) == len(plots.MARKERS) == len(plots.LINESTYLES)
    assert published["yellow"] not in plots.PALETTE and published["black"] not in plots.PALETTE


@pytest.mark.parametrize("vision", list(VISIONS))
def test_the_palette_stays_distinct_and_a_confused_pair_does_not(vision):
    # plots.PALETTE is every colour the chapters draw series in: the colour cycle, and the only
    # colours besides greys that test_chapters_use_only_palette_colours_and_greys allows.
    smallest = assert_distinct(plots.PALETTE, vision)
    assert smallest >= MIN_DELTA_E
    # Negative control: the same check fails on a pair this vision confuses (red/green for the
    # red-green deficiencies).
    with pytest.raises(AssertionError, match=vision):
        assert_distinct(NEGATIVE_CONTROLS[vision], vision)


def test_red_and_green_fail_for_both_red_green_deficiencies():
    for pair in (("red", "green"), ("tab:red", "tab:green")):
        worst = min(delta_e(*pair, v) for v in ("protanopia", "deuteranopia"))
        assert worst < MIN_DELTA_E < delta_e(*pair, "normal")


# ------------------------------------------------------------------------------ the chapters' code


def _code_cells(notebook: Path) -> list[tuple[str, str]]:
    """(cell id, source) of every code cell, IPython magics and shell lines blanked."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        out.append((cell.get("id", "?"), source))
    return out


COLOUR_KEYWORDS = {
    "color", "colors", "c", "facecolor", "facecolors", "edgecolor", "edgecolors", "ecolor", "fc",
    "ec", "mfc", "mec", "mfcalt", "markerfacecolor", "markeredgecolor", "markerfacecoloralt",
    "labelcolor", "hatchcolor",
}
MAP_KEYWORDS = {"cmap", "colorscale"}
PLOT_METHODS = {"plot", "loglog", "semilogx", "semilogy"}
LINE_TOKENS = ("--", "-.", "-", ":")
MARKER_CHARACTERS = set(".,ov^<>1234sp*hH+xXDd|_")
HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


def _format_colours(fmt: str) -> list[str] | None:
    """The colours of a matplotlib format string ("k--", "o-", "C1:"), or None if it is not one."""
    colours, rest = [], fmt
    while rest:
        line = next((t for t in LINE_TOKENS if rest.startswith(t)), None)
        if line is not None:
            rest = rest[len(line):]
        elif re.match(r"C\d", rest):
            colours.append(rest[:2])
            rest = rest[2:]
        elif rest[0] in "bgrcmykw":
            colours.append(rest[0])
            rest = rest[1:]
        elif rest[0] in MARKER_CHARACTERS:
            rest = rest[1:]
        else:
            return None
    return colours


def _allowed_colour(value: str, allowed: set[str]) -> bool:
    """A colour of ``allowed`` (hex, any case), a cycle colour "C0".. of the palette, a grey, or none."""
    text = value.strip()
    if text.lower() == "none":
        return True
    if re.fullmatch(r"C\d+", text):
        return int(text[1:]) < len(plots.PALETTE)
    if text.upper() in {c.upper() for c in allowed}:
        return True
    try:
        red, green, blue = mcolors.to_rgb(text)
    except ValueError:
        return False
    return red == green == blue  # black, white and the greys


def _strings(node: ast.AST) -> list[str]:
    """The string constants that ``node`` can evaluate to: itself, the items of a list or tuple,
    both sides of ``+`` or ``*``, both branches of ``a if c else b``. A key looked up
    (``plots.OKABE_ITO["blue"]``) or a function's result is not a literal colour: skipped."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [s for item in node.elts for s in _strings(item)]
    if isinstance(node, ast.BinOp):
        return _strings(node.left) + _strings(node.right)
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def colour_problems(source: str, allowed: set[str] = frozenset(plots.PALETTE)) -> list[str]:
    """What a piece of plotting code does against the book's colour rules, one line per finding.

    Checked: the values given to colour arguments (``color=``, ``edgecolor=``, ...), the colours
    of format strings (``"r--"``), every string that is a hex colour or a ``tab:``/``xkcd:`` name
    wherever it stands, and the colour maps named (``cmap=``, ``colorscale``, ``get_cmap(...)``,
    ``colormaps[...]``). A word such as "red" in a list of words is not a colour and passes.
    """
    problems: dict[tuple[str, int], str] = {}  # (value, line) -> the first finding there
    tree = ast.parse(source)

    def check_colour(value: str, where: str, line: int) -> None:
        if not _allowed_colour(value, set(allowed)):
            problems.setdefault((value, line), f"colour {value!r} ({where}, line {line}) "
                                               "is not in the palette nor a grey")

    def check_map(value: str, where: str, line: int) -> None:
        if value.lower().removesuffix("_r") not in CVD_SAFE_MAPS:
            problems.setdefault((value, line), f"colour map {value!r} ({where}, line {line}) "
                                               "is not in the allow-list CVD_SAFE_MAPS")

    def name_of(node: ast.AST) -> str:
        return getattr(node, "attr", getattr(node, "id", ""))

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if HEX_COLOUR.fullmatch(node.value) or node.value.startswith(("tab:", "xkcd:")):
                check_colour(node.value, "a string", node.lineno)
        if isinstance(node, ast.Call):
            method = name_of(node.func)
            for keyword in node.keywords:
                if keyword.arg in COLOUR_KEYWORDS:
                    for value in _strings(keyword.value):
                        check_colour(value, f"{keyword.arg}=", node.lineno)
                elif keyword.arg in MAP_KEYWORDS:
                    for value in _strings(keyword.value):
                        check_map(value, f"{keyword.arg}=", node.lineno)
                elif keyword.arg == "fmt" and isinstance(keyword.value, ast.Constant):
                    for value in _format_colours(str(keyword.value.value)) or []:
                        check_colour(value, "fmt=", node.lineno)
            if method in PLOT_METHODS:
                for argument in node.args:
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        for value in _format_colours(argument.value) or []:
                            check_colour(value, f"format {argument.value!r}", node.lineno)
            if method == "get_cmap" and node.args:
                for value in _strings(node.args[0]):
                    check_map(value, "get_cmap", node.lineno)
        if isinstance(node, ast.Subscript) and name_of(node.value) == "colormaps":
            for value in _strings(node.slice):
                check_map(value, "colormaps[]", node.lineno)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in MAP_KEYWORDS:
                    for name in _strings(value):
                        check_map(name, f"key {key.value!r}", node.lineno)
                if isinstance(key, ast.Constant) and key.value in COLOUR_KEYWORDS:
                    for name in _strings(value):
                        check_colour(name, f"key {key.value!r}", node.lineno)
    return list(problems.values())


@pytest.mark.parametrize(
    "source",
    [
        'ax.plot(x, y, "r--")',
        'ax.loglog(x, y, "og")',
        'ax.bar(x, y, color="#4c72b0")',
        'ax.axvline(0.5, color="#c44e52")',
        'ax.plot(x, y, color="red")',
        'ax.scatter(x, y, c=["green", "0.5"])',
        'ax.plot(x, y, color="tab:green")',
        'STYLE = {"a": ("#55a868", "o")}',
        'ax.imshow(m, cmap="jet")',
        'ax.imshow(m, cmap="RdYlGn_r")',
        'plt.get_cmap("hsv")',
        'matplotlib.colormaps["rainbow"]',
        'trace = {"colorscale": "Rainbow"}',
        'ax.errorbar(x, y, fmt="g^")',
        'ax.text(0, 0, "a", color="white" if dark else "red")',
        'ax.plot(x, y, color="C7")',
    ],
)
def test_the_static_check_catches_unsafe_colours(source):
    assert colour_problems(source), source


def test_the_static_check_lets_safe_code_and_words_pass():
    source = """
groups = {"colours": ["red", "blue", "green", "orange"]}  # words, not colours
ax.plot(x, y, "o-", color=plots.PALETTE[0], label="red")
ax.plot(x, y, "k:", lw=1)
ax.axhline(0.1, color="0.4", linestyle="--")
ax.bar(x, y, color=["#D55E00"] + ["#999999"] * 3, edgecolor="black")
ax.errorbar(x, y, fmt="none", ecolor="black")
ax.imshow(m, cmap="cividis_r")
ax.imshow(m, cmap="RdBu", vmin=-1, vmax=1)
ax.plot(x, y, color="C5")
ax.bar(x, y, color=plots.OKABE_ITO["sky blue"])
ax.text(0, 0, "a", color="white" if dark else "black")
"""
    assert colour_problems(source) == []


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.stem)
def test_chapters_use_only_palette_colours_and_greys_and_safe_maps(notebook):
    problems = [f"{cell_id}: {problem}" for cell_id, source in _code_cells(notebook)
                for problem in colour_problems(source)]
    assert problems == []


def test_every_chapter_with_a_figure_applies_the_book_style():
    for notebook in CHAPTERS:
        sources = [source for _, source in _code_cells(notebook)]
        draws = any("plt.subplots" in source or "plt.figure" in source for source in sources)
        if draws:
            assert any("plots.use_book_style()" in source for source in sources), notebook.name


def test_the_package_figures_use_only_okabe_ito_and_greys():
    modules = sorted(Path(plots.__file__).parent.glob("*.py"))  # plots is a subpackage: every module
    assert len(modules) >= 5
    problems = {module.name: colour_problems(module.read_text(encoding="utf-8"),
                                             allowed=set(plots.OKABE_ITO.values()))
                for module in modules}
    assert problems == {module.name: [] for module in modules}


# ------------------------------------------------------------------------------ the style function


def test_use_book_style_sets_the_palette_as_the_colour_cycle():
    before = matplotlib.rcParams["axes.prop_cycle"]
    with matplotlib.rc_context():
        plots.use_book_style()
        assert matplotlib.rcParams["axes.prop_cycle"].by_key() == {"color": list(plots.PALETTE)}
        fig, ax = plt.subplots()
        lines = [ax.plot([0, 1], [0, i])[0] for i in range(len(plots.PALETTE) + 1)]
        bars = ax.bar([0, 1], [1, 2])
        plt.close(fig)
        drawn = [mcolors.to_hex(line.get_color()).upper() for line in lines]
        assert drawn == [c.upper() for c in plots.PALETTE] + [plots.PALETTE[0].upper()]  # it cycles
        assert mcolors.to_hex(bars[0].get_facecolor()).upper() == plots.PALETTE[0].upper()
        assert lines[0].get_marker() == "None"  # no markers unless asked

        plots.use_book_style(markers=True)
        cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()
        assert cycle["color"] == list(plots.PALETTE)
        assert cycle["marker"] == list(plots.MARKERS) and len(cycle["linestyle"]) == len(plots.PALETTE)
        fig, ax = plt.subplots()
        first, second = ax.plot([0, 1], [0, 1])[0], ax.plot([0, 1], [1, 0])[0]
        plt.close(fig)
        assert (first.get_marker(), second.get_marker()) == ("o", "s")
        assert first.get_linestyle() != second.get_linestyle()
    assert matplotlib.rcParams["axes.prop_cycle"] == before  # nothing leaks into other tests


def test_use_book_style_rejects_a_non_bool():
    with matplotlib.rc_context(), pytest.raises(TypeError, match="markers: expected a bool"):
        plots.use_book_style(markers="yes")


def test_the_diagram_colours_are_pale_tints_so_black_text_stays_readable():
    for name, colour in plots.COLORS.items():
        if name == "edge":
            continue
        luminance = float(np.array([0.2126, 0.7152, 0.0722]) @ _linear_rgb(colour))
        assert (luminance + 0.05) / 0.05 >= 7, name  # WCAG AAA contrast for black text


# ------------------------------------------------------------------------------ one map for attention


def test_the_attention_map_is_cvd_safe_and_the_heatmap_default(ax):
    assert plots.ATTENTION_CMAP.lower().removesuffix("_r") in CVD_SAFE_MAPS
    assert inspect.signature(plots.attention_heatmap).parameters["cmap"].default == plots.ATTENTION_CMAP
    plots.attention_heatmap(ax, [[0.0, 1.0], [0.5, 0.5]], ["a", "b"], ["a", "b"])
    colour_map = ax.get_images()[0].get_cmap()
    assert colour_map.name == plots.ATTENTION_CMAP
    # A weight of 0 is the lightest colour, 1 the darkest.
    lightness = [cspace_convert(colour_map(x)[:3], "sRGB1", "CIELab")[0] for x in np.linspace(0, 1, 11)]
    assert all(np.diff(lightness) < 0)


def _explorer_colour_scale() -> tuple[str, bool]:
    page = AttentionExplorer([["a", "b"]], [torch.full((1, 1, 2, 2), 0.5)])._repr_html_()
    names = re.findall(r'colorscale:\s*"(\w+)"', page)
    assert len(names) == 1, names
    return names[0], bool(re.search(r"reversescale:\s*true", page))


def test_the_explorer_uses_the_same_map_as_attention_heatmap():
    name, reversed_scale = _explorer_colour_scale()
    as_matplotlib = name.lower() + ("_r" if reversed_scale else "")
    assert as_matplotlib == plots.ATTENTION_CMAP.lower()


@pytest.mark.skipif(not PLOTLY_JS.exists(), reason="plotly.js not installed (make installs it with npm ci)")
def test_plotly_draws_the_explorer_map_in_matplotlibs_colours():
    name, _ = _explorer_colour_scale()
    script = PLOTLY_JS.read_text(encoding="utf-8")
    found = re.search(name + r':(\[\[.*?\]\])[,}]', script)
    assert found, f"plotly.js has no colour scale {name}"
    stops = re.findall(r'\[([\d.]+),"rgb\((\d+),(\d+),(\d+)\)"\]', found.group(1))
    assert len(stops) >= 5
    colour_map = matplotlib.colormaps[plots.ATTENTION_CMAP.removesuffix("_r")]  # plotly's unreversed
    for position, *rgb in stops:
        plotly_colour = "#{:02x}{:02x}{:02x}".format(*map(int, rgb))
        ours = mcolors.to_hex(colour_map(float(position)))
        assert delta_e(plotly_colour, ours, "normal") < 5, (position, plotly_colour, ours)


def test_annotated_weights_keep_a_readable_contrast(ax):
    weights = np.linspace(0, 1, 21).reshape(3, 7)
    plots.attention_heatmap(ax, weights, list("abc"), list("abcdefg"), annotate=True, colorbar=False)
    image = ax.get_images()[0]
    for text, weight in zip(ax.texts, weights.ravel(), strict=True):
        cell = _linear_rgb(mcolors.to_hex(image.cmap(image.norm(weight))))
        ink = _linear_rgb(text.get_color())
        lum = [float(np.array([0.2126, 0.7152, 0.0722]) @ c) for c in (cell, ink)]
        contrast = (max(lum) + 0.05) / (min(lum) + 0.05)
        assert contrast >= 4.5, (weight, text.get_color(), contrast)
