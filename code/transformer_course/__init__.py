"""transformer_course: the Transformer encoder of the *Transformers I* book, from scratch.

One module per idea of the lecture notes, each checked against ``torch.nn``. Import the one you
need (``from transformer_course import attention``); importing the package itself loads nothing
else, so ``import transformer_course`` is cheap and no module is imported twice by
``python -m transformer_course``. The module map, with the chapters that use each module, is in
the repository's CONTRIBUTING.md.
"""

__version__ = "0.1.0"
