"""Sequence-to-sequence models: a decoder writes an output sequence while reading the encoder's.

Chapter 6 trains three of them on :class:`~transformer_course.tasks.CopyTask` (write back the n
symbols just read):

- :class:`GRUSeq2Seq` with ``attention=False``: a bidirectional GRU reads the source; its two final
  states become, through one linear map and tanh, the initial state of a GRU decoder. Everything
  the decoder learns about the source passes through that one vector (the "bottleneck").
- :class:`GRUSeq2Seq` with ``attention=True``: the same, and at every output step the decoder's
  state h_t scores every encoder output e_s (Luong et al., 2015, "general" score
  ``h_t · W_a e_s``), mixes them by the softmax of the scores into a context c_t, and predicts
  from ``tanh(W_c [c_t; h_t])``: the decoder may look back at every source position.
- :class:`TransformerSeq2Seq`: our :class:`~transformer_course.encoder.Encoder` and
  :class:`~transformer_course.decoder.Decoder`, pre-LN, one token table and one learned position
  table shared by source and target.

All three split the work the same way: ``encode(source)`` once, then ``decode(memory,
decoder_input)`` gives the logits of every output position. Training feeds the true previous
symbols to the decoder (teacher forcing: ``decoder_input = shift_right(target)``);
:func:`greedy_decode` feeds back the model's own best guesses instead, one position at a time.

Legend: B batch, S source length, n target length, D model width, H heads, N_h a GRU's width
per direction, V symbols.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from . import _checks, runtime
from .decoder import Decoder
from .encoder import Encoder
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .tasks import COPY_SYMBOLS, CopyTask
from .training import LearningRateSchedule, ProgressBar, TrainConfig, TrainResult, train, warmup_cosine

__all__ = [
    "shift_right",
    "GRUSeq2Seq",
    "POSITION_INIT_STD",
    "TransformerSeq2Seq",
    "greedy_decode",
    "CopyReport",
    "evaluate_copy",
    "COPY_TRAINING",
    "train_copy",
    "share_on_diagonal",
]


def shift_right(target: torch.Tensor, start: int) -> torch.Tensor:
    """The decoder's input for teacher forcing: the start token, then the target minus its last symbol.

    Position i of the decoder reads symbol i - 1 of the target and must predict symbol i.

    Shape:
        target (B, n) -> (B, n)

    Examples:
        >>> shift_right(torch.tensor([[3, 1, 4]]), start=10)
        tensor([[10,  3,  1]])
    """
    starts = torch.full_like(target[:, :1], start)  # (B, 1)
    return torch.cat([starts, target[:, :-1]], dim=1)  # (B, 1) + (B, n - 1) -> (B, n)


class GRUSeq2Seq(nn.Module):
    """A GRU encoder-decoder, with or without attention over the encoder's outputs.

    Encoder: a bidirectional GRU of ``hidden_size`` per direction reads the embedded source,
    giving outputs e_s of width 2 N_h (N_h = ``hidden_size``) and a final state per direction.
    Bridge: ``h_0 = tanh(bridge([forward final; backward final]))``, the decoder's initial state.
    Decoder: a GRU of width 2 N_h over the embedded decoder input (start token, then symbols), states
    h_t. Without attention the logits are ``readout(h_t)``; with attention::

        score(t, s) = h_t · W_a e_s            (W_a: ``score``, no bias)
        a_t = softmax_s score(t, s)            (weights over the S source positions)
        c_t = sum_s a_t[s] e_s                 (the context)
        logits_t = readout(tanh(W_c [c_t; h_t]))   (W_c: ``combine``)

    The attention is computed from the decoder's states after the GRU has run (no "input
    feeding"), so that with teacher forcing all n positions are scored at once.

    Args:
        attention: let the decoder attend to every encoder output.
        num_symbols: V; the decoder's start token is id V. Default: 10.
        embed_dim: width of the symbol vectors. Default: 64.
        hidden_size: encoder width per direction; the decoder's is twice it. Default: 64.

    Shape:
        source (B, S), decoder_input (B, n) -> logits (B, n, V)

    Examples:
        >>> model = GRUSeq2Seq(attention=True)
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 7, 10)
        >>> sum(p.numel() for p in GRUSeq2Seq(attention=False).parameters())
        143562
    """

    def __init__(
        self, attention: bool, num_symbols: int = COPY_SYMBOLS, embed_dim: int = 64, hidden_size: int = 64
    ) -> None:
        super().__init__()
        _checks.boolean(attention, "attention")
        for value, name in ((num_symbols, "num_symbols"), (embed_dim, "embed_dim"),
                            (hidden_size, "hidden_size")):
            _checks.positive_int(value, name)
        width = 2 * hidden_size
        self.attention, self.num_symbols, self.start = attention, num_symbols, num_symbols
        self.source_embedding = nn.Embedding(num_symbols, embed_dim)
        self.target_embedding = nn.Embedding(num_symbols + 1, embed_dim)  # + the start token
        self.encoder = nn.GRU(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(width, width)
        self.decoder = nn.GRU(embed_dim, width, batch_first=True)
        if attention:
            self.score = nn.Linear(width, width, bias=False)  # W_a
            self.combine = nn.Linear(2 * width, width)  # W_c
        self.readout = nn.Linear(width, num_symbols)

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's outputs (B, S, 2N_h) and the decoder's initial state (B, 2N_h)."""
        _checks.token_ids(source, self.num_symbols, "source")
        outputs, finals = self.encoder(self.source_embedding(source))  # (B, S, 2N_h), (2, B, N_h)
        both = torch.cat([finals[0], finals[1]], dim=-1)  # forward and backward final: (B, 2N_h)
        return outputs, torch.tanh(self.bridge(both))  # the one vector the decoder starts from

    def decode(
        self,
        memory: tuple[torch.Tensor, torch.Tensor],
        decoder_input: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, n, V) of every output position; with ``return_attention`` also the
        attention weights (B, n, S) (attention models only)."""
        _checks.token_ids(decoder_input, self.num_symbols + 1, "decoder_input")
        outputs, initial = memory  # (B, S, 2N_h), (B, 2N_h)
        states, _ = self.decoder(self.target_embedding(decoder_input), initial[None])  # (B, n, 2N_h)
        if not self.attention:
            if return_attention:
                raise ValueError("return_attention: this model has no attention (attention=False)")
            return self.readout(states)  # (B, n, 2N_h) -> (B, n, V)
        scores = states @ self.score(outputs).transpose(1, 2)  # (B, n, 2N_h) @ (B, 2N_h, S) -> (B, n, S)
        weights = torch.softmax(scores, dim=-1)  # each output position's weights over the source
        context = weights @ outputs  # (B, n, S) @ (B, S, 2N_h) -> (B, n, 2N_h)
        combined = torch.tanh(self.combine(torch.cat([context, states], dim=-1)))  # (B, n, 2N_h)
        logits = self.readout(combined)  # (B, n, V)
        return (logits, weights) if return_attention else logits

    def forward(self, source: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(source), decoder_input)


POSITION_INIT_STD = 1.0  # the learned positions' initial scale, that of nn.Embedding's symbol vectors
_POSITIONS = ("shared", "separate", "sinusoidal")


class TransformerSeq2Seq(nn.Module):
    """A Transformer encoder-decoder built from the package's Encoder and Decoder (pre-LN, no dropout).

    One symbol table embeds both the source and the decoder's input, and by default
    (``positions="shared"``) one learned position table gives source position i and target
    position i the same position vector; the decoder's cross-attention can then find "the source
    symbol I must write now" by matching positions. The position table starts at the scale of the
    symbol table (standard normal, :data:`POSITION_INIT_STD`) rather than the 0.02 of
    :class:`~transformer_course.positional.LearnedPositionalEncoding`: positions 50 times smaller
    than the symbols were still too faint to align by after the 300 steps of chapter 6.

    The other choices of ``positions`` exist to measure that choice: ``"separate"`` learns one
    table for the source and another for the target; ``"sinusoidal"`` adds the fixed sinusoids of
    :class:`~transformer_course.positional.SinusoidalPositionalEncoding` to both.

    Args:
        num_symbols: V; the start token is id V. Default: 10.
        d_model: D. Default: 64.
        num_heads: H. Default: 4.
        d_ff: feed-forward width. Default: 256.
        num_layers: layers of the encoder and of the decoder (each). Default: 2.
        max_len: the longest source or target. Default: 40.
        positions: ``"shared"``, ``"separate"`` or ``"sinusoidal"``. Default: ``"shared"``.
        position_init_std: initial scale of learned position tables. Default: 1.0.

    Shape:
        source (B, S), decoder_input (B, n), S, n <= max_len -> logits (B, n, V)

    Examples:
        >>> model = TransformerSeq2Seq()
        >>> tuple(model(torch.zeros(2, 7, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long)).shape)
        (2, 7, 10)
        >>> sum(p.numel() for p in model.parameters())
        237642
    """

    def __init__(
        self,
        num_symbols: int = COPY_SYMBOLS,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 256,
        num_layers: int = 2,
        max_len: int = 40,
        positions: str = "shared",
        position_init_std: float = POSITION_INIT_STD,
    ) -> None:
        super().__init__()
        _checks.positive_int(num_symbols, "num_symbols")
        _checks.positive_int(max_len, "max_len")
        _checks.one_of(positions, _POSITIONS, "positions")
        _checks.positive_number(position_init_std, "position_init_std")
        self.num_symbols, self.start, self.max_len = num_symbols, num_symbols, max_len
        self.token_embedding = nn.Embedding(num_symbols + 1, d_model)  # source and target symbols

        def position_table() -> nn.Module:
            if positions == "sinusoidal":
                return SinusoidalPositionalEncoding(max_len, d_model)
            return LearnedPositionalEncoding(max_len, d_model, init_std=position_init_std)

        self.source_positions = position_table()
        # One module under two names when shared: the same vectors for source and target position i.
        self.target_positions = position_table() if positions == "separate" else self.source_positions
        self.encoder = Encoder(num_layers, d_model, num_heads, d_ff, dropout=0.0, norm_first=True)
        self.decoder = Decoder(num_layers, d_model, num_heads, d_ff, dropout=0.0, norm_first=True)
        self.readout = nn.Linear(d_model, num_symbols)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """The memory: one vector per source position, (B, S) -> (B, S, D)."""
        _checks.token_ids(source, self.num_symbols, "source")
        return self.encoder(self.source_positions(self.token_embedding(source)))  # (B, S, D)

    def decode(
        self, memory: torch.Tensor, decoder_input: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, n, V); with ``return_attention`` also the cross-attention weights, a list of
        L tensors (B, H, n, S)."""
        _checks.token_ids(decoder_input, self.num_symbols + 1, "decoder_input")
        x = self.target_positions(self.token_embedding(decoder_input))  # (B, n) -> (B, n, D)
        if return_attention:
            x, _, cross = self.decoder(x, memory, return_attention=True)  # causal self-attention
            return self.readout(x), cross
        return self.readout(self.decoder(x, memory))  # (B, n, D) -> (B, n, V)

    def forward(self, source: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(source), decoder_input)


@torch.no_grad()
def greedy_decode(model: nn.Module, source: torch.Tensor, length: int) -> torch.Tensor:
    """Write ``length`` symbols, each time feeding back the most likely one (greedy decoding).

    The source is encoded once; the decoder then runs on the growing output (start token, then
    its own guesses) and the last position's most likely symbol is appended, ``length`` times.
    The model must have ``encode``, ``decode`` and ``start`` as the models of this module do.

    Shape:
        source (B, S) -> (B, length) symbols

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> tuple(greedy_decode(TransformerSeq2Seq(), torch.zeros(3, 5, dtype=torch.long), 5).shape)
        (3, 5)
    """
    _checks.positive_int(length, "length")
    memory = model.encode(source)
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long, device=source.device)
    for _ in range(length):
        logits = model.decode(memory, written)  # (B, t, V): a prediction for every position so far
        next_symbol = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1): the last position's best
        written = torch.cat([written, next_symbol], dim=1)
    return written[:, 1:]  # without the start token: (B, length)


@dataclass
class CopyReport:
    """Test accuracies of a model on a :class:`~transformer_course.tasks.CopyTask`, per length."""

    sequence_accuracy: dict[int, float]  # fraction of test sequences written back without a mistake
    token_accuracy: dict[int, float]  # fraction of test symbols written right

    @property
    def mean_sequence_accuracy(self) -> float:
        """The sequence accuracy averaged over the test lengths."""
        return sum(self.sequence_accuracy.values()) / len(self.sequence_accuracy)


@torch.no_grad()
def evaluate_copy(model: nn.Module, task: CopyTask) -> CopyReport:
    """Greedy-decode every test sequence of ``task`` and score it: per length, the sequence and
    the token accuracy. The model's training/eval mode is restored afterwards.

    Examples:
        >>> task = CopyTask(max_length=6, test_lengths=(3, 6), num_test=10)
        >>> report = evaluate_copy(GRUSeq2Seq(attention=False), task)
        >>> sorted(report.sequence_accuracy), 0.0 <= report.token_accuracy[6] <= 1.0
        ([3, 6], True)
    """
    if not isinstance(task, CopyTask):
        raise TypeError(f"task: expected a tasks.CopyTask, got {type(task).__name__}")
    device = next(model.parameters()).device
    sequence, token = {}, {}
    with runtime.eval_mode(model):
        for n, source in task.test_sets.items():
            source = source.to(device)  # (N, n)
            right = greedy_decode(model, source, n) == task.target(source)  # (N, n)
            sequence[n] = right.all(dim=1).float().mean().item()
            token[n] = right.float().mean().item()
    return CopyReport(sequence, token)


COPY_TRAINING = TrainConfig(steps=300, batch_size=64, lr=3e-3, clip_norm=1.0, eval_every=300)
"""Chapter 6's recipe, the same for every model: Adam, lr 3e-3, batch 64, clipping at 1.0, 300 steps
(with :func:`train_copy`'s 15 warm-up steps and cosine decay)."""


def train_copy(
    model: nn.Module,
    task: CopyTask,
    config: TrainConfig = COPY_TRAINING,
    warmup: int = 15,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> tuple[TrainResult, CopyReport]:
    """Train a sequence-to-sequence model on ``task`` with teacher forcing, then score it.

    Every step draws a batch of one length (``task.batch``, from a generator seeded by
    ``seed``) and trains the model to predict each symbol from the source and the true
    previous symbols (``shift_right``); this is :func:`~transformer_course.training.train` on
    batches drawn as it goes, with a warm-up and cosine learning-rate schedule
    (:class:`~transformer_course.training.LearningRateSchedule`) and :func:`evaluate_copy` as the
    score (its mean sequence accuracy is what ``TrainResult.test_accuracy`` records).

    Returns:
        The :class:`~transformer_course.training.TrainResult` and the :class:`CopyReport` of the
        trained model.

    Examples:
        >>> task = CopyTask(max_length=6, test_lengths=(3, 6), num_test=10)
        >>> _ = torch.manual_seed(0)
        >>> config = TrainConfig(steps=20, eval_every=20)
        >>> result, report = train_copy(GRUSeq2Seq(attention=True), task, config, warmup=2, device="cpu")
        >>> len(result.losses), result.losses[-1] < result.losses[0]
        (20, True)
    """
    if not isinstance(task, CopyTask):
        raise TypeError(f"task: expected a tasks.CopyTask, got {type(task).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    generator = torch.Generator().manual_seed(seed)
    reports: list[CopyReport] = []

    def batches() -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        while True:
            source = task.batch(config.batch_size, generator)  # (B, n)
            target = task.target(source)  # the source itself, or reversed
            yield (source, shift_right(target, task.start)), target  # two inputs, one target

    def score(trained: nn.Module) -> float:
        reports.append(evaluate_copy(trained, task))
        return reports[-1].mean_sequence_accuracy

    callbacks = [LearningRateSchedule(warmup_cosine(warmup, config.steps))]
    if progress:
        callbacks.append(ProgressBar(desc))
    result = train(model, batches(), config, device=device, callbacks=callbacks, score=score)
    return result, reports[-1]


def share_on_diagonal(weights: torch.Tensor) -> float:
    """The mean attention weight that output position i puts on source position i.

    For the copy task that is where the symbol to write sits; a uniform spread over S positions
    would give 1 / S.

    Shape:
        weights (..., n, S) with n <= S, rows summing to 1 -> a float

    Examples:
        >>> share_on_diagonal(torch.eye(4))
        1.0
        >>> share_on_diagonal(torch.full((4, 4), 0.25))
        0.25
    """
    if not isinstance(weights, torch.Tensor) or weights.ndim < 2 or weights.shape[-2] > weights.shape[-1]:
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights: expected shape (..., n, S) with n <= S, got {shape}")
    return weights.diagonal(dim1=-2, dim2=-1).mean().item()
