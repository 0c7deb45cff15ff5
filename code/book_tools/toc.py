"""The repository the tools work on, and the chapters of its _toc.yml.

    python -m book_tools.toc [PREFIX]

prints the chapter notebooks of _toc.yml, in order and separated by spaces (e.g.
`chapters/01_rnn_limits.ipynb ...`); with PREFIX, only those whose name after `chapters/` starts
with it (`appendix_`: the appendices). The Makefile's TOC_CHAPTERS is this command.

`ROOT` is the repository that holds this package (code/book_tools/ in it): the package is
installed editable (`pip install -e .`, in requirements.txt), so the tools find the book's
files from any working directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = "chapters/"


def toc_chapters(root: Path = ROOT) -> list[str]:
    """The chapter files of _toc.yml (e.g. 'chapters/02_transformer_architecture'), in order."""
    toc_file = root / "_toc.yml"
    if not toc_file.is_file():
        raise FileNotFoundError(
            f"{toc_file} not found: book_tools reads the repository it lives in, so install it"
            " editable from the repository (`pip install -e .`, as requirements.txt does)")
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    return [
        chapter["file"]
        for part in toc.get("parts", [])
        for chapter in part.get("chapters", [])
        if chapter["file"].startswith(CHAPTERS)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("prefix", nargs="?", default="",
                        help="only the chapters whose name starts with it, e.g. appendix_")
    args = parser.parse_args(argv)
    print(" ".join(f"{chapter}.ipynb" for chapter in toc_chapters()
                   if chapter.startswith(CHAPTERS + args.prefix)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
