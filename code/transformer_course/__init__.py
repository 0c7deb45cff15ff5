"""transformer_course: the Transformer encoder of the *Transformers I* book, from scratch.

One module per concept of the lecture notes: ``runtime`` (seeding, device), ``attention``,
``positional``, ``embedding`` and ``encoder``. Every class is checked against ``torch.nn``.
"""

from . import attention, embedding, encoder, positional, runtime

__version__ = "0.1.0"
__all__ = ["attention", "embedding", "encoder", "positional", "runtime"]
