"""Checks for the book's exercises: they test the student's own code on cases it has not seen.

Each exercise of a chapter ends with a check cell such as::

    exercises.check("ch4-attention", attention)

which calls the student's function on new inputs, compares the results with the package's own
implementation, and prints one line:

- ``ch4-attention: correct``;
- ``ch4-attention: not yet - <a hint that does not give the answer away>``;
- ``ch4-attention: not attempted yet`` while the exercise is still the stub of the student
  notebook (its body raises ``NotImplementedError``, or the answer is ``...``).

A check never ends in a traceback: an exception raised by the student's code becomes a "not
yet" naming it. The checkers live in one module per chapter (``ch1`` ... ``ch6``) and register
themselves with :func:`~transformer_course.exercises._core.checker`; :func:`evaluate` returns
the verdict without printing it, for tests.

Examples:
    >>> def not_started(q, k, v):
    ...     raise NotImplementedError()
    >>> check("ch4-attention", not_started)
    ch4-attention: not attempted yet
"""

from . import ch1, ch2, ch3, ch4, ch5, ch6  # noqa: F401  (each registers its checkers)
from ._core import Verdict, check, evaluate, exercise_ids

__all__ = ["Verdict", "check", "evaluate", "exercise_ids"]
