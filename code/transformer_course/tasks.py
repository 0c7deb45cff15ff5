"""Synthetic sequence tasks, seeded and split into disjoint train and test sets.

Two tasks, both small enough to train on a laptop CPU in seconds:

- **long-range recall** (chapter 1, trained again in chapter 5): a sequence
  ``[s, n_1, ..., n_d, Q]`` whose answer ``s`` sits ``d`` distractors before the query token
  ``Q``; the model must output ``s`` when it reads ``Q``. Changing ``d`` changes only how far
  back the answer lies, so accuracy against ``d`` measures how far a model's memory reaches.
- **copy through one state** (chapter 1): reproduce every symbol of a sequence; used to show that
  a single fixed-size vector must carry the whole input in an RNN encoder-decoder.
- **copy of any length** (chapter 6, :class:`CopyTask`): the same copy, with a new length drawn
  for every batch, for the sequence-to-sequence models of :mod:`~transformer_course.seq2seq`.
- **two positions at once** (chapter 4, :func:`make_two_position_data`): the query token must
  name the symbols at two fixed positions together, one head against several.

Everything chapter 5 needs to re-create chapter 1's runs is a constant here: the vocabulary,
:data:`DISTANCES`, :data:`CHANCE` and the default sizes of :class:`RecallTask`.

Token ids of the recall task::

    0 .. 7     answer symbols (s is one of them)         NUM_ANSWERS = 8
    8 .. 15    distractor symbols (the n_i)              NUM_DISTRACTORS = 8
    16         the query token Q                         QUERY
                                                         VOCAB_SIZE = 17

Legend: N examples, T length (T = d + 2 for recall), d distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks

__all__ = [
    "NUM_ANSWERS",
    "NUM_DISTRACTORS",
    "QUERY",
    "VOCAB_SIZE",
    "CHANCE",
    "DISTANCES",
    "RecallTask",
    "SplitData",
    "make_recall_data",
    "make_copy_data",
    "make_two_position_data",
    "COPY_SYMBOLS",
    "START",
    "CopyTask",
]

NUM_ANSWERS = 8  # symbols the answer s is drawn from (ids 0 .. 7)
NUM_DISTRACTORS = 8  # symbols the n_i are drawn from (ids 8 .. 15), none of them an answer
QUERY = NUM_ANSWERS + NUM_DISTRACTORS  # id 16: "now say s"
VOCAB_SIZE = QUERY + 1  # 17 ids in all
CHANCE = 1.0 / NUM_ANSWERS  # accuracy of a model that guesses: 0.125
DISTANCES = (5, 10, 25, 50)  # the grid of distances d of chapters 1 and 5 (each under 60 s of CPU)


@dataclass(frozen=True)
class RecallTask:
    """One long-range recall data set: its distance, sizes, seed and kind of distractors.

    The defaults are the runs of chapters 1 and 5; ``RecallTask(d).make()`` re-creates them.
    """

    distance: int  # d: distractors between the answer s and the query Q (T = d + 2)
    num_train: int = 4096  # training examples
    num_test: int = 1024  # test examples, none of them equal to a training example
    seed: int = 0  # seeds the draw; same seed, same data on every machine
    shared_symbols: bool = False  # True: distractors come from the 8 answer symbols too

    def make(self) -> SplitData:
        """Draw the data set (see :func:`make_recall_data`)."""
        return make_recall_data(
            self.distance, self.num_train, self.num_test, self.seed, self.shared_symbols
        )


@dataclass(frozen=True)
class SplitData:
    """Inputs and targets of a task, split into disjoint train and test sets.

    Shape:
        recall: ``train_inputs`` (N_train, T) ids, ``train_targets`` (N_train,);
        copy: ``train_inputs`` and ``train_targets`` both (N_train, T). Same for test.
    """

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor


def _distinct_rows(draw, total: int, generator: torch.Generator) -> torch.Tensor:
    """``total`` distinct rows from ``draw(n, generator) -> (n, T)``, kept in the order drawn."""
    seen: set[bytes] = set()
    rows: list[torch.Tensor] = []
    while len(rows) < total:
        for row in draw(total - len(rows), generator):  # (n, T) -> rows (T,)
            key = row.numpy().tobytes()
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return torch.stack(rows)  # (total, T)


def _split(inputs: torch.Tensor, targets: torch.Tensor, num_train: int) -> SplitData:
    """The first ``num_train`` rows for training, the rest for testing."""
    return SplitData(inputs[:num_train], targets[:num_train], inputs[num_train:], targets[num_train:])


def make_recall_data(
    distance: int,
    num_train: int = 4096,
    num_test: int = 1024,
    seed: int = 0,
    shared_symbols: bool = False,
) -> SplitData:
    """The long-range recall task: ``[s, n_1, ..., n_d, Q]`` -> ``s``.

    ``s`` is drawn uniformly from the :data:`NUM_ANSWERS` answer symbols, each ``n_i``
    uniformly from the :data:`NUM_DISTRACTORS` distractor symbols (or, with
    ``shared_symbols=True``, from the answer symbols themselves), and the last token is
    :data:`QUERY`. The target is ``s``, read at the query position; guessing scores
    :data:`CHANCE`.

    With distinct distractor symbols, ``s`` is the only answer symbol in the sequence, so a model
    that can look at every position (the encoder of chapter 5) finds it by its content. With
    ``shared_symbols=True`` it must find it by its position (the first one), a harder problem.

    The examples are drawn from ``torch.Generator().manual_seed(seed)``, duplicates dropped, and
    split into the first ``num_train`` for training and the next ``num_test`` for testing, so no
    test sequence appears in the training set. Same arguments, same tensors, on any machine.

    Args:
        distance: d >= 1, the number of distractors between ``s`` and ``Q``.
        num_train: training examples. Default: 4096.
        num_test: test examples. Default: 1024.
        seed: seed of the draw. Default: 0.
        shared_symbols: draw the distractors from the answer symbols. Default: False.

    Shape:
        inputs (N, T) int64 ids in [0, VOCAB_SIZE) with T = d + 2; targets (N,) int64 in
        [0, NUM_ANSWERS).

    Raises:
        TypeError: if an argument is not an int (``shared_symbols``: not a bool).
        ValueError: if ``distance`` < 1, a size < 1, or more examples are asked for than there
            are distinct sequences.

    Examples:
        >>> data = make_recall_data(distance=3, num_train=4, num_test=2)
        >>> tuple(data.train_inputs.shape), tuple(data.test_targets.shape)
        ((4, 5), (2,))
        >>> bool((data.train_inputs[:, -1] == QUERY).all())
        True
        >>> bool((data.train_inputs[:, 0] == data.train_targets).all())
        True
    """
    _checks.int_at_least(distance, "distance", 1)
    _checks.int_at_least(num_train, "num_train", 1)
    _checks.int_at_least(num_test, "num_test", 1)
    _checks.int_at_least(seed, "seed", 0)
    _checks.boolean(shared_symbols, "shared_symbols")
    first, count = (0, NUM_ANSWERS) if shared_symbols else (NUM_ANSWERS, NUM_DISTRACTORS)
    total = num_train + num_test
    distinct = NUM_ANSWERS * count**distance
    if total > distinct:
        raise ValueError(
            f"num_train + num_test: asked for {total} examples, but distance {distance} allows "
            f"only {distinct} distinct sequences"
        )

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        answers = torch.randint(0, NUM_ANSWERS, (n, 1), generator=generator)  # (n, 1)
        gap = torch.randint(first, first + count, (n, distance), generator=generator)  # (n, d)
        query = torch.full((n, 1), QUERY)  # (n, 1)
        return torch.cat([answers, gap, query], dim=1)  # (n, d + 2)

    inputs = _distinct_rows(draw, total, torch.Generator().manual_seed(seed))  # (N, T)
    targets = inputs[:, 0].clone()  # (N,): s, the first token
    return _split(inputs, targets, num_train)


def make_copy_data(
    length: int,
    num_symbols: int = NUM_ANSWERS,
    num_train: int = 4096,
    num_test: int = 1024,
    seed: int = 0,
) -> SplitData:
    """The copy task: a sequence of ``length`` random symbols, to be reproduced in full.

    Each symbol is uniform over ``num_symbols`` ids (0 .. num_symbols - 1); the targets are the
    inputs themselves. Guessing scores ``1 / num_symbols`` per symbol. Drawn, de-duplicated and
    split like :func:`make_recall_data`.

    Args:
        length: T >= 1, symbols per sequence.
        num_symbols: V >= 2, the alphabet. Default: 8.
        num_train, num_test, seed: as in :func:`make_recall_data`.

    Shape:
        inputs and targets: (N, T) int64 ids in [0, V).

    Examples:
        >>> data = make_copy_data(length=6, num_train=3, num_test=1)
        >>> tuple(data.train_inputs.shape), bool((data.train_inputs == data.train_targets).all())
        ((3, 6), True)
    """
    _checks.int_at_least(length, "length", 1)
    _checks.int_at_least(num_symbols, "num_symbols", 2)
    _checks.int_at_least(num_train, "num_train", 1)
    _checks.int_at_least(num_test, "num_test", 1)
    _checks.int_at_least(seed, "seed", 0)
    total = num_train + num_test
    if total > num_symbols**length:
        raise ValueError(
            f"num_train + num_test: asked for {total} examples, but length {length} allows only "
            f"{num_symbols**length} distinct sequences"
        )

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, num_symbols, (n, length), generator=generator)  # (n, T)

    inputs = _distinct_rows(draw, total, torch.Generator().manual_seed(seed))  # (N, T)
    return _split(inputs, inputs.clone(), num_train)


def make_two_position_data(
    num_symbols: int = 4,
    length: int = 8,
    positions: tuple[int, int] = (0, 4),
    num_train: int = 2048,
    num_test: int = 512,
    seed: int = 0,
) -> SplitData:
    """Read two positions at once: ``[s_0, ..., s_{T-2}, Q]`` -> the pair ``(s_i, s_j)``.

    Every ``s_t`` is uniform over ``num_symbols`` ids (0 .. K - 1), the last token is the query
    ``Q`` (id K), and the target is the pair of symbols at ``positions`` ``(i, j)``, as one class
    ``s_i * K + s_j`` of K² (guessing scores 1 / K²; knowing only one of the two symbols, 1 / K).
    The order matters: ``(a, b)`` and ``(b, a)`` are different classes, so the query must know
    which symbol came from which position. Drawn, de-duplicated and split like
    :func:`make_recall_data`.

    Args:
        num_symbols: K >= 2. Default: 4.
        length: T >= 3, the query included. Default: 8.
        positions: two different positions i, j in 0 .. T - 2. Default: (0, 4).
        num_train, num_test, seed: as in :func:`make_recall_data`. Defaults: 2048, 512, 0.

    Shape:
        inputs (N, T) int64 ids in [0, K]; targets (N,) int64 in [0, K²).

    Examples:
        >>> data = make_two_position_data(num_train=3, num_test=1)
        >>> x, y = data.train_inputs[0], data.train_targets[0]
        >>> int(x[-1]), int(y) == int(x[0]) * 4 + int(x[4])
        (4, True)
    """
    _checks.int_at_least(num_symbols, "num_symbols", 2)
    _checks.int_at_least(length, "length", 3)
    _checks.int_at_least(num_train, "num_train", 1)
    _checks.int_at_least(num_test, "num_test", 1)
    _checks.int_at_least(seed, "seed", 0)
    valid = range(length - 1)  # the query's own position is not a symbol
    if (not isinstance(positions, tuple) or len(positions) != 2 or positions[0] == positions[1]
            or not all(isinstance(p, int) and not isinstance(p, bool) and p in valid for p in positions)):
        raise ValueError(f"positions: expected two different ints in 0 .. {length - 2}, got {positions!r}")
    total = num_train + num_test
    if total > num_symbols ** (length - 1):
        raise ValueError(
            f"num_train + num_test: asked for {total} examples, but length {length} allows only "
            f"{num_symbols ** (length - 1)} distinct sequences"
        )

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        symbols = torch.randint(0, num_symbols, (n, length - 1), generator=generator)  # (n, T - 1)
        return torch.cat([symbols, torch.full((n, 1), num_symbols)], dim=1)  # (n, T): the query last

    inputs = _distinct_rows(draw, total, torch.Generator().manual_seed(seed))  # (N, T)
    i, j = positions
    targets = inputs[:, i] * num_symbols + inputs[:, j]  # (N,): the ordered pair as one class
    return _split(inputs, targets, num_train)


COPY_SYMBOLS = 10  # chapter 6's copy task: symbols 0 .. 9
START = COPY_SYMBOLS  # id 10: the decoder's first input, "start writing"


class CopyTask:
    """Chapter 6's copy task: read n symbols, write the same n symbols, for any n up to a maximum.

    With ``reverse=True`` the symbols are to be written in the reverse order (:meth:`target`).

    Training draws a fresh batch at every step: one length n, uniform in 1 .. ``max_length``, for
    the whole batch (so there is no padding), and n uniform symbols per row. The test sets are
    fixed: ``num_test`` distinct sequences at each length of ``test_lengths``, drawn from ``seed``;
    a training row equal to a test sequence is drawn again, so that a test sequence is never seen
    in training.

    Ids: the symbols are 0 .. ``num_symbols`` - 1; the decoder's start token is ``num_symbols``
    (:data:`START` for the default 10 symbols).

    Args:
        max_length: the longest n trained on. Default: 40.
        test_lengths: the lengths scored. Default: (5, 10, 20, 40).
        num_test: test sequences per length. Default: 500.
        num_symbols: V, the alphabet. Default: :data:`COPY_SYMBOLS` (10).
        seed: seeds the test sets. Default: 0.
        reverse: ask for the source reversed instead of copied. Default: False.

    Shape:
        ``test_sets[n]``: (num_test, n) int64; :meth:`batch`: (B, n) int64.

    Examples:
        >>> task = CopyTask(max_length=8, test_lengths=(4, 8), num_test=20)
        >>> tuple(task.test_sets[8].shape), task.start
        ((20, 8), 10)
        >>> batch = task.batch(batch_size=3, generator=torch.Generator().manual_seed(0))
        >>> batch.shape[0], 1 <= batch.shape[1] <= 8
        (3, True)
    """

    def __init__(
        self,
        max_length: int = 40,
        test_lengths: tuple[int, ...] = (5, 10, 20, 40),
        num_test: int = 500,
        num_symbols: int = COPY_SYMBOLS,
        seed: int = 0,
        reverse: bool = False,
    ) -> None:
        _checks.positive_int(max_length, "max_length")
        _checks.boolean(reverse, "reverse")
        _checks.int_at_least(num_symbols, "num_symbols", 2)
        _checks.positive_int(num_test, "num_test")
        _checks.int_at_least(seed, "seed", 0)
        if not test_lengths or any(
            isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_length for n in test_lengths
        ):
            raise ValueError(
                f"test_lengths: expected lengths in 1 .. max_length={max_length}, got {test_lengths!r}"
            )
        self.max_length, self.num_symbols, self.start = max_length, num_symbols, num_symbols
        self.test_lengths, self.reverse = tuple(test_lengths), reverse
        generator = torch.Generator().manual_seed(seed)
        self.test_sets: dict[int, torch.Tensor] = {}
        for n in self.test_lengths:
            if num_test > num_symbols**n // 2:  # keep most sequences of length n for training
                raise ValueError(
                    f"num_test: {num_test} test sequences of length {n} would leave too few of the "
                    f"{num_symbols**n} possible ones for training"
                )

            def draw(count: int, gen: torch.Generator, n: int = n) -> torch.Tensor:
                return torch.randint(0, num_symbols, (count, n), generator=gen)  # (count, n)

            self.test_sets[n] = _distinct_rows(draw, num_test, generator)  # (num_test, n)

    def target(self, source: torch.Tensor) -> torch.Tensor:
        """What the model must write for ``source``: the source itself, or reversed.

        Shape:
            (B, n) -> (B, n)
        """
        return source.flip(1) if self.reverse else source

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """A training batch: one length n for all rows, none of them a test sequence.

        Shape:
            (batch_size, n) int64 symbols, 1 <= n <= max_length.
        """
        _checks.positive_int(batch_size, "batch_size")
        n = int(torch.randint(1, self.max_length + 1, (), generator=generator))
        rows = torch.randint(0, self.num_symbols, (batch_size, n), generator=generator)  # (B, n)
        test = self.test_sets.get(n)
        while test is not None:
            seen = (rows[:, None, :] == test[None, :, :]).all(-1).any(-1)  # (B,): row is a test sequence
            if not seen.any():
                break
            rows[seen] = torch.randint(0, self.num_symbols, (int(seen.sum()), n), generator=generator)
        return rows
