"""Reproducible set-up, and the small contexts every loop of the package shares.

Every chapter starts with ``device = runtime.setup(seed)`` so that a re-run prints the same
numbers, and ends its numeric cells with :func:`show`, which rounds what it prints so that the
stored outputs compare equal on any x86-64 machine (nbval re-runs every chapter).
:func:`show_source` prints a package function as a chapter shows it: the computation, without its
docstring and argument checks (one copy of the code, which cannot drift from what runs).

The loops of the package (training, scoring, embedding sentences) share four helpers, written
once here: :func:`autocast` (mixed precision, or nothing), :func:`eval_mode` (eval mode for a
block, the previous mode restored), :func:`num_threads` (torch's CPU threads for a block) and
:func:`progress_bar` (a tqdm bar that ``TQDM_DISABLE=1`` can always turn off).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import random
import textwrap
import warnings
from collections.abc import Callable, Iterator, Mapping
from numbers import Real

import numpy as np
import torch
from torch import nn
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to a text
    # bar, which works in Jupyter too; silencing it keeps the chapters' outputs the same whether
    # or not ipywidgets is installed.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from . import _checks

__all__ = ["setup", "show", "show_source", "computation_source", "resolve_device", "autocast", "eval_mode",
           "num_threads", "progress_bar"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Turn ``None`` (CUDA when present, else CPU), a string or a device into a ``torch.device``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device: expected None, a str or a torch.device, got {type(device).__name__}")
    return torch.device(device)


def setup(seed: int = 0, device: str | torch.device | None = None) -> torch.device:
    """Seed Python, NumPy and torch, make kernels deterministic and return the device to use.

    TF32 is turned off so that CUDA matmuls are true float32 (parity with the CPU to ~1e-6
    instead of ~1e-3), and deterministic algorithms are requested with ``warn_only=True``: an
    operation without a deterministic kernel warns instead of failing.

    Args:
        seed: the seed of every generator. Default: 0.
        device: ``None`` picks CUDA when available, else the CPU; or a name such as ``"cpu"``.

    Returns:
        The ``torch.device`` to create models and data on.

    Examples:
        >>> device = setup(seed=0, device="cpu")
        >>> device.type
        'cpu'
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    device = resolve_device(device)
    # cuBLAS needs a fixed workspace to be deterministic; it must be set before its first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def _round(value: object, digits: int) -> object:
    """Round numbers (also inside tensors, arrays, lists and dicts) for stable printing."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return _round(value.item() if value.ndim == 0 else value.tolist(), digits)
    if isinstance(value, np.ndarray):
        return _round(value.tolist(), digits)
    if isinstance(value, np.generic):
        return _round(value.item(), digits)
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, Real):
        rounded = float(f"{float(value):.{digits}g}")
        return 0.0 if rounded == 0 else rounded  # never print "-0.0"
    if isinstance(value, Mapping):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_round(v, digits) for v in value)
    return value


def show(label: str, value: object, digits: int = 3) -> None:
    """Print ``label: value`` with every number rounded to ``digits`` significant digits.

    Stored notebook outputs must not depend on the last bits of a float, which differ between
    CPU types and thread counts; rounding to a few significant digits keeps them comparable.

    Examples:
        >>> show("loss", 0.123456)
        loss: 0.123
        >>> show("norms", [1.23456e-5, 2.0])
        norms: [1.23e-05, 2.0]
    """
    print(f"{label}: {_round(value, digits)}")


def _only_checks(node: ast.AST) -> bool:
    """A ``raise``, or an ``if``/``for`` without ``else`` that only prepares a message and raises."""
    if isinstance(node, ast.Raise):
        return True
    body = getattr(node, "body", [])
    return (isinstance(node, ast.If | ast.For) and not node.orelse and _only_checks(body[-1])
            and all(isinstance(statement, ast.Assign) or _only_checks(statement) for statement in body))


def computation_source(function: Callable) -> str:
    """The source of ``function`` without its docstring and its argument checks: what it computes.

    A check is a ``raise`` statement, or an ``if``/``for`` (without ``else``) whose body only
    assigns and raises; such blocks are left out wherever they are, and so is the docstring.

    Examples:
        >>> from transformer_course import attention
        >>> source = computation_source(attention.to_torch_key_padding_mask)
        >>> source.splitlines()[0].startswith("def to_torch_key_padding_mask(")
        True
        >>> "Examples" in source or "raise" in source
        False
    """
    source = textwrap.dedent(inspect.getsource(function))
    tree = ast.parse(source).body[0]
    hidden: set[int] = set()
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):  # the docstring
        hidden.update(range(first.lineno, first.end_lineno + 1))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for statement in body if isinstance(body, list) else []:
            if _only_checks(statement):
                hidden.update(range(statement.lineno, statement.end_lineno + 1))
    return "\n".join(line for number, line in enumerate(source.splitlines(), 1) if number not in hidden)


def show_source(function: Callable) -> None:
    """Print :func:`computation_source` of ``function`` under a line that names it."""
    print(f"# {function.__module__}.{function.__qualname__}, without its docstring and argument checks")
    print(computation_source(function))


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; None or float32: a block that runs
    as written (full precision).

    Examples:
        >>> with autocast(torch.device("cpu"), torch.bfloat16):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
        >>> with autocast(torch.device("cpu"), None):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.float32
    """
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected None or a floating-point torch.dtype, got {dtype!r}")
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode (dropout off), then restore its previous mode.

    Examples:
        >>> layer = nn.Dropout(0.5)
        >>> with eval_mode(layer):
        ...     layer.training
        False
        >>> layer.training
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave them), then restore them.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with num_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if threads is None:
        yield
        return
    _checks.positive_int(threads, "threads")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def progress_bar(total: int, desc: str | None = None, enabled: bool = True, **options: object) -> tqdm:
    """A tqdm bar of ``total`` units (a widget in Jupyter, text elsewhere); use it as a context.

    ``enabled=False`` turns it off; ``enabled=True`` leaves the choice to tqdm, so that
    ``TQDM_DISABLE=1`` (set when the chapters are executed and tested) still turns it off.
    ``options`` go to tqdm (``initial``, ``leave``, ``unit``).

    Examples:
        >>> with progress_bar(3, "steps", enabled=False) as bar:
        ...     bar.disable
        True
    """
    _checks.boolean(enabled, "enabled")
    return tqdm(total=total, desc=desc, **options, **({} if enabled else {"disable": True}))
