"""The text chapter 3 trains and tests its tokenizers on: English sentences from NumPy's docstrings.

A tokenizer comparison needs text that ships with the project and never changes. The docstrings
of NumPy fit: ``requirements.txt`` pins NumPy (2.4.6), its documentation is careful English
prose, and NumPy is distributed under the BSD 3-Clause licence (copyright the NumPy
Developers). The sentences are read from the source files of the installed package with
:mod:`ast`, never imported or executed, so they are the same text whatever Python reads them
(the pins allow 3.11 and newer): no module is imported that could define things differently on
another version, the files are read in sorted order, the docstrings in the order they appear,
and indentation (which Python 3.13 strips from ``__doc__`` at compile time, but not from the
source) is ignored.

From each docstring we keep prose only (:func:`prose_sentences`): the summary, the description
and the *Notes*, plus the descriptions of parameters and return values; not the NumPy-style
section titles, the ``name : type`` lines, the examples, references and "See also" lists. A
sentence is kept if it has 5 to 40 words, starts with a capital letter, ends with ``.``, ``!``
or ``?`` and is mostly letters.

Training text and held-out text come from different sub-packages (:data:`TRAIN_PACKAGES`, the
array core and its library; :data:`HELD_OUT_PACKAGES`, Fourier transforms, linear algebra and
masked arrays), so the held-out sentences use words the tokenizers never saw, as real text does.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TRAIN_PACKAGES",
    "HELD_OUT_PACKAGES",
    "package_files",
    "docstrings",
    "prose_sentences",
    "sentences",
    "Corpus",
    "load",
]

TRAIN_PACKAGES = ("numpy._core", "numpy.lib")  # the array core and its library of functions
HELD_OUT_PACKAGES = ("numpy.fft", "numpy.linalg", "numpy.ma")  # Fourier, linear algebra, masked arrays

# NumPy-style sections that are not prose: dropped whole.
_DROPPED_SECTIONS = {"see also", "examples", "references", "methods"}
# Sections of "name : type" lines, each followed by an indented description: only the
# descriptions are kept.
_DESCRIBED_SECTIONS = {
    "parameters", "other parameters", "returns", "yields", "receives", "raises", "warns",
    "attributes",
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")  # a full stop, a space, a capital letter
_RULE = re.compile(r"^[-=~^*]{3,}$")  # the line under a section title


def package_files(package: str) -> list[Path]:
    """The ``.py`` files of an installed package (tests left out), sorted by their path in it.

    The package is located, not imported: ``"numpy.lib"`` is the folder ``lib`` of the folder
    that ``importlib`` finds for ``numpy``.

    Examples:
        >>> [path.name for path in package_files("numpy.fft")]
        ['__init__.py', '_helper.py', '_pocketfft.py']
    """
    top, *rest = package.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package: {top!r} is not an installed package")
    folder = Path(spec.submodule_search_locations[0]).joinpath(*rest)
    if not folder.is_dir():
        raise ValueError(f"package: {package!r} is not a folder of {top!r} ({folder})")
    files = [path for path in folder.rglob("*.py") if "tests" not in path.relative_to(folder).parts]
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def docstrings(source: str) -> list[str]:
    """The docstrings of a module's source (module, classes, functions), in the order they appear.

    The source is parsed, not run. Docstrings are returned as written, indentation included.

    Examples:
        >>> source = "'''A module.'''\\nclass C:\\n    '''A class.'''\\n    def f(self):\\n        '''Hm.'''"
        >>> docstrings(source)
        ['A module.', 'A class.', 'Hm.']
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "invalid escape sequence" (3.12+): same text, a warning
        tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text:
                found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), text))
    return [text for _, _, text in sorted(found)]  # source order, whatever order ast.walk takes


def _prose_lines(docstring: str) -> list[str]:
    """The lines of a NumPy-style docstring that are prose, stripped; "" between paragraphs."""
    lines = docstring.expandtabs().splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines]
    # The indentation of the body: the first line starts right after the quotes.
    margin = min((n for n, line in zip(indents[1:], lines[1:], strict=True) if line.strip()), default=0)
    kept, section = [], ""
    for i, line in enumerate(lines):
        text = line.strip()
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if text and _RULE.match(following):  # a section title: the next line underlines it
            section = text.lower()
            kept.append("")
        elif _RULE.match(text) or text.startswith((">>>", "...", "..")):  # rules, examples, directives
            kept.append("")
        elif section in _DROPPED_SECTIONS:
            continue
        elif section in _DESCRIBED_SECTIONS and text and (i == 0 or indents[i] <= margin):
            kept.append("")  # a "name : type" line; its description is indented below it
        else:
            kept.append(text)
    return kept


def prose_sentences(docstring: str) -> list[str]:
    """The sentences of a docstring that are prose: 5 to 40 words, capitalised, ended, mostly letters.

    Paragraphs are joined into single lines (spaces normalised) and cut after ``.``, ``!`` or
    ``?`` followed by a capital letter. Indentation makes no difference.

    Examples:
        >>> doc = '''Return the sum of the array elements.
        ...
        ...     Parameters
        ...     ----------
        ...     a : array_like
        ...         The elements to sum, in any order you like.
        ...
        ...     Examples
        ...     --------
        ...     >>> np.sum([1, 2])
        ...     3
        ...     '''
        >>> prose_sentences(doc)
        ['Return the sum of the array elements.', 'The elements to sum, in any order you like.']
    """
    found = []
    for paragraph in "\n".join(_prose_lines(docstring)).split("\n\n"):
        paragraph = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(paragraph):
            words = sentence.split()
            letters = sum(char.isalpha() for char in sentence)
            if (5 <= len(words) <= 40 and sentence[0].isupper() and sentence[-1] in ".!?"
                    and letters > 0.7 * len(sentence)):
                found.append(sentence)
    return found


def sentences(packages: Iterable[str]) -> list[str]:
    """The prose sentences of every docstring of ``packages``, each once, in reading order.

    Examples:
        >>> fft = sentences(["numpy.fft"])
        >>> len(fft) > 100, fft[0].startswith("The SciPy module")
        (True, True)
    """
    found = []
    for package in packages:
        for path in package_files(package):
            for docstring in docstrings(path.read_text(encoding="utf-8")):
                found += prose_sentences(docstring)
    return list(dict.fromkeys(found))  # drop repeats, keep the first occurrence


@dataclass(frozen=True)
class Corpus:
    """Training and held-out sentences, and where they come from."""

    train: list[str]  # sentences of TRAIN_PACKAGES
    held_out: list[str]  # sentences of HELD_OUT_PACKAGES that are not also training sentences
    source: str  # e.g. "numpy 2.4.6": the package (and version) the docstrings are read from

    def __repr__(self) -> str:
        return (f"Corpus({self.source}: {len(self.train)} training sentences, "
                f"{len(self.held_out)} held-out sentences)")


def load(
    train_packages: Iterable[str] = TRAIN_PACKAGES, held_out_packages: Iterable[str] = HELD_OUT_PACKAGES
) -> Corpus:
    """The training and held-out sentences of chapter 3: no held-out sentence is a training one.

    Args:
        train_packages: where the training sentences come from. Default: :data:`TRAIN_PACKAGES`.
        held_out_packages: where the held-out ones come from. Default: :data:`HELD_OUT_PACKAGES`.

    Examples:
        >>> corpus = load()
        >>> corpus.source.startswith("numpy "), len(corpus.train) > 3000, len(corpus.held_out) > 1000
        (True, True, True)
        >>> set(corpus.train) & set(corpus.held_out)
        set()
    """
    train_packages, held_out_packages = tuple(train_packages), tuple(held_out_packages)
    train = sentences(train_packages)
    seen = set(train)
    held_out = [sentence for sentence in sentences(held_out_packages) if sentence not in seen]
    tops = sorted({package.split(".")[0] for package in train_packages + held_out_packages})
    source = ", ".join(f"{top} {importlib.metadata.version(top)}" for top in tops)
    return Corpus(train, held_out, source)
