"""Shared pytest set-up: the ``gpu``, ``slow`` and ``book`` markers, hypothesis settings, global torch state
restored after every test, the browser tests' Chromium and local server, the accessibility summary at
the end of a run, and small helpers (import them with ``from conftest import ...``)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: tests never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests run the same examples on every machine (no flaky CI); `HYPOTHESIS_PROFILE=dev`
# explores new random examples instead.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
    config.addinivalue_line(
        "markers",
        "slow: starts processes, a browser, the book build, a notebook or a benchmark; "
        "`make check` leaves them out, `make test` runs everything",
    )
    config.addinivalue_line(
        "markers",
        "book: reads the built book in _build/html (skipped when it is missing, wrong when it is stale); "
        "`make check` leaves them out, `make test` builds the book first",
    )


# What axe-core found that does not fail a test ("moderate" and "minor" impact), collected by the
# browser tests through record_accessibility_findings (tests/browser_support.py's
# check_accessibility) and listed once at the end of the run, so that it is seen without -s and
# without failing the build.
ACCESSIBILITY_FINDINGS = pytest.StashKey[list]()
ACCESSIBILITY_CHECKED = pytest.StashKey[set]()  # every page and deck view axe-core looked at


def record_accessibility_findings(config: pytest.Config, page: str, violations: list[dict]) -> None:
    """Keeps one (page, rule id, impact, node count) row per violation for the run's summary."""
    config.stash.setdefault(ACCESSIBILITY_CHECKED, set()).add(page)
    rows = config.stash.setdefault(ACCESSIBILITY_FINDINGS, [])
    rows += [(page, v["id"], v["impact"], len(v["targets"])) for v in violations]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Lists the recorded accessibility findings, one line per page and rule, after the tests."""
    checked = config.stash.get(ACCESSIBILITY_CHECKED, set())
    if not checked:
        return
    rows = config.stash.get(ACCESSIBILITY_FINDINGS, [])
    terminalreporter.section("accessibility: moderate and minor findings of axe-core (not failures)")
    terminalreporter.write_line(f"axe-core checked {len(checked)} pages and deck views;"
                                f" {len(rows) or 'no'} moderate or minor finding{'s' * (len(rows) != 1)}")
    width = max((len(page) for page, *_ in rows), default=0)
    for page, rule, impact, count in sorted(rows):
        terminalreporter.write_line(f"{page:<{width}}  {rule} ({impact}): {count} node{'s' * (count > 1)}")


# For the browser tests (tests/test_browser*.py): one local server and one Chromium per test module.
@pytest.fixture(scope="module")
def base_url():
    """The built book (_build/html) served on 127.0.0.1; yields its address."""
    from browser_support import HTML

    from book_tools import chromium

    with chromium.serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that can reach only 127.0.0.1, its console and network logs kept."""
    from book_tools import chromium

    if not chromium.available():
        pytest.skip(f"needs {chromium.CHROMIUM} and {chromium.CHROMEDRIVER}"
                    " (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium.webdriver")
    # The console and network logs are kept: the tests look there for errors and for requests to
    # another host (which fail to resolve, but are logged).
    with chromium.browser(timeout=60, logs=True) as driver:
        driver.get("about:blank")  # the browser's own start-up requests land before the first page
        yield driver


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none found)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _two_threads():
    """Pin torch to at most 2 threads so results do not depend on the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _restore_torch_state():
    """Undo what a test (or ``runtime.setup`` inside it) changes in torch's process-wide settings."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    dtype = torch.get_default_dtype()
    rng = torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = flags
    torch.set_default_dtype(dtype)
    torch.set_rng_state(rng)


def random_padding_mask(
    gen: torch.Generator, B: int, T: int, full_first: bool = False, short_last: bool = False
) -> torch.Tensor:
    """(B, T) padding mask, True = real token: lengths drawn in [1, T] from ``gen`` (every row keeps
    its first token); ``full_first`` makes row 0 length T, ``short_last`` makes the last row length 1."""
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    if full_first:
        lengths[0] = T
    if short_last:
        lengths[-1] = 1
    return torch.arange(T)[None, :] < lengths[:, None]


def padding_mask_from_lengths(lengths: torch.Tensor | list[int], T: int) -> torch.Tensor:
    """(B, T) padding mask, True = real token, for the given lengths (0 gives a fully masked row)."""
    lengths = torch.as_tensor(lengths)
    return torch.arange(T)[None, :] < lengths[:, None]


@pytest.fixture(scope="session")
def other_cpu_env() -> dict[str, str]:
    """Another processor's code paths: the KEY=VALUE settings of tests/other_cpu.env (the
    Makefile's nbval-other-cpu reads the same file)."""
    path = Path(__file__).resolve().parent / "other_cpu.env"
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture
def ax():
    """A fresh matplotlib Axes, closed after the test."""
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


def solution_namespace(chapter: str, label: str) -> dict:
    """Run the instructor's solution of exercise ``label`` and return the names it defines.

    The solution is the code between the ``{solution-start} label`` and ``{solution-end}`` cells
    of ``chapters/<chapter>.ipynb``; it runs with the imports every chapter has (math, numpy as
    np, torch, torch.nn as nn and the package's modules), so exercise functions must not rely on
    other variables of the chapter.
    """
    import importlib
    import json
    import math

    import numpy as np

    root = Path(__file__).resolve().parents[1]
    cells = json.loads((root / "chapters" / f"{chapter}.ipynb").read_text(encoding="utf-8"))["cells"]
    namespace: dict = {"math": math, "np": np, "torch": torch, "nn": torch.nn}
    for module in ("attention", "embedding", "encoder", "positional", "rnn", "tasks", "tokenization"):
        namespace[module] = importlib.import_module(f"transformer_course.{module}")
    inside, found = False, False
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{solution-start}" in source:
            inside = f"{{solution-start}} {label}" in source
            continue
        if cell["cell_type"] == "markdown" and "{solution-end}" in source:
            inside = False
            continue
        if inside and cell["cell_type"] == "code":
            exec(compile(source, f"{chapter}:{label}", "exec"), namespace)  # noqa: S102
            found = True
    if not found:
        raise LookupError(f"{chapter}: no solution code for exercise {label!r}")
    return namespace


def exercise_stub(*args, **kwargs):
    """What `make student` leaves of an exercise: a body that raises NotImplementedError."""
    raise NotImplementedError("write this function")


def assert_not_yet_hiding(verdict, forbidden) -> None:
    """A "not yet" verdict with a hint that shows none of the ``forbidden`` numbers."""
    assert verdict.status == "not yet", verdict
    assert verdict.hint
    for value in forbidden:
        for text in (repr(value), f"{value:.3g}", f"{value:.4f}", f"{value:.6f}"):
            assert text not in verdict.hint, f"the hint gives away {text}: {verdict.hint}"
