"""train: the training loop, the recall models and the distance grid of chapters 1 and 5."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch import nn

from transformer_course import tasks, train


class _Oracle(nn.Module):
    """Answers the recall task perfectly: one-hot of the first token, as logits (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # evaluate() reads the device from a parameter

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(input_ids[:, 0], tasks.NUM_ANSWERS).float()


def _small_data(distance: int = 3) -> tasks.SplitData:
    return tasks.make_recall_data(distance, num_train=512, num_test=256)


def test_docstring_examples_run():
    result = doctest.testmod(train)
    assert result.attempted >= 10 and result.failed == 0


def test_default_config_is_the_book_set_up():
    config = train.TrainConfig()
    assert (config.optimizer, config.lr, config.batch_size, config.clip_norm) == ("adam", 3e-3, 64, 1.0)
    assert train.STEPS == {"rnn": 400, "lstm": 400, "encoder": 100}


def test_evaluate_scores_a_perfect_and_a_constant_model():
    data = _small_data()
    assert train.evaluate(_Oracle(), data.test_inputs, data.test_targets, batch_size=100) == 1.0

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([5.0] + [0.0] * 7))

        def forward(self, input_ids):
            return self.bias.expand(len(input_ids), 8)

    expected = (data.test_targets == 0).float().mean().item()
    assert train.evaluate(Constant(), data.test_inputs, data.test_targets) == pytest.approx(expected)


def test_training_is_reproducible_and_records_its_history():
    data = _small_data()
    config = train.TrainConfig(steps=30, eval_every=10)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        results.append(train.train(train.RecurrentClassifier("rnn", 16), data, config, device="cpu"))
    a, b = results
    assert a.losses == b.losses and a.test_accuracy == b.test_accuracy
    assert a.eval_steps == [10, 20, 30] and len(a.losses) == len(a.grad_norms) == 30
    assert not a.diverged and a.seconds > 0


def test_lstm_learns_a_short_distance():
    torch.manual_seed(0)
    model = train.make_recall_model("lstm")
    result = train.train(model, _small_data(3), train.TrainConfig(steps=100), device="cpu")
    assert result.final_accuracy > 0.95
    assert not model.training  # left in eval mode


def test_encoder_classifier_learns_the_recall_task():
    torch.manual_seed(0)
    model = train.make_recall_model("encoder")
    result = train.train(model, _small_data(10), train.TrainConfig(steps=100), device="cpu")
    assert result.final_accuracy > 0.95


def test_clipping_bounds_every_sgd_step():
    data = _small_data()
    torch.manual_seed(0)
    model = train.RecurrentClassifier("rnn", 16)
    with torch.no_grad():
        model.readout.weight.mul_(50)  # large logits: gradient norms well above 0.01
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    config = train.TrainConfig(steps=1, optimizer="sgd", lr=1.0, clip_norm=0.01)
    result = train.train(model, data, config, device="cpu")
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert result.grad_norms[0] > 0.01  # recorded before clipping
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)  # lr * clipped norm


def test_non_finite_loss_stops_training():
    torch.manual_seed(0)
    model = train.RecurrentClassifier("rnn", 8)
    with torch.no_grad():
        model.readout.bias.fill_(float("nan"))
    result = train.train(model, _small_data(), train.TrainConfig(steps=20), device="cpu")
    assert result.diverged and len(result.losses) == 1 and result.test_accuracy == []


def test_progress_bar_does_not_change_the_result():
    data = _small_data()
    runs = []
    for progress in (False, True):
        torch.manual_seed(0)
        model = train.RecurrentClassifier("rnn", 8)
        runs.append(train.train(model, data, train.TrainConfig(steps=5), device="cpu", progress=progress))
    assert runs[0].losses == runs[1].losses


def test_distance_grid_repeats_the_same_runs_as_train():
    grid = train.run_distance_grid("rnn", steps=6, distances=(5, 10), seeds=(0, 1), progress=False,
                                   device="cpu")
    assert grid.accuracy.shape == (2, 2) and set(grid.runs) == {(5, 0), (5, 1), (10, 0), (10, 1)}
    assert grid.mean_accuracy().shape == (2,)
    # Run (d = 10, seed 1) by hand: same data, same initial weights, same batches.
    data = tasks.RecallTask(10, seed=1).make()
    torch.manual_seed(1)
    model = train.make_recall_model("rnn")
    by_hand = train.train(model, data, train.TrainConfig(steps=6), seed=1, device="cpu")
    assert by_hand.losses == grid.runs[(10, 1)].losses
    assert grid.accuracy[1, 1] == by_hand.final_accuracy
    # The trained model of each run is kept, in eval mode, and scores what the run reported.
    kept = grid.models[(10, 1)]
    assert set(grid.models) == set(grid.runs) and not kept.training
    assert train.evaluate(kept, data.test_inputs, data.test_targets) == grid.accuracy[1, 1]
    torch.testing.assert_close(kept.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_encoder_classifier_passes_norm_placement_and_residual_to_its_encoder():
    model = train.EncoderClassifier(d_model=8, num_heads=2, num_layers=3, norm_first=True, residual=False)
    assert model.encoder.norm is not None
    assert all(layer.norm_first and not layer.residual for layer in model.encoder.layers)
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 8)


def test_training_threads_are_restored():
    before = torch.get_num_threads()
    torch.manual_seed(0)
    train.train(train.RecurrentClassifier("rnn", 8), _small_data(), train.TrainConfig(steps=2),
                device="cpu", num_threads=1)
    assert torch.get_num_threads() == before


def test_distance_grid_accepts_a_model_factory_and_leaves_the_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    grid = train.run_distance_grid(lambda: train.RecurrentClassifier("lstm", 8), steps=2,
                                   distances=(5,), progress=False, device="cpu")
    assert torch.equal(torch.rand(1), expected)
    assert np.isfinite(grid.accuracy).all()


def test_state_bottleneck_shapes():
    model = train.StateBottleneck(length=6, num_symbols=5, hidden_size=4)
    assert model(torch.zeros(3, 6, dtype=torch.long)).shape == (3, 6, 5)
    data = tasks.make_copy_data(6, num_symbols=5, num_train=64, num_test=16)
    result = train.train(model, data, train.TrainConfig(steps=2), device="cpu")
    assert 0.0 <= result.final_accuracy <= 1.0


BAD_CALLS = {
    "zero steps": (lambda: train.TrainConfig(steps=0), ValueError, r"steps: .*got 0"),
    "negative lr": (lambda: train.TrainConfig(lr=-1.0), ValueError, r"lr: .*positive.*-1.0"),
    "zero clip": (lambda: train.TrainConfig(clip_norm=0.0), ValueError, r"clip_norm: .*or None"),
    "unknown optimizer": (lambda: train.TrainConfig(optimizer="rmsprop"), ValueError,
                          r"optimizer: .*'rmsprop'"),
    "model not a module": (lambda: train.train("rnn", _small_data()), TypeError, r"model: .*got str"),
    "data not SplitData": (lambda: train.train(_Oracle(), (1, 2)), TypeError, r"data: .*got tuple"),
    "zero threads": (lambda: train.train(_Oracle(), _small_data(), num_threads=0), ValueError,
                     r"num_threads: .*got 0"),
    "progress not a bool": (lambda: train.train(_Oracle(), _small_data(), progress="yes"), TypeError,
                            r"progress: .*got str"),
    "unknown cell": (lambda: train.RecurrentClassifier("gru", 8), ValueError, r"cell: .*'gru'"),
    "unknown kind": (lambda: train.make_recall_model("gru"), ValueError, r"kind: .*'gru'"),
    "unknown grid model": (lambda: train.run_distance_grid("gru"), ValueError, r"model: .*'gru'"),
    "factory without steps": (lambda: train.run_distance_grid(lambda: _Oracle()), ValueError,
                              r"steps: required"),
    "grid model of wrong type": (lambda: train.run_distance_grid(3), TypeError, r"model: .*got int"),
    "empty distances": (lambda: train.run_distance_grid("rnn", distances=()), ValueError,
                        r"distances, seeds"),
    "bottleneck input of wrong length": (
        lambda: train.StateBottleneck(4)(torch.zeros(2, 5, dtype=torch.long)), ValueError,
        r"input_ids: .*\(B, T=4\).*\(2, 5\)"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_named_in_the_error(case):
    call, error, pattern = BAD_CALLS[case]
    with pytest.raises(error, match=pattern):
        call()


def test_logits_that_do_not_match_the_targets_are_rejected():
    class Wrong(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            return self.w.expand(len(input_ids), 3, 8)  # (B, 3, C) for targets (B,)

    with pytest.raises(ValueError, match=r"model output: .*\(64,\) \+ \(C,\).*\(64, 3, 8\)"):
        train.train(Wrong(), _small_data(), train.TrainConfig(steps=1), device="cpu")
