"""Shared pytest set-up: the ``gpu`` marker, hypothesis settings and small helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: tests never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests run the same examples on every machine (no flaky CI); `HYPOTHESIS_PROFILE=dev`
# explores new random examples instead.
# The chapter list and deck paths come from the deck builder itself (slides/build_decks.py), so
# the tests check exactly what `make book` builds.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "slides"))

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


@pytest.fixture
def ax():
    """A fresh matplotlib Axes, closed after the test."""
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)
