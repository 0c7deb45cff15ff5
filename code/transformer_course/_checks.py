"""Argument checks shared by the package's public entry points.

The modules that teach (attention, encoder, ...) open with their formulas; the checks that give a
clear ``TypeError``/``ValueError`` naming the argument, what was expected and what came live here,
and run once, at the door: a stack of layers checks its input, its layers do not check it again.
"""

from __future__ import annotations

import torch


def positive_int(value: object, name: str) -> None:
    """Raise unless ``value`` is a positive int (a bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")


def int_at_least(value: object, name: str, minimum: int) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool), ValueError if below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def positive_number(value: object, name: str, allow_none: bool = False) -> None:
    """Raise ValueError unless ``value`` is a positive int or float (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        expected = "a positive number or None" if allow_none else "a positive number"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


def boolean(value: object, name: str) -> None:
    """Raise TypeError unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def probability(value: object, name: str) -> None:
    """Raise ValueError unless ``value`` is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")


def one_of(value: object, choices: tuple | list | dict, name: str) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")


def float_tensor(x: object, name: str, shape: str, width: int | None = None, ndim: int = 3) -> None:
    """Raise unless ``x`` is a float tensor with ``ndim`` dims whose last dim is ``width``.

    ``shape`` is the expected shape as the error message writes it, e.g. ``"(B, T, D=8)"``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim or (width is not None and x.shape[-1] != width):
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def bool_mask(mask: object, name: str = "mask") -> torch.Tensor:
    """Validate a "may attend" mask (bool, or 0/1 integer) and return it as a bool tensor.

    An integer mask is checked for values other than 0 and 1, which reads its values back (a
    host-device synchronisation on a GPU): do it once per forward pass, not once per layer.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a bool or 0/1 integer tensor, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(
            f"{name}: expected dtype torch.bool (True = may attend) or a 0/1 integer dtype, "
            f"got {mask.dtype}"
        )
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError(f"{name}: an integer mask must hold only 0 and 1 (1 = may attend)")
    return mask.bool()


def token_ids(input_ids: object, vocab_size: int, name: str = "input_ids") -> None:
    """Raise a clear error unless ``input_ids`` is an integer tensor of ids in [0, vocab_size)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"{name}: expected a LongTensor of token ids, got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
        raise TypeError(f"{name}: expected an integer dtype (torch.long), got {input_ids.dtype}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(
            f"{name}: ids must lie in [0, {vocab_size}) (the vocabulary size), "
            f"got values in [{int(input_ids.min())}, {int(input_ids.max())}]"
        )
