"""Reproducible set-up: one call seeds every generator and picks the device.

Every chapter starts with ``device = runtime.setup(seed)`` so that a re-run prints the same
numbers, and ends its numeric cells with :func:`show`, which rounds what it prints so that the
stored outputs compare equal on any x86-64 machine (nbval re-runs every chapter).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch

__all__ = ["setup", "show", "resolve_device"]


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
