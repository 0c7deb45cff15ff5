"""The machinery of the exercise checks: a registry, the verdicts, and helpers checkers share."""

from __future__ import annotations

import builtins
import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

_CHECKERS: dict[str, Callable[..., None]] = {}

STATUSES = ("correct", "not yet", "not attempted yet")


class NotYet(Exception):
    """Raised by a checker when the answer is wrong; its message is the hint shown to the student."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``status`` is one of :data:`STATUSES`; ``hint`` explains "not yet"."""

    exercise: str
    status: str
    hint: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{self.exercise}: {self.status}" + (f" - {self.hint}" if self.hint else "")


def checker(exercise: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated function as the checker of ``exercise``.

    A checker receives the student's answers, returns None when they are right and raises
    :class:`NotYet` with a hint when they are not. It must test cases the chapter does not show.
    """

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        if exercise in _CHECKERS:
            raise ValueError(f"exercise {exercise!r} has two checkers")
        _CHECKERS[exercise] = fn
        return fn

    return register


def exercise_ids() -> list[str]:
    """Every exercise that has a checker, sorted."""
    return sorted(_CHECKERS)


def evaluate(exercise: str, *answers: object) -> Verdict:
    """Run the checker of ``exercise`` on ``answers`` and return its :class:`Verdict` (no printing)."""
    if exercise not in _CHECKERS:
        raise ValueError(f"exercise: expected one of {exercise_ids()}, got {exercise!r}")
    if any(answer is ... for answer in answers):
        return Verdict(exercise, "not attempted yet")
    mismatch = answer_mismatch(exercise, answers)
    if mismatch:  # the check was called with something else than it checks: say so before calling
        return Verdict(exercise, "not yet", mismatch)
    try:
        _CHECKERS[exercise](*answers)
    except NotImplementedError:
        return Verdict(exercise, "not attempted yet")
    except NotYet as wrong:
        return Verdict(exercise, "not yet", str(wrong))
    except Exception as error:  # the student's code failed: say how, without a traceback
        return Verdict(exercise, "not yet", f"your code raised {type(error).__name__}: {error}")
    return Verdict(exercise, "correct")


def answer_mismatch(exercise: str, answers: tuple) -> str:
    """What is wrong with the kind of ``answers`` given to the check of ``exercise``, or "" if nothing.

    Read from the checker's signature: its number of parameters, and their annotations ``type`` (the
    class itself is expected, not an instance of it) and ``Callable`` (a function is expected). This
    runs before the checker, so that a wrong argument is not reported as an error of the student's code.
    """
    parameters = list(inspect.signature(_CHECKERS[exercise]).parameters.values())
    if any(parameter.kind is parameter.VAR_POSITIONAL for parameter in parameters):
        return ""  # a checker of any number of answers says itself what it expects
    names = ", ".join(parameter.name for parameter in parameters)
    if len(answers) != len(parameters):
        return (f'this check takes {len(parameters)} answer{"s" * (len(parameters) > 1)} ({names}), '
                f'got {len(answers)}: exercises.check("{exercise}", {names})')
    for parameter, answer in zip(parameters, answers, strict=True):
        annotation = parameter.annotation  # a string under `from __future__ import annotations`
        expected = "type" if annotation is type else str(annotation).replace("typing.", "").replace(
            "collections.abc.", "")
        if expected == "type" and not isinstance(answer, type):
            kind = type(answer).__name__
            if inspect.isroutine(answer):
                return f"{parameter.name} should be a class, got the function {answer.__name__}"
            if getattr(builtins, kind, None) is type(answer):  # a number, a string, a list...
                return f"{parameter.name} should be a class, got {kind}"
            return (f"{parameter.name} should be a class, got an object of class {kind}: pass the class "
                    f"itself ({kind}, not {kind}(...)); the check builds its own objects")
        if expected.startswith("Callable") and not callable(answer):
            return f"{parameter.name} should be a function, got an object of class {type(answer).__name__}"
    return ""


def call(fn: Callable, name: str, *args: object, **kwargs: object) -> object:
    """Call the student's ``fn(*args, **kwargs)`` after checking that it accepts these arguments.

    A function, a class (its ``__init__``) or a module (its ``forward``) that takes other
    parameters gets :class:`NotYet` saying what the check passes, instead of the ``TypeError`` that
    calling it would raise inside the student's code.
    """
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a callable without a signature (a builtin): just call it
        return fn(*args, **kwargs)
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        wanted = f"{len(args)} argument{'s' * (len(args) != 1)}"
        if kwargs:
            wanted += f" and the keyword argument{'s' * (len(kwargs) > 1)} {', '.join(kwargs)}"
        takes = ", ".join(signature.parameters)
        raise NotYet(f"{name} should take {wanted}; yours takes ({takes})") from None
    return fn(*args, **kwargs)


def check(exercise: str, *answers: object) -> None:
    """Check the student's ``answers`` to ``exercise`` and print the verdict in one line."""
    print(evaluate(exercise, *answers))


# ---------------------------------------------------------------- helpers for the checkers


def expect(condition: bool, hint: str) -> None:
    """Raise :class:`NotYet` with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise NotYet(hint)


def as_number(value: object, name: str, whole: bool = False) -> float | int:
    """The one number that the student's function ``name`` returned, as a Python float (an int with
    ``whole``), or :class:`NotYet` saying what was expected.

    A one-element tensor or array and a NumPy scalar count as their number; a bool, a string or a
    list does not. With ``whole``, the number must also be whole (``5.0`` counts as 5).
    """
    if isinstance(value, torch.Tensor | np.ndarray | np.generic) and math.prod(value.shape) == 1:
        value = value.item()
    kind = "an int" if whole else "a float"
    expect(isinstance(value, numbers.Real) and not isinstance(value, bool),
           f"{name} should return one number ({kind}), got {type(value).__name__}")
    if not whole:
        return float(value)
    whole_valued = isinstance(value, numbers.Integral) or float(value).is_integer()
    expect(whole_valued, f"{name} should return a whole number, got {value}")
    return int(value)


def close(actual: object, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether ``actual`` is a tensor of ``expected``'s shape and values (cast to its dtype), within
    ``atol`` and ``rtol`` (float32's by default): the test a checker runs against each known mistake.

    Examples:
        >>> close(torch.ones(2) + 1e-7, torch.ones(2)), close(torch.ones(3), torch.ones(2))
        (True, False)
        >>> close([1.0], torch.ones(1))  # not a tensor
        False
    """
    return (isinstance(actual, torch.Tensor) and tuple(actual.shape) == tuple(expected.shape)
            and torch.allclose(actual.detach().to(expected.dtype), expected, atol=atol, rtol=rtol))


def expect_close(actual: object, expected: object, hint: str, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Raise :class:`NotYet` with ``hint`` unless ``actual`` has the shape and values of ``expected``.

    Tensors, NumPy arrays and numbers are compared elementwise (the shape first, with its own hint).
    """
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise NotYet(f"expected a torch.Tensor, got {type(actual).__name__}")
        if tuple(actual.shape) != tuple(expected.shape):
            raise NotYet(f"expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}")
        ok = torch.allclose(actual.detach().to(expected.dtype), expected, atol=atol, rtol=rtol)
    else:
        actual_array, expected_array = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
        if actual_array.shape != expected_array.shape:
            raise NotYet(f"expected shape {expected_array.shape}, got {actual_array.shape}")
        ok = bool(np.allclose(actual_array, expected_array, atol=atol, rtol=rtol))
    if not ok:
        raise NotYet(hint)
