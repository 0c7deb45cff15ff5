"""tasks: the recall and copy data sets are seeded, well formed and split without overlap."""

from __future__ import annotations

import pytest
import torch

from transformer_course import tasks


@pytest.mark.parametrize("distance", [1, 5, 100])
def test_recall_sequences_are_answer_distractors_query(distance):
    data = tasks.make_recall_data(distance, num_train=40, num_test=20)
    for inputs, targets, n in ((data.train_inputs, data.train_targets, 40),
                               (data.test_inputs, data.test_targets, 20)):
        assert inputs.shape == (n, distance + 2) and targets.shape == (n,)
        assert inputs.dtype == targets.dtype == torch.int64
        assert torch.equal(inputs[:, 0], targets)
        assert ((targets >= 0) & (targets < tasks.NUM_ANSWERS)).all()
        gap = inputs[:, 1:-1]
        assert ((gap >= tasks.NUM_ANSWERS) & (gap < tasks.QUERY)).all()  # never an answer symbol
        assert (inputs[:, -1] == tasks.QUERY).all()


def test_shared_symbols_draws_distractors_from_the_answers():
    data = tasks.make_recall_data(30, num_train=200, num_test=50, shared_symbols=True)
    gap = data.train_inputs[:, 1:-1]
    assert (gap < tasks.NUM_ANSWERS).all()
    assert len(gap.unique()) == tasks.NUM_ANSWERS


def test_same_seed_same_data_other_seed_other_data():
    a, b = tasks.RecallTask(10).make(), tasks.RecallTask(10).make()
    c = tasks.RecallTask(10, seed=1).make()
    assert torch.equal(a.train_inputs, b.train_inputs) and torch.equal(a.test_inputs, b.test_inputs)
    assert not torch.equal(a.train_inputs, c.train_inputs)


def test_default_sizes_and_roughly_uniform_answers():
    data = tasks.RecallTask(5).make()
    assert len(data.train_inputs) == 4096 and len(data.test_inputs) == 1024
    counts = torch.bincount(data.train_targets, minlength=8).float() / 4096
    assert (counts - 1 / 8).abs().max() < 0.03


@pytest.mark.parametrize("make", [
    lambda: tasks.make_recall_data(2, num_train=400, num_test=100),  # 512 distinct sequences
    lambda: tasks.make_copy_data(3, num_symbols=8, num_train=400, num_test=100),  # 512 distinct
    lambda: tasks.make_two_position_data(3, length=6, num_train=200, num_test=40),  # 243 distinct
])
def test_train_and_test_are_disjoint_even_when_duplicates_are_likely(make):
    data = make()
    train_rows = {tuple(r) for r in data.train_inputs.tolist()}
    test_rows = [tuple(r) for r in data.test_inputs.tolist()]
    assert len(train_rows) == len(data.train_inputs)  # no duplicates inside either
    assert len(set(test_rows)) == len(test_rows)
    assert train_rows.isdisjoint(test_rows)


def test_copy_data_targets_are_the_inputs():
    data = tasks.make_copy_data(7, num_symbols=5, num_train=30, num_test=10, seed=2)
    assert data.train_inputs.shape == (30, 7) and torch.equal(data.train_inputs, data.train_targets)
    assert torch.equal(data.test_inputs, data.test_targets)
    assert data.train_inputs.max() < 5 and data.train_inputs.min() >= 0
    assert torch.equal(data.train_inputs, tasks.make_copy_data(7, 5, 30, 10, seed=2).train_inputs)


def test_two_position_targets_are_the_ordered_pair():
    data = tasks.make_two_position_data(num_symbols=5, length=7, positions=(4, 1), num_train=50, num_test=20)
    for inputs, targets in ((data.train_inputs, data.train_targets), (data.test_inputs, data.test_targets)):
        assert inputs.shape[1] == 7 and (inputs[:, -1] == 5).all() and (inputs[:, :-1] < 5).all()
        assert torch.equal(targets, inputs[:, 4] * 5 + inputs[:, 1])  # (s_4, s_1): order kept
    default = tasks.make_two_position_data()
    assert (len(default.train_inputs), len(default.test_inputs)) == (2048, 512)
    assert torch.equal(default.train_targets, default.train_inputs[:, 0] * 4 + default.train_inputs[:, 4])
    # Every one of the 16 classes occurs, each about equally often.
    counts = torch.bincount(default.train_targets, minlength=16).float() / 2048
    assert (counts - 1 / 16).abs().max() < 0.02


BAD_CALLS = {
    "two positions: the same twice": (lambda: tasks.make_two_position_data(positions=(2, 2)), ValueError,
                                      r"positions: expected two different ints in 0 \.\. 6, got \(2, 2\)"),
    "two positions: the query's": (lambda: tasks.make_two_position_data(positions=(0, 7)), ValueError,
                                   r"positions: .*got \(0, 7\)"),
    "two positions: too many examples": (lambda: tasks.make_two_position_data(2, 4, (0, 1), 8, 1),
                                         ValueError, r"asked for 9 examples.*only 8 distinct"),
    "zero distance": (lambda: tasks.make_recall_data(0), ValueError, r"distance: .*>= 1, got 0"),
    "float distance": (lambda: tasks.make_recall_data(5.0), TypeError, r"distance: .*got float"),
    "bool seed": (lambda: tasks.make_recall_data(5, seed=True), TypeError, r"seed: .*got bool"),
    "no test examples": (lambda: tasks.make_recall_data(5, num_test=0), ValueError, r"num_test: .*got 0"),
    "shared_symbols not a bool": (lambda: tasks.make_recall_data(5, shared_symbols=1), TypeError,
                                  r"shared_symbols: .*got int"),
    "more examples than sequences": (lambda: tasks.make_recall_data(1, num_train=60, num_test=10),
                                     ValueError, r"asked for 70 examples.*only 64 distinct"),
    "one-symbol alphabet": (lambda: tasks.make_copy_data(4, num_symbols=1), ValueError,
                            r"num_symbols: .*>= 2, got 1"),
    "copy: more examples than sequences": (lambda: tasks.make_copy_data(2, 3, num_train=9, num_test=1),
                                           ValueError, r"asked for 10 examples.*only 9 distinct"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_named_in_the_error(case):
    call, error, pattern = BAD_CALLS[case]
    with pytest.raises(error, match=pattern):
        call()
