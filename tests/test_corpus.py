"""corpus: chapter 3's sentences come from the pinned NumPy's docstrings, read the same way on any
Python: parsed from the source files (never imported), in sorted order, indentation ignored."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import sys
import warnings

import pytest

from transformer_course import corpus

# The corpus of numpy 2.4.6 (requirements.txt): its size and a digest of its text. A change here
# means the chapter's measured numbers change too (re-execute chapter 3).
PINNED_NUMPY = "2.4.6"
PINNED_SIZES = (3408, 1109)  # training and held-out sentences
PINNED_DIGEST = "63e5fd1f1333795955e8a0a7d90e255d13113121bec9c4e27a73952f655a92b8"

NUMPY_STYLE = '''Return the sum of the array elements over a given axis.

    The sum of an empty array is the neutral element 0. Nothing else
    is ever added to it.

    Parameters
    ----------
    a : array_like
        Elements to sum, given as any sequence of numbers.
    axis : None or int, optional
        Axis or axes along which a sum is performed.

    Returns
    -------
    sum_along_axis : ndarray
        An array with the same shape as a, with the given axis removed.

    See Also
    --------
    ndarray.sum : Equivalent method, written out as a sentence here.

    Notes
    -----
    Arithmetic is modular when using integer types, and no error is raised.

    .. versionadded:: 1.7.0 The keyword was added in this very release.

    Examples
    --------
    >>> np.sum([0.5, 1.5])
    2.0
    This example line would be kept if examples were prose.
    '''


@pytest.fixture(scope="module")
def loaded():
    return corpus.load()


def test_prose_keeps_descriptions_and_notes_and_drops_the_structure():
    assert corpus.prose_sentences(NUMPY_STYLE) == [
        "Return the sum of the array elements over a given axis.",
        "The sum of an empty array is the neutral element 0.",
        "Nothing else is ever added to it.",
        "Elements to sum, given as any sequence of numbers.",
        "Axis or axes along which a sum is performed.",
        "An array with the same shape as a, with the given axis removed.",
        "Arithmetic is modular when using integer types, and no error is raised.",
    ]


def test_prose_does_not_depend_on_indentation():
    """Python 3.13 strips the indentation of ``__doc__``; our text must not depend on it."""
    dedented = inspect.cleandoc(NUMPY_STYLE)
    tabbed = NUMPY_STYLE.replace("\n    ", "\n\t")
    assert corpus.prose_sentences(dedented) == corpus.prose_sentences(NUMPY_STYLE)
    assert corpus.prose_sentences(tabbed) == corpus.prose_sentences(NUMPY_STYLE)


def test_sentences_follow_the_rules():
    kept = corpus.prose_sentences(
        "Too short here. This one is a proper sentence of prose. Numbers 1 2 3 4 5 6 7 8 9 10 11.\n\n"
        "lowercase start is not a sentence here.\n\nNo full stop at the end of this one"
    )
    assert kept == ["This one is a proper sentence of prose."]


def test_docstrings_are_parsed_in_source_order_and_never_run():
    source = (
        "'''The module.'''\n"
        "raise SystemExit('never run')\n"
        "def first():\n    '''First function.'''\n    def inner():\n        '''Inner function.'''\n"
        "class Second:\n    '''Second, a class.'''\n"
        "    def method(self):\n        '''A method.'''\n"
        "if True:\n    def third():\n        '''Third, defined in a block.'''\n"
    )
    assert corpus.docstrings(source) == [
        "The module.", "First function.", "Inner function.", "Second, a class.", "A method.",
        "Third, defined in a block.",
    ]


def test_an_invalid_escape_in_a_docstring_gives_no_warning():
    source = "def f():\n    '''Match a digit with \\d and nothing else.'''\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SyntaxWarning from Python 3.12 on would fail here
        assert corpus.docstrings(source) == ["Match a digit with \\d and nothing else."]


def test_package_files_are_found_sorted_without_importing(tmp_path, monkeypatch):
    package = tmp_path / "explodes"
    (package / "sub" / "tests").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    for name in ("b.py", "a.py", "sub/z.py", "sub/tests/test_x.py"):
        (package / name).write_text(f"'''File {name}.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = corpus.package_files("explodes")
    assert [p.relative_to(package).as_posix() for p in found] == ["__init__.py", "a.py", "b.py", "sub/z.py"]
    assert [p.name for p in corpus.package_files("explodes.sub")] == ["z.py"]
    assert "explodes" not in sys.modules
    with pytest.raises(ValueError, match="not a folder"):
        corpus.package_files("explodes.missing")
    with pytest.raises(ValueError, match="not an installed package"):
        corpus.package_files("no_such_package_here")


def test_training_and_held_out_sentences_are_distinct_prose(loaded):
    assert loaded.source == f"numpy {importlib.metadata.version('numpy')}"
    assert not set(loaded.train) & set(loaded.held_out)
    for sentences in (loaded.train, loaded.held_out):
        assert len(sentences) == len(set(sentences))
        assert all(5 <= len(s.split()) <= 40 and s[0].isupper() and s[-1] in ".!?" for s in sentences)
    assert repr(loaded).startswith(f"Corpus({loaded.source}: {len(loaded.train)} training sentences")


@pytest.mark.skipif(importlib.metadata.version("numpy") != PINNED_NUMPY,
                    reason=f"the recorded corpus is that of numpy {PINNED_NUMPY} (requirements.txt)")
def test_the_pinned_numpy_gives_the_recorded_corpus(loaded):
    """The text is fixed by the pin alone: this digest must hold on every Python the pins allow."""
    assert (len(loaded.train), len(loaded.held_out)) == PINNED_SIZES
    text = "\n".join(loaded.train + ["", ""] + loaded.held_out)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == PINNED_DIGEST
