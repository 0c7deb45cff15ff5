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
- ``distributed``: ``python -m transformer_course.train``, the command-line trainer, in one
  process or several under ``torchrun`` (DistributedDataParallel), with safetensors checkpoints;
- ``plots``: the figures the chapters draw (imported on demand: it loads matplotlib).
"""

import warnings

# `python -m transformer_course.train` runs train.py as __main__ after this package has imported
# it, and runpy warns about the double import. It is harmless here (that __main__ copy only calls
# distributed.main, which uses the package's copy), and the warning would only puzzle a reader.
warnings.filterwarnings(
    "ignore", message=r"'transformer_course\.train' found in sys\.modules", category=RuntimeWarning
)

from . import (  # noqa: E402
    analysis,
    attention,
    diagnostics,
    distributed,
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
    "analysis", "attention", "diagnostics", "distributed", "embedding", "encoder", "positional",
    "pretrained", "rnn", "runtime", "tasks", "tokenization", "train",
]
