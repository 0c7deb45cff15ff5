"""The models the book trains on its synthetic tasks, and the one config of the recall encoder.

- :class:`RecurrentClassifier` (``torch.nn.RNN`` or ``torch.nn.LSTM``) and
  :class:`EncoderClassifier` (our :class:`~transformer_course.encoder.Encoder`): embed the
  tokens, run the sequence model, read the answer off the last (query) position. Every model's
  input embedding is called ``embedding``.
- :class:`RecallEncoderConfig`: the sizes and layout of the recall encoder, written here once;
  :class:`EncoderClassifier`, the command line and
  :func:`~transformer_course.gradient_flow.build_model` take their defaults from it.
- :func:`make_recall_model` builds the three models of chapters 1 and 5 at their fixed sizes
  (:data:`MODEL_KINDS`).
- :class:`StateBottleneck`: an encoder-decoder whose only link is one fixed-size vector, for the
  copy task of :func:`~transformer_course.tasks.make_copy_data`.

Legend: B batch, T length, D model width, N_h hidden width of a recurrent network, C classes,
V symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import _checks
from .embedding import InputEmbedding
from .encoder import Encoder
from .tasks import NUM_ANSWERS, VOCAB_SIZE

__all__ = [
    "RecallEncoderConfig",
    "make_encoder",
    "RecurrentClassifier",
    "EncoderClassifier",
    "MODEL_KINDS",
    "make_recall_model",
    "StateBottleneck",
]

_POSITIONAL = ("sinusoidal", "learned", "none")


@dataclass(frozen=True)
class RecallEncoderConfig:
    """The sizes and layout of the encoder that chapters 1 and 5 train on the recall task.

    The defaults are the book's model; every other place that needs these sizes reads them here.

    Examples:
        >>> config = RecallEncoderConfig(d_model=64, num_heads=8)
        >>> config.num_layers, config.resolved_d_ff
        (2, 256)
    """

    d_model: int = 32  # D, the width of every token vector
    num_heads: int = 4  # attention heads, D / num_heads dimensions each
    num_layers: int = 2  # encoder layers
    d_ff: int | None = None  # feed-forward width; None: 4 D
    norm_first: bool = False  # pre-LN instead of the post-LN of the 2017 paper
    residual: bool = True  # keep the residual connections (chapter 5 removes them to show why)
    positional: str = "sinusoidal"  # "sinusoidal", "learned" or "none" (see embedding.InputEmbedding)

    def __post_init__(self) -> None:
        _checks.positive_int(self.d_model, "d_model")
        _checks.positive_int(self.num_heads, "num_heads")
        _checks.positive_int(self.num_layers, "num_layers")
        if self.d_ff is not None:
            _checks.positive_int(self.d_ff, "d_ff")
        _checks.boolean(self.norm_first, "norm_first")
        _checks.boolean(self.residual, "residual")
        _checks.one_of(self.positional, _POSITIONAL, "positional")

    @property
    def resolved_d_ff(self) -> int:
        """The feed-forward width: ``d_ff``, or 4 D when it is None."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff


def make_encoder(config: RecallEncoderConfig) -> Encoder:
    """The :class:`~transformer_course.encoder.Encoder` stack that ``config`` describes, without
    dropout (the recall models are small and trained briefly: dropout would only add noise).

    Shape:
        x (B, T, D) -> (B, T, D)

    Examples:
        >>> encoder = make_encoder(RecallEncoderConfig(d_model=8, num_heads=2, num_layers=1))
        >>> tuple(encoder(torch.zeros(2, 5, 8)).shape)
        (2, 5, 8)
    """
    if not isinstance(config, RecallEncoderConfig):
        raise TypeError(f"config: expected a RecallEncoderConfig, got {type(config).__name__}")
    return Encoder(
        config.num_layers, config.d_model, config.num_heads, config.resolved_d_ff, dropout=0.0,
        norm_first=config.norm_first, residual=config.residual,
    )


class RecurrentClassifier(nn.Module):
    """Token embedding, then ``torch.nn.RNN`` (tanh) or ``torch.nn.LSTM``, then a linear readout
    of the last hidden state: the answer is read where the query token was read.

    Args:
        cell: ``"rnn"`` or ``"lstm"``.
        hidden_size: N_h.
        vocab_size: number of token ids. Default: ``tasks.VOCAB_SIZE`` (17).
        embed_dim: width of the token vectors. Default: 16.
        num_classes: C. Default: ``tasks.NUM_ANSWERS`` (8).
        forget_bias: an LSTM only: start the forget gate's bias at this value (b_if = forget_bias,
            b_hf = 0), so that f_t = sigmoid(... + forget_bias) keeps the cell state from the start
            (Gers et al. 2000; 1 is the usual choice). None: PyTorch's default, both biases drawn
            from U(-1/sqrt(N_h), 1/sqrt(N_h)), so f_t starts near sigmoid(0) = 0.5. Only biases are
            set, no random number is drawn: the other weights are those of the default.
            Default: None.

    Shape:
        input_ids (B, T) -> logits (B, C)

    Examples:
        >>> model = RecurrentClassifier("rnn", hidden_size=16)
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 8)
        >>> lstm = RecurrentClassifier("lstm", hidden_size=4, forget_bias=3.0).recurrent
        >>> (lstm.bias_ih_l0 + lstm.bias_hh_l0)[4:8].tolist()  # PyTorch's gate order: i, f, g, o
        [3.0, 3.0, 3.0, 3.0]
    """

    def __init__(
        self,
        cell: str,
        hidden_size: int,
        vocab_size: int = VOCAB_SIZE,
        embed_dim: int = 16,
        num_classes: int = NUM_ANSWERS,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        cells = {"rnn": nn.RNN, "lstm": nn.LSTM}
        _checks.one_of(cell, cells, "cell")
        for value, name in ((hidden_size, "hidden_size"), (vocab_size, "vocab_size"),
                            (embed_dim, "embed_dim"), (num_classes, "num_classes")):
            _checks.positive_int(value, name)
        if forget_bias is not None and (cell != "lstm" or isinstance(forget_bias, bool)
                                        or not isinstance(forget_bias, (int, float))):
            raise ValueError(f"forget_bias: expected None, or a number with cell='lstm', got {forget_bias!r} "
                             f"with cell={cell!r}")
        self.cell, self.forget_bias = cell, forget_bias
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.recurrent = cells[cell](embed_dim, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_classes)
        if forget_bias is not None:
            forget = slice(hidden_size, 2 * hidden_size)  # PyTorch's gate order: input, forget, cell, output
            with torch.no_grad():
                self.recurrent.bias_ih_l0[forget] = float(forget_bias)
                self.recurrent.bias_hh_l0[forget] = 0.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.recurrent(self.embedding(input_ids))  # (B, T) -> (B, T, E) -> (B, T, N_h)
        return self.readout(states[:, -1])  # the query position: (B, N_h) -> (B, C)


class EncoderClassifier(nn.Module):
    """Token embedding plus positions, our ``Encoder`` (post-LN, no dropout, by default), and a
    linear readout at the last (query) position.

    The sizes default to :class:`RecallEncoderConfig`'s; the model keeps them as ``.config``.

    Args:
        d_model, num_heads, num_layers, d_ff, norm_first, residual, positional: the fields of
            :class:`RecallEncoderConfig`, with its defaults (the book's recall encoder).
        max_len: longest sequence accepted. Default: 512.
        vocab_size, num_classes: as in :class:`RecurrentClassifier`.

    Shape:
        input_ids (B, T), T <= max_len -> logits (B, C)

    Examples:
        >>> model = EncoderClassifier(d_model=8, num_heads=2, num_layers=1)
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 8)
        >>> EncoderClassifier().config == RecallEncoderConfig()  # the book's sizes by default
        True
    """

    def __init__(
        self,
        d_model: int = RecallEncoderConfig.d_model,
        num_heads: int = RecallEncoderConfig.num_heads,
        num_layers: int = RecallEncoderConfig.num_layers,
        d_ff: int | None = RecallEncoderConfig.d_ff,
        norm_first: bool = RecallEncoderConfig.norm_first,
        residual: bool = RecallEncoderConfig.residual,
        positional: str = RecallEncoderConfig.positional,
        max_len: int = 512,
        vocab_size: int = VOCAB_SIZE,
        num_classes: int = NUM_ANSWERS,
    ) -> None:
        super().__init__()
        self.config = RecallEncoderConfig(d_model, num_heads, num_layers, d_ff, norm_first, residual,
                                          positional)
        self.embedding = InputEmbedding(
            vocab_size=vocab_size, d_model=d_model, max_len=max_len, positional=positional
        )
        self.encoder = make_encoder(self.config)
        self.readout = nn.Linear(d_model, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.embedding(input_ids))  # (B, T) -> (B, T, D) -> (B, T, D)
        return self.readout(x[:, -1])  # the query position: (B, D) -> (B, C)


MODEL_KINDS = ("rnn", "lstm", "encoder")


def make_recall_model(kind: str, forget_bias: float | None = None) -> nn.Module:
    """One of the book's three models for the recall task, freshly initialised.

    ``"rnn"``: tanh RNN, N_h = 64; ``"lstm"``: LSTM, N_h = 32 (both with 16-dimensional token
    vectors), its forget gate's bias started at ``forget_bias`` if given (see
    :class:`RecurrentClassifier`); ``"encoder"``: :class:`EncoderClassifier` at the sizes of
    :class:`RecallEncoderConfig`. The
    recurrent widths are kept small so that chapter 1's grid fits its time budget on two CPU
    cores (an RNN's cost there is mostly its T sequential steps, so wider states would add
    time without changing the lesson); they already reach 100 % at short distances. Seed the
    global generator first for reproducible weights
    (:func:`~transformer_course.distance_grid.run_distance_grid` does).

    Examples:
        >>> sum(p.numel() for p in make_recall_model("lstm").parameters())
        6936
    """
    if kind == "rnn":
        return RecurrentClassifier("rnn", hidden_size=64)
    if forget_bias is not None and kind != "lstm":
        raise ValueError(f"forget_bias: only for kind='lstm', got kind={kind!r}")
    if kind == "lstm":
        return RecurrentClassifier("lstm", hidden_size=32, forget_bias=forget_bias)
    if kind == "encoder":
        return EncoderClassifier()
    raise ValueError(f"kind: expected one of {MODEL_KINDS}, got {kind!r}")


class StateBottleneck(nn.Module):
    """An encoder-decoder whose only link is one vector: an LSTM reads the whole sequence, and a
    linear decoder must rebuild every symbol from the LSTM's last hidden state alone.

    This is the bottleneck of the RNN encoder-decoders that preceded the Transformer: however long
    the input, the decoder sees ``hidden_size`` numbers.

    Args:
        length: T, the number of symbols to rebuild.
        num_symbols: V. Default: 8.
        hidden_size: N_h, the width of the one vector. Default: 32.
        embed_dim: width of the symbol vectors. Default: 16.

    Shape:
        input_ids (B, T) -> logits (B, T, V)

    Examples:
        >>> model = StateBottleneck(length=5)
        >>> tuple(model(torch.zeros(2, 5, dtype=torch.long)).shape)
        (2, 5, 8)
    """

    def __init__(
        self, length: int, num_symbols: int = NUM_ANSWERS, hidden_size: int = 32, embed_dim: int = 16
    ) -> None:
        super().__init__()
        for value, name in ((length, "length"), (num_symbols, "num_symbols"),
                            (hidden_size, "hidden_size"), (embed_dim, "embed_dim")):
            _checks.positive_int(value, name)
        self.length, self.num_symbols = length, num_symbols
        self.embedding = nn.Embedding(num_symbols, embed_dim)
        self.encoder = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.decoder = nn.Linear(hidden_size, length * num_symbols)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.ndim != 2 or input_ids.shape[1] != self.length:
            raise ValueError(
                f"input_ids: expected shape (B, T={self.length}), got {tuple(input_ids.shape)}"
            )
        _, (h_T, _) = self.encoder(self.embedding(input_ids))  # h_T: (1, B, N_h), the only link
        logits = self.decoder(h_T[0])  # (B, N_h) -> (B, T * V)
        return logits.view(-1, self.length, self.num_symbols)  # (B, T * V) -> (B, T, V)
