"""What nbval compares is what every x86-64 processor reproduces.

Floating-point results differ in their last bits between processors (AVX2, AVX-512, AMX; Intel or
AMD) and thread counts, and training amplifies the difference. So the stored outputs that nbval
compares carry only stable digits:

- a glued number carries no more digits than the prose shows, and every reference to it shows
  the same digits (no second rounding of a rounded value);
- a cell whose output is not stable (versions, timings, trained results, last-bit errors) is
  kept out of the comparison with the ``nbval-ignore-output`` tag, and is listed below with the
  reason; a trained or last-bit cell has its claim asserted (in the cell or in the code cell
  beside it), so the claim is still checked.

Whether the kept digits really are stable is checked by running every chapter again under another
processor's code paths, the settings of ``tests/other_cpu.env``: the numbered chapters through
their student notebooks (``tests/test_student.py``), the appendices by ``make nbval-other-cpu``,
both part of ``make test``; :func:`test_the_other_cpu_settings_change_the_digits` checks that
those settings are not a no-op on this machine.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from book_tools.myst import glued_values
from book_tools.toc import toc_chapters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = toc_chapters()
PAGES = [ROOT / name for name in ("intro.md", "glossary.md", "bibliography.md")]
GLUE = re.compile(r"\{glue(?::\w+)?\}`(?P<name>[^`:]+)(?::(?P<spec>[^`]*))?`")

# Every cell nbval does not compare, by chapter and cell id, with the reason. The first word is
# the kind: "environment" (versions, devices), "timing", "page" (generated HTML), "trained" (a
# training run, whose digits move with the float kernels) or "last bits" (measured rounding
# errors). The claims of trained and last-bit cells are asserted, in the cell or beside it.
IGNORED = {
    "01_rnn_limits": {
        "ch1-cell-03": "environment: torch and numpy versions, the device",
        "ch1-loop-4": "trained: the loop trained by hand, its losses",
        "ch1-cell-12": "trained: the RNN and LSTM accuracy grids",
        "ch1-cell-19": "trained: the copy task by length",
        "ch1-cell-25": "timing: microseconds per token, RNN against an encoder layer",
        "ch1-cell-26": "timing: the figure of those times",
        "ch1-cell-36": "trained: runs with and without gradient clipping",
    },
    "02_transformer_architecture": {
        "ch2-cell-03": "environment: torch and numpy versions, the device",
        "ch2-table-time": "timing: milliseconds of an RNN and of attention",
    },
    "03_input_processing": {
        "ch3-cell-03": "environment: Python, torch and numpy versions, the device",
        "ch3-cell-17": "timing: seconds to train the BPE vocabularies",
        "ch3-cell-44": "last bits: float32 and float64 errors of the sinusoidal shift",
        "ch3-cell-shift-4": "trained: sinusoidal against learned positions, three seeds",
    },
    "04_self_attention": {
        "ch4-cell-03": "environment: torch and numpy versions, the device",
        "ch4-cell-explorer": "page: the explorer's HTML embeds generated ids",
        "ch4-heads-2": "trained: one head against four on the two-position task, three seeds each",
    },
    "05_encoder": {
        "41963706": "environment: torch and numpy versions, the device, the threads",
        "3de39bfa": "last bits: our encoder against torch.nn.TransformerEncoder",
        "559772e5": "last bits: our encoder against transformers.BertModel",
        "d5861f36": "trained: deep stacks, post-LN, pre-LN and without layer norm",
        "ch5-noln-seeds-2": "trained: the stack without layer norm on three seeds",
        "ab190e81": "trained: the distance grids of every model",
        "b9a8e8e7": "trained: attention weight on the answer after training",
    },
    "06_encoder_at_work": {
        "5bd90659": "environment: torch and numpy versions, the device, the threads",
        "b4ba1619": "timing: seconds per model",
    },
    "appendix_real_encoder": {
        "cb80997f": "environment: package versions",
        "d56b89c3": "last bits: our encoder against the reference",
        "6520d5a9": "timing: one forward pass, in milliseconds",
    },
    "appendix_scale": {
        "d33d0b62": "environment: torch version, CUDA, the threads",
        "7921fd1c": "timing: the command line's progress and times",
    },
}
KINDS = ("environment", "timing", "page", "trained", "last bits")


def _cells(chapter: str) -> list[dict]:
    return json.loads((ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _references() -> dict[str, set[str]]:
    """Glue name -> the format specs the book's prose shows it with ("" for none)."""
    texts = [_source(c) for chapter in CHAPTERS for c in _cells(chapter) if c["cell_type"] == "markdown"]
    texts += [page.read_text(encoding="utf-8") for page in PAGES if page.is_file()]
    references: dict[str, set[str]] = {}
    for text in texts:
        for match in GLUE.finditer(text):
            references.setdefault(match["name"].split("::")[-1], set()).add(match["spec"] or "")
    return references


def shown_digits(spec: str) -> tuple[str, int] | None:
    """What a format spec shows of a number: ("decimals", n), ("significant", n), or None for
    one that shows integers only. ValueError for a spec this test does not know.

    >>> shown_digits(".2f"), shown_digits(".0%"), shown_digits(".2g"), shown_digits(",d"), shown_digits(".0e")
    (('decimals', 2), ('decimals', 2), ('significant', 2), None, ('significant', 1))
    """
    match = re.fullmatch(r"[<>=^]?[+\- ]?,?(?:\.(?P<precision>\d+))?(?P<type>[fF%gGde]?)", spec)
    if not match or (match["type"] == "d" and match["precision"]):
        raise ValueError(f"format spec {spec!r}: add its digits to shown_digits")
    kind, precision = match["type"], match["precision"]
    if kind == "d":
        return None
    if kind and kind in "fF%":
        return "decimals", int(precision or 6) + (2 if kind == "%" else 0)
    if kind == "e":  # one digit before the point, precision after it
        return "significant", int(precision or 6) + 1
    return "significant", int(precision or 6)  # "g", or no type: at most that many significant digits


def carried_digits(value: float) -> tuple[int, int]:
    """(decimals, significant digits) of a stored float, trailing zeros left out.

    >>> carried_digits(0.57), carried_digits(24000.0), carried_digits(0.0033), carried_digits(1.0)
    ((2, 2), (0, 2), (4, 2), (0, 1))
    """
    number = Decimal(repr(value)).normalize()
    _, digits, exponent = number.as_tuple()
    return max(0, -exponent), len(digits)


def _records() -> dict[str, tuple[str, str]]:
    return {name: (chapter, text) for chapter in CHAPTERS for name, text in glued_values(
        {"cells": _cells(chapter)}).items()}


def test_every_glued_number_carries_only_the_digits_the_prose_shows():
    references = _references()
    problems = []
    for name, (chapter, text) in sorted(_records().items()):
        specs = references.get(name)
        if not specs:
            problems.append(f"{chapter}: {name} is glued but the prose never shows it: glue what is shown")
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            problems.append(f"{chapter}: {name} holds {text!r}, not a Python number or string")
            continue
        if isinstance(value, bool) or not isinstance(value, float):
            continue  # integers and strings show every character, and are exact
        shows = {shown_digits(spec) for spec in specs} if "" not in specs else {None}
        if len(shows) > 1 or None in shows:
            problems.append(f"{chapter}: {name} is shown with the formats {sorted(specs)}: show a glued "
                            "float with one format that gives its digits (e.g. :.2f), everywhere")
            continue
        ((kind, limit),) = shows
        decimals, significant = carried_digits(value)
        carried = decimals if kind == "decimals" else significant
        if carried > limit:
            unit = "decimals" if kind == "decimals" else "significant digits"
            problems.append(f"{chapter}: {name} stores {text} ({carried} {unit}) but the prose shows "
                            f"{limit}: glue it rounded to what is shown")
    assert not problems, "\n".join(problems)


def test_every_ignored_cell_is_listed_with_its_reason():
    tagged = {chapter.split("/")[-1]: {c["id"] for c in _cells(chapter)
                                        if "nbval-ignore-output" in c.get("metadata", {}).get("tags", [])}
              for chapter in CHAPTERS}
    listed = {chapter: set(cells) for chapter, cells in IGNORED.items()}
    unlisted = {ch: sorted(ids - listed.get(ch, set())) for ch, ids in tagged.items()}
    stale = {ch: sorted(ids - tagged.get(ch, set())) for ch, ids in listed.items()}
    unlisted, stale = ({ch: ids for ch, ids in d.items() if ids} for d in (unlisted, stale))
    assert not unlisted, f"cells kept out of nbval's comparison without a reason in IGNORED: {unlisted}"
    assert not stale, f"IGNORED lists cells that nbval compares (or that are gone): {stale}"
    reasons = [reason for cells in IGNORED.values() for reason in cells.values()]
    for reason in reasons:
        kind, _, why = reason.partition(":")
        assert kind in KINDS and len(why.strip()) > 5, f"give the kind, one of {KINDS}, and why: {reason!r}"


@pytest.mark.parametrize("chapter", sorted(IGNORED))
def test_an_ignored_trained_or_last_bit_cell_has_its_claim_asserted(chapter):
    """Kept out of the comparison is not kept out of the checks. A trained or last-bit cell
    asserts its claim with margins, itself or in the code cell next to it: the book's pattern is
    a compared cell that asserts (and shows True) beside an ignored one that prints the numbers."""
    code = [c for c in _cells(f"chapters/{chapter}") if c["cell_type"] == "code"]
    index = {cell["id"]: i for i, cell in enumerate(code)}

    def asserts(i: int) -> bool:
        return 0 <= i < len(code) and bool(re.search(r"^\s*assert\b", _source(code[i]), re.M))

    claims = [cell for cell, why in IGNORED[chapter].items() if why.startswith(("trained", "last bits"))]
    silent = [cell for cell in claims if not any(asserts(index[cell] + k) for k in (0, -1, 1))]
    assert not silent, f"{chapter}: ignored cells whose claim no cell beside them asserts: {silent}"


_PROBE = """
import torch
torch.manual_seed(0)
a, b = torch.randn(512, 512), torch.randn(512, 512)
x = torch.randn(64, 1000)
print(torch.backends.cpu.get_cpu_capability(), (a @ b).sum().item(), torch.softmax(x, -1).sum().item())
"""


def test_the_other_cpu_settings_change_the_digits(other_cpu_env):
    """On a machine with AVX-512, the settings of the second nbval pass make PyTorch and MKL take
    another processor's code paths (else that pass would only repeat the first)."""
    env = other_cpu_env
    assert {"MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"} <= set(env)

    def probe(extra: dict[str, str]) -> list[str]:
        base = {k: v for k, v in os.environ.items() if k not in env}
        result = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **extra}, capture_output=True,
                                text=True, check=True, timeout=120)
        return result.stdout.split()

    native, other = probe({}), probe(env)
    if native[0] != "AVX512":
        pytest.skip(f"torch's kernels here are {native[0]}: the settings name another CPU only on AVX-512")
    assert other[0] == env["ATEN_CPU_CAPABILITY"].upper()
    assert native[1:] != other[1:], "the other-CPU settings gave the same digits as the native run"
