"""``python -m transformer_course``: the command-line trainer of :mod:`transformer_course.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
