"""position_generalization: the "k places back" task, its model and its protocol (train short,
test long) are what chapter 3 says they are."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transformer_course import position_generalization as pg
from transformer_course.training import TrainConfig

SMALL = pg.ShiftTask(offset=2, num_symbols=4, train_len=8, test_len=12, num_test=64)
TINY = {"d_model": 8, "d_ff": 16}


class Oracle(nn.Module):
    """Answers y_t = x_(t-k) perfectly (and symbol 0 where there is no answer)."""

    def __init__(self, task: pg.ShiftTask) -> None:
        super().__init__()
        self.task = task
        self.unused = nn.Parameter(torch.zeros(1))  # so that the model has a device

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        shifted = torch.zeros_like(ids)
        shifted[:, self.task.offset :] = ids[:, : -self.task.offset]
        return nn.functional.one_hot(shifted, self.task.num_symbols).float()  # (B, T, V)


def test_targets_are_the_inputs_k_places_back():
    inputs, targets = SMALL.batch(5, 10, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (5, 10)
    assert (targets[:, :2] == pg.IGNORE).all()
    assert torch.equal(targets[:, 2:], inputs[:, :-2])
    assert 0 <= int(inputs.min()) and int(inputs.max()) < 4
    with pytest.raises(ValueError, match="length"):
        SMALL.batch(5, 2, torch.Generator())  # no position would have an answer


def test_the_test_set_is_fixed_by_the_task_seed():
    first, again = SMALL.test_set(), SMALL.test_set()
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = pg.ShiftTask(offset=2, num_symbols=4, train_len=8, test_len=12, num_test=64, seed=5).test_set()
    assert not torch.equal(first[0], other[0])
    assert first[0].shape == (64, 12)
    assert SMALL.chance == 0.25


@pytest.mark.parametrize("bad", [{"train_len": 2}, {"test_len": 7}, {"num_symbols": 1}, {"offset": 0}])
def test_the_task_rejects_impossible_sizes(bad):
    sizes = {"offset": 2, "num_symbols": 4, "train_len": 8, "test_len": 12} | bad
    with pytest.raises(ValueError):
        pg.ShiftTask(**sizes)


def test_accuracy_by_position_scores_every_position_with_an_answer():
    inputs, targets = SMALL.test_set()
    perfect = pg.accuracy_by_position(Oracle(SMALL), inputs, targets)
    assert perfect.shape == (12,) and perfect[:2].isnan().all()
    assert (perfect[2:] == 1.0).all()
    wrong = targets.clone()
    wrong[:, 5] = (wrong[:, 5] + 1) % 4  # position 5 now never matches
    by_position = pg.accuracy_by_position(Oracle(SMALL), inputs, wrong)
    assert by_position[5] == 0.0 and (by_position[6:] == 1.0).all()


def test_the_learned_table_starts_as_large_as_the_token_vectors():
    torch.manual_seed(0)
    model = pg.ShiftModel("learned", num_symbols=16, max_len=512, d_model=64)
    table = model.embedding.position_encoding.weight
    tokens = model.embedding.token_embedding.table.weight
    assert table.shape == (512, 64)
    assert 0.9 < table.std().item() < 1.1 and 0.8 < tokens.std().item() < 1.2
    assert pg.ShiftModel("sinusoidal").embedding.token_embedding.scale  # sqrt(D)-scaled tokens


def test_training_never_touches_the_rows_of_unseen_positions():
    torch.manual_seed(0)
    model = pg.ShiftModel("learned", num_symbols=4, max_len=12, **TINY)
    before = model.embedding.position_encoding.weight.detach().clone()
    result = pg.train_shift(model, SMALL, TrainConfig(steps=5, batch_size=8, eval_every=5), seed=1)
    after = model.embedding.position_encoding.weight.detach()
    assert len(result.losses) == 5 and result.eval_steps == [5]
    assert not torch.equal(after[:8], before[:8])  # positions 0 .. train_len - 1 were trained
    assert torch.equal(after[8:], before[8:])  # positions 8 .. 11 never were: still random


def test_train_shift_uses_the_package_loop_and_its_own_seed():
    def run(seed):
        torch.manual_seed(0)
        model = pg.ShiftModel("sinusoidal", num_symbols=4, max_len=12, **TINY)
        return pg.train_shift(model, SMALL, TrainConfig(steps=4, batch_size=8, eval_every=2), seed=seed)

    first, again, other = run(1), run(1), run(2)
    assert first.losses == again.losses and first.losses != other.losses
    assert first.eval_steps == [2, 4] and all(0.0 <= a <= 1.0 for a in first.test_accuracy)
    with pytest.raises(ValueError, match="task.seed"):
        run(SMALL.seed)
    with pytest.raises(TypeError, match="ShiftTask"):
        pg.train_shift(Oracle(SMALL), "task")


def test_a_short_run_learns_the_task_at_the_trained_length():
    """Sinusoidal positions, offset 1, 4 symbols: 150 steps are far above chance (0.25)."""
    task = pg.ShiftTask(offset=1, num_symbols=4, train_len=8, test_len=12, num_test=64)
    torch.manual_seed(0)
    model = pg.ShiftModel("sinusoidal", num_symbols=4, max_len=12, d_model=16, d_ff=32)
    config = TrainConfig(steps=150, batch_size=32, lr=1e-2, eval_every=150)
    result = pg.train_shift(model, task, config, seed=0)
    assert result.final_accuracy > 0.9
    assert result.losses[-1] < 0.5 * result.losses[0]


def test_run_comparison_gives_one_run_per_encoding_and_seed():
    runs = pg.run_comparison(("sinusoidal", "learned", "none"), seeds=(0, 1), task=SMALL,
                             config=TrainConfig(steps=2, batch_size=8, eval_every=2), **TINY)
    assert [(r.positional, r.seed) for r in runs] == [
        ("sinusoidal", 0), ("sinusoidal", 1), ("learned", 0), ("learned", 1), ("none", 0), ("none", 1)
    ]
    for run in runs:
        assert run.by_position.shape == (12,) and run.train_len == 8
        seen = run.by_position[2:8].mean().item()
        unseen = run.by_position[8:].mean().item()
        assert math.isclose(run.seen, seen) and math.isclose(run.unseen, unseen)
