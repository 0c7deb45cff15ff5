"""transformer_course: the Transformer encoder of the *Transformers I* book, from scratch.

One module per concept of the lecture notes, each checked against ``torch.nn``:

- ``runtime``: seeding, device choice, deterministic set-up, rounded printing;
- ``rnn``, ``tasks`` and ``train``: the recurrent baseline of chapter 1, the synthetic long-range
  task and the training loop that chapters 1 and 5 share;
- ``attention``: scaled dot-product and multi-head attention;
- ``positional`` and ``embedding``: what enters the encoder;
- ``encoder``: feed-forward network, encoder layer, the stack;
- ``tokenization``: a byte-pair encoding trained here and the WordPiece tokenizer of BERT;
- ``pretrained``: a real pretrained encoder (all-MiniLM-L6-v2) loaded into our classes;
- ``analysis``: reading a real model's attention (which head looks where, and how reliably);
- ``diagnostics``: gradient and depth measurements of chapter 2;
- ``plots``: the figures the chapters draw (imported on demand: it loads matplotlib).
"""

from . import (
    analysis,
    attention,
    diagnostics,
    embedding,
    encoder,
    positional,
    pretrained,
    rnn,
    runtime,
    tasks,
    tokenization,
    train,
)

__version__ = "0.1.0"
__all__ = [
    "analysis", "attention", "diagnostics", "embedding", "encoder", "positional", "pretrained", "rnn",
    "runtime", "tasks", "tokenization", "train",
]
