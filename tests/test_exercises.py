"""The exercise checks themselves: verdicts, and one checker for every check cell of the book."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from transformer_course.exercises import _core, check, evaluate, exercise_ids
from transformer_course.exercises._core import NotYet, checker

ROOT = Path(__file__).resolve().parents[1]
CHECK = re.compile(r'^exercises\.check\("([^"]+)"', re.M)


def checked_labels() -> list[str]:
    labels = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                labels += CHECK.findall("".join(cell["source"]))
    return labels


def test_every_check_cell_has_a_checker_and_every_checker_a_check_cell():
    labels = checked_labels()
    assert len(labels) == len(set(labels)), "an exercise is checked twice"
    assert sorted(labels) == exercise_ids()


def test_verdicts_never_end_in_a_traceback(capsys, monkeypatch):
    # A test of the registry itself (the private _core): a checker registered for this test only,
    # in a copy of the registry that monkeypatch puts back afterwards, whether the test passes or not.
    monkeypatch.setattr(_core, "_CHECKERS", dict(_core._CHECKERS))

    @checker("test-only-square")
    def _square(fn):
        if fn(3) != 9:
            raise NotYet("square the number")

    def stub(x):
        raise NotImplementedError()

    assert evaluate("test-only-square", lambda x: x * x).correct
    assert evaluate("test-only-square", stub).status == "not attempted yet"
    assert evaluate("test-only-square", ...).status == "not attempted yet"
    wrong = evaluate("test-only-square", lambda x: 2 * x)
    assert (wrong.status, wrong.hint) == ("not yet", "square the number")
    crashed = evaluate("test-only-square", lambda x: x.shape)
    assert crashed.status == "not yet" and crashed.hint.startswith("your code raised AttributeError")
    check("test-only-square", lambda x: 2 * x)
    assert capsys.readouterr().out == "test-only-square: not yet - square the number\n"


def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match=r"exercise: expected one of .*'ch9-nothing'"):
        evaluate("ch9-nothing", None)


def test_the_wrong_kind_of_answer_is_named_before_the_checker_runs(monkeypatch):
    # _core.answer_mismatch reads the checker's signature: the number of answers, "type" (a class is
    # expected) and "Callable" (a function is expected); the checker itself never runs on a mismatch.
    monkeypatch.setattr(_core, "_CHECKERS", dict(_core._CHECKERS))
    ran = []

    @checker("test-only-kinds")
    def _kinds(cls: type, fn: Callable) -> None:
        ran.append(True)
        _core.call(fn, "fn", 1, 2)

    class Answer:
        pass

    def one_argument(x):
        return x

    cases = {
        (Answer,): 'this check takes 2 answers (cls, fn), got 1: exercises.check("test-only-kinds", cls, fn)',
        (Answer(), one_argument): "cls should be a class, got an object of class Answer: pass the class "
                                  "itself (Answer, not Answer(...)); the check builds its own objects",
        (one_argument, one_argument): "cls should be a class, got the function one_argument",
        (Answer, 3): "fn should be a function, got an object of class int",
    }
    for answers, hint in cases.items():
        verdict = evaluate("test-only-kinds", *answers)
        assert (verdict.status, verdict.hint) == ("not yet", hint)
    assert not ran
    verdict = evaluate("test-only-kinds", Answer, one_argument)  # the right kinds: the checker runs
    assert ran and verdict.hint == "fn should take 2 arguments; yours takes (x)"
