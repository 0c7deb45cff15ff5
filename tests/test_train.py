"""training and models: the one training loop, the recall models and the distance grid of chapters 1 and 5."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from transformer_course import models, tasks, training
from transformer_course.encoder import Encoder


class _Oracle(nn.Module):
    """Answers the recall task perfectly: one-hot of the first token, as logits (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # evaluate() reads the device from a parameter

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(input_ids[:, 0], tasks.NUM_ANSWERS).float()


def _small_data(distance: int = 3) -> tasks.SplitData:
    return tasks.make_recall_data(distance, num_train=512, num_test=256)


def test_evaluate_scores_a_perfect_and_a_constant_model():
    data = _small_data()
    assert training.evaluate(_Oracle(), data.test_inputs, data.test_targets, batch_size=100) == 1.0

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([5.0] + [0.0] * 7))

        def forward(self, input_ids):
            return self.bias.expand(len(input_ids), 8)

    expected = (data.test_targets == 0).float().mean().item()
    assert training.evaluate(Constant(), data.test_inputs, data.test_targets) == pytest.approx(expected)


def test_training_is_reproducible_and_records_its_history():
    data = _small_data()
    config = training.TrainConfig(steps=30, eval_every=10)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        results.append(training.train(models.RecurrentClassifier("rnn", 16), data, config, device="cpu"))
    a, b = results
    assert a.losses == b.losses and a.test_accuracy == b.test_accuracy
    assert a.eval_steps == [10, 20, 30] and len(a.losses) == len(a.grad_norms) == 30
    assert not a.diverged and a.seconds > 0


def test_lstm_learns_a_short_distance():
    torch.manual_seed(0)
    model = models.make_recall_model("lstm")
    result = training.train(model, _small_data(3), training.TrainConfig(steps=100), device="cpu")
    assert result.final_accuracy > 0.95
    assert not model.training  # left in eval mode


def test_encoder_classifier_learns_the_recall_task():
    torch.manual_seed(0)
    model = models.make_recall_model("encoder")
    result = training.train(model, _small_data(10), training.TrainConfig(steps=100), device="cpu")
    assert result.final_accuracy > 0.95


def test_clipping_bounds_every_sgd_step():
    data = _small_data()
    torch.manual_seed(0)
    model = models.RecurrentClassifier("rnn", 16)
    with torch.no_grad():
        model.readout.weight.mul_(50)  # large logits: gradient norms well above 0.01
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    config = training.TrainConfig(steps=1, optimizer="sgd", lr=1.0, clip_norm=0.01)
    result = training.train(model, data, config, device="cpu")
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert result.grad_norms[0] > 0.01  # recorded before clipping
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)  # lr * clipped norm


def test_non_finite_loss_stops_training():
    torch.manual_seed(0)
    model = models.RecurrentClassifier("rnn", 8)
    with torch.no_grad():
        model.readout.bias.fill_(float("nan"))
    result = training.train(model, _small_data(), training.TrainConfig(steps=20), device="cpu")
    assert result.diverged and len(result.losses) == 1 and result.test_accuracy == []


def test_progress_bar_does_not_change_the_result():
    data = _small_data()
    runs = []
    for progress in (False, True):
        torch.manual_seed(0)
        model = models.RecurrentClassifier("rnn", 8)
        config = training.TrainConfig(steps=5)
        runs.append(training.train(model, data, config, device="cpu", progress=progress))
    assert runs[0].losses == runs[1].losses


def test_distance_grid_repeats_the_same_runs_as_train():
    grid = training.run_distance_grid("rnn", steps=6, distances=(5, 10), seeds=(0, 1), progress=False,
                                   device="cpu")
    assert grid.accuracy.shape == (2, 2) and set(grid.runs) == {(5, 0), (5, 1), (10, 0), (10, 1)}
    assert grid.mean_accuracy().shape == (2,)
    # Run (d = 10, seed 1) by hand: same data, same initial weights, same batches.
    data = tasks.RecallTask(10, seed=1).make()
    torch.manual_seed(1)
    model = models.make_recall_model("rnn")
    by_hand = training.train(model, data, training.TrainConfig(steps=6), seed=1, device="cpu")
    assert by_hand.losses == grid.runs[(10, 1)].losses
    assert grid.accuracy[1, 1] == by_hand.final_accuracy
    # The trained model of each run is kept, in eval mode, and scores what the run reported.
    kept = grid.models[(10, 1)]
    assert set(grid.models) == set(grid.runs) and not kept.training
    assert training.evaluate(kept, data.test_inputs, data.test_targets) == grid.accuracy[1, 1]
    torch.testing.assert_close(kept.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_a_run_continued_from_its_state_equals_the_uninterrupted_run():
    data = _small_data()

    def fresh():
        torch.manual_seed(0)
        model = models.RecurrentClassifier("lstm", 8)
        config = training.TrainConfig(steps=6, batch_size=200)  # 2 batches a pass: resume mid-pass
        return model, config, training.make_optimizer(model, config), training.MiniBatches(512, 200, seed=0)

    model, config, optimizer, batches = fresh()
    whole = training.train(model, data, config, device="cpu", optimizer=optimizer, batches=batches)

    resumed, config, optimizer, batches = fresh()
    seen = []

    def record(step, result):
        seen.append((step, len(result.losses)))

    first = training.train(resumed, data, training.TrainConfig(steps=3, batch_size=200), device="cpu",
                           optimizer=optimizer, batches=batches, on_step=record)
    second = training.train(resumed, data, config, device="cpu", optimizer=optimizer, batches=batches,
                            start_step=3, on_step=record)
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)]
    assert first.losses + second.losses == whole.losses
    assert second.eval_steps == [6] and second.test_accuracy == whole.test_accuracy
    torch.testing.assert_close(resumed.state_dict(), model.state_dict(), rtol=0, atol=0)
    # Nothing left to take: no step, the accuracy of the model as it is.
    done = training.train(resumed, data, config, device="cpu", optimizer=optimizer, batches=batches,
                          start_step=6)
    assert done.losses == [] and done.eval_steps == [6] and done.test_accuracy == whole.test_accuracy


def test_shard_wrap_and_reduce_loss_hooks():
    class Recorder(nn.Module):  # stands for DistributedDataParallel: records what it is given
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner, self.rows = inner, []

        def forward(self, input_ids):
            self.rows.append(len(input_ids))
            return self.inner(input_ids)

    data = _small_data()
    config = training.TrainConfig(steps=3, batch_size=32)
    wrappers = []
    runs = []
    for reduce_loss in (None, lambda loss: 2 * loss.item()):
        torch.manual_seed(0)
        model = models.RecurrentClassifier("rnn", 8)
        runs.append(training.train(
            model, data, config, device="cpu", shard=lambda batch: batch[: len(batch) // 2],
            wrap=lambda net: wrappers.append(Recorder(net)) or wrappers[-1], reduce_loss=reduce_loss,
        ))
    assert [w.rows for w in wrappers] == [[16, 16, 16]] * 2  # training only: evaluation uses the model
    assert runs[1].losses == [2 * loss for loss in runs[0].losses]


def test_mini_batches_resume_mid_pass():
    reference = training.MiniBatches(100, 32, seed=3)
    batches = training.MiniBatches(100, 32, seed=3)
    assert all(torch.equal(next(batches), next(reference)) for _ in range(5))  # into the second pass
    again = training.MiniBatches(100, 32, seed=99)
    again.load_state_dict(batches.state_dict())
    assert all(torch.equal(next(again), next(reference)) for _ in range(5))
    with pytest.raises(ValueError, match="state: expected an order of 100 indices"):
        again.load_state_dict({**batches.state_dict(), "order": torch.arange(7)})


def test_the_recall_encoder_sizes_come_from_its_config():
    book = models.RecallEncoderConfig()
    assert models.make_recall_model("encoder").config == models.EncoderClassifier().config == book
    small = models.RecallEncoderConfig(d_model=16, num_heads=2, num_layers=3)
    model = models.EncoderClassifier(**asdict(small))
    assert model.config == small and small.resolved_d_ff == 64
    shapes = [p.shape for p in model.encoder.parameters()]
    assert shapes == [p.shape for p in Encoder(3, 16, 2, d_ff=64).parameters()]
    # Every model's input embedding has the same name.
    for model in [*map(models.make_recall_model, models.MODEL_KINDS), models.StateBottleneck(3)]:
        assert isinstance(model.embedding, nn.Module), type(model).__name__


def test_encoder_classifier_passes_norm_placement_and_residual_to_its_encoder():
    model = models.EncoderClassifier(d_model=8, num_heads=2, num_layers=3, norm_first=True, residual=False)
    assert model.encoder.norm is not None
    assert all(layer.norm_first and not layer.residual for layer in model.encoder.layers)
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 8)


def test_training_threads_are_restored():
    before = torch.get_num_threads()
    torch.manual_seed(0)
    training.train(models.RecurrentClassifier("rnn", 8), _small_data(), training.TrainConfig(steps=2),
                device="cpu", num_threads=1)
    assert torch.get_num_threads() == before


def test_distance_grid_accepts_a_model_factory_and_leaves_the_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    grid = training.run_distance_grid(lambda: models.RecurrentClassifier("lstm", 8), steps=2,
                                   distances=(5,), progress=False, device="cpu")
    assert torch.equal(torch.rand(1), expected)
    assert np.isfinite(grid.accuracy).all()


def test_state_bottleneck_shapes():
    model = models.StateBottleneck(length=6, num_symbols=5, hidden_size=4)
    assert model(torch.zeros(3, 6, dtype=torch.long)).shape == (3, 6, 5)
    data = tasks.make_copy_data(6, num_symbols=5, num_train=64, num_test=16)
    result = training.train(model, data, training.TrainConfig(steps=2), device="cpu")
    assert 0.0 <= result.final_accuracy <= 1.0


BAD_CALLS = {
    "zero steps": (lambda: training.TrainConfig(steps=0), ValueError, r"steps: .*got 0"),
    "negative lr": (lambda: training.TrainConfig(lr=-1.0), ValueError, r"lr: .*positive.*-1.0"),
    "zero clip": (lambda: training.TrainConfig(clip_norm=0.0), ValueError, r"clip_norm: .*or None"),
    "unknown optimizer": (lambda: training.TrainConfig(optimizer="rmsprop"), ValueError,
                          r"optimizer: .*'rmsprop'"),
    "model not a module": (lambda: training.train("rnn", _small_data()), TypeError, r"model: .*got str"),
    "data not SplitData": (lambda: training.train(_Oracle(), (1, 2)), TypeError, r"data: .*got tuple"),
    "zero threads": (lambda: training.train(_Oracle(), _small_data(), num_threads=0), ValueError,
                     r"num_threads: .*got 0"),
    "progress not a bool": (lambda: training.train(_Oracle(), _small_data(), progress="yes"), TypeError,
                            r"progress: .*got str"),
    "config: zero heads": (lambda: models.RecallEncoderConfig(num_heads=0), ValueError,
                           r"num_heads: .*got 0"),
    "config: unknown positions": (lambda: models.RecallEncoderConfig(positional="rotary"), ValueError,
                                  r"positional: .*'rotary'"),
    "negative start step": (lambda: training.train(_Oracle(), _small_data(), start_step=-1), ValueError,
                            r"start_step: .*>= 0, got -1"),
    "integer autocast dtype": (lambda: training.train(_Oracle(), _small_data(), autocast_dtype=torch.int8),
                               TypeError, r"autocast_dtype: .*torch.int8"),
    "unknown cell": (lambda: models.RecurrentClassifier("gru", 8), ValueError, r"cell: .*'gru'"),
    "unknown kind": (lambda: models.make_recall_model("gru"), ValueError, r"kind: .*'gru'"),
    "unknown grid model": (lambda: training.run_distance_grid("gru"), ValueError, r"model: .*'gru'"),
    "factory without steps": (lambda: training.run_distance_grid(lambda: _Oracle()), ValueError,
                              r"steps: required"),
    "grid model of wrong type": (lambda: training.run_distance_grid(3), TypeError, r"model: .*got int"),
    "empty distances": (lambda: training.run_distance_grid("rnn", distances=()), ValueError,
                        r"distances, seeds"),
    "bottleneck input of wrong length": (
        lambda: models.StateBottleneck(4)(torch.zeros(2, 5, dtype=torch.long)), ValueError,
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
        training.train(Wrong(), _small_data(), training.TrainConfig(steps=1), device="cpu")
