"""runtime: seeding, device choice, deterministic settings and rounded printing."""

from __future__ import annotations

import random

import numpy as np
import torch

from transformer_course import runtime


def test_setup_seeds_every_generator_and_sets_determinism():
    device = runtime.setup(7, device="cpu")
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.setup(7, device="cpu")
    assert draws == (random.random(), np.random.rand(), torch.rand(1).item())
    assert device == torch.device("cpu")
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cuda.matmul.allow_tf32


def test_setup_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.setup(0).type == expected


def test_show_rounds_nested_numbers(capsys):
    runtime.show("values", {"a": torch.tensor([1.23456, -0.000012345]), "b": np.float64(2 / 3), "n": 3})
    assert capsys.readouterr().out == "values: {'a': [1.23, -1.23e-05], 'b': 0.667, 'n': 3}\n"
    runtime.show("tiny", -1e-12, digits=2)
    assert capsys.readouterr().out == "tiny: -1e-12\n"


def test_show_rounds_zero_dimensional_tensors(capsys):
    runtime.show("x", torch.tensor(0.123456789))
    runtime.show("xs", [torch.tensor(0.123456789), np.float32(2.5e-7)])
    assert capsys.readouterr().out == "x: 0.123\nxs: [0.123, 2.5e-07]\n"


def _checked_square(x, name="x"):
    """A docstring the printed source leaves out.

    Examples:
        >>> _checked_square(3)
        9
    """
    if not isinstance(x, int):
        message = f"{name}: expected an int, got {type(x).__name__}"
        raise TypeError(message)
    for bound in (10**6,):
        if x > bound:
            raise ValueError(f"{name}: at most {bound}")
    if x < 0:
        x = -x  # a branch that computes stays
    return x * x


def test_computation_source_keeps_the_computation_only():
    assert runtime.computation_source(_checked_square).splitlines() == [
        'def _checked_square(x, name="x"):',
        "    if x < 0:",
        "        x = -x  # a branch that computes stays",
        "    return x * x",
    ]


def test_show_source_names_the_function(capsys):
    runtime.show_source(_checked_square)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# test_runtime._checked_square, without its docstring and argument checks"
    assert lines[1:] == runtime.computation_source(_checked_square).splitlines()
