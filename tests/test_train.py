"""training and models: the one training loop and its callbacks, the recall models and the distance grid of
chapters 1 and 5."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from transformer_course import checkpoint, distance_grid, models, tasks, training
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
        callbacks = [training.ProgressBar("steps")] if progress else []
        runs.append(training.train(model, data, config, device="cpu", callbacks=callbacks))
    assert runs[0].losses == runs[1].losses


def test_distance_grid_repeats_the_same_runs_as_train():
    grid = distance_grid.run_distance_grid("rnn", steps=6, distances=(5, 10), seeds=(0, 1), progress=False,
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


def test_a_run_continued_from_its_checkpoint_equals_the_uninterrupted_run(tmp_path):
    data = _small_data()

    def fresh():
        torch.manual_seed(0)
        model = models.RecurrentClassifier("lstm", 8)
        config = training.TrainConfig(steps=6, batch_size=200)  # 2 batches a pass: resume mid-pass
        return model, config, training.make_optimizer(model, config), training.MiniBatches(512, 200, seed=0)

    model, config, optimizer, order = fresh()
    whole = training.train(model, training.SplitBatches(data, order), config, device="cpu",
                           optimizer=optimizer)

    resumed, config, optimizer, order = fresh()
    seen = []

    class Record(training.Callback):
        def on_step_end(self, state):
            seen.append((state.step, len(state.result.losses)))

    path = tmp_path / "run.safetensors"
    first = training.train(resumed, training.SplitBatches(data, order), replace(config, steps=3),
                           device="cpu", callbacks=[checkpoint.Checkpoints(path, order, {}), Record()],
                           optimizer=optimizer)
    # A fresh optimizer and order, restored from the file: the run continues where it stopped.
    optimizer, order = training.make_optimizer(resumed, config), training.MiniBatches(512, 200, seed=99)
    saved = checkpoint.load_checkpoint(path, resumed, optimizer, order, run={})
    continue_at = checkpoint.Checkpoints(path, order, {}, start_step=saved["step"], history=saved)
    second = training.train(resumed, training.SplitBatches(data, order), config, device="cpu",
                            callbacks=[continue_at, Record()], optimizer=optimizer)
    assert saved["step"] == 3 and seen == [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)]
    assert first.losses + second.losses == whole.losses
    assert second.eval_steps == [6] and second.test_accuracy == whole.test_accuracy
    torch.testing.assert_close(resumed.state_dict(), model.state_dict(), rtol=0, atol=0)
    assert checkpoint.load_checkpoint(path, resumed, optimizer, order, run={})["losses"] == whole.losses
    # Nothing left to take: no step, the accuracy of the model as it is.
    done = training.train(resumed, training.SplitBatches(data, order), config, device="cpu",
                          callbacks=[checkpoint.Checkpoints(path, order, {}, start_step=6)],
                          optimizer=optimizer)
    assert done.losses == [] and done.eval_steps == [6] and done.test_accuracy == whole.test_accuracy


def test_a_callback_may_replace_the_forward_pass_the_batches_and_the_recorded_loss():
    class Recorder(nn.Module):  # stands for DistributedDataParallel: records what it is given
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner, self.rows = inner, []

        def forward(self, input_ids):
            self.rows.append(len(input_ids))
            return self.inner(input_ids)

    class HalfBatches(training.Callback):  # as distributed.DataParallel does for one of two processes
        def __init__(self, double_loss: bool) -> None:
            self.double_loss = double_loss

        def on_train_start(self, state):
            state.forward = Recorder(state.model)
            wrappers.append(state.forward)
            state.batches = ((x[: len(x) // 2], y[: len(y) // 2]) for x, y in state.batches)
            if self.double_loss:
                state.loss_value = lambda loss: 2 * loss.item()

    data = _small_data()
    config = training.TrainConfig(steps=3, batch_size=32)
    wrappers = []
    runs = []
    for double_loss in (False, True):
        torch.manual_seed(0)
        model = models.RecurrentClassifier("rnn", 8)
        runs.append(training.train(model, data, config, device="cpu", callbacks=[HalfBatches(double_loss)]))
    assert [w.rows for w in wrappers] == [[16, 16, 16]] * 2  # training only: evaluation uses the model
    assert runs[1].losses == [2 * loss for loss in runs[0].losses]


def test_callbacks_are_called_in_order_at_every_event():
    calls = []

    class Log(training.Callback):
        def __init__(self, name):
            self.name = name

        def on_train_start(self, state):
            calls.append((self.name, "start", state.step))

        def on_step_start(self, state):
            calls.append((self.name, "step", state.step))

        def on_step_end(self, state):
            calls.append((self.name, "end", len(state.result.losses)))

        def on_train_end(self, state):
            calls.append((self.name, "done", list(state.result.eval_steps)))

    torch.manual_seed(0)
    config = training.TrainConfig(steps=2, eval_every=1)
    training.train(models.RecurrentClassifier("rnn", 8), _small_data(), config, device="cpu",
                   callbacks=[Log("a"), Log("b")])
    assert calls == [("a", "start", 0), ("b", "start", 0),
                     ("a", "step", 1), ("b", "step", 1), ("a", "end", 1), ("b", "end", 1),
                     ("a", "step", 2), ("b", "step", 2), ("a", "end", 2), ("b", "end", 2),
                     ("a", "done", [1, 2]), ("b", "done", [1, 2])]


def test_learning_rate_schedule_sets_every_step_and_mixed_precision_the_forward_dtype():
    rates, dtypes = [], []

    class Watch(training.Callback):
        def on_step_end(self, state):
            rates.append(state.optimizer.param_groups[0]["lr"])
            dtypes.append(state.autocast_dtype)

    torch.manual_seed(0)
    config = training.TrainConfig(steps=4, lr=0.1)
    schedule = training.LearningRateSchedule(training.warmup_cosine(warmup=2, total=4))
    training.train(models.RecurrentClassifier("rnn", 8), _small_data(), config, device="cpu",
                   callbacks=[schedule, training.MixedPrecision(torch.bfloat16), Watch()])
    assert rates == pytest.approx([0.05, 0.1, 0.05, 0.0]) and dtypes == [torch.bfloat16] * 4


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
    config = training.TrainConfig(steps=2, num_threads=1)
    training.train(models.RecurrentClassifier("rnn", 8), _small_data(), config, device="cpu")
    assert torch.get_num_threads() == before


def test_distance_grid_accepts_a_model_factory_and_leaves_the_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    grid = distance_grid.run_distance_grid(lambda: models.RecurrentClassifier("lstm", 8), steps=2,
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
    "batches without a score": (lambda: training.train(_Oracle(), iter([])), TypeError, r"score: required"),
    "score not callable": (lambda: training.train(_Oracle(), _small_data(), score=0.5), TypeError,
                           r"score: .*got float"),
    "a callback not in a list": (
        lambda: training.train(_Oracle(), _small_data(), callbacks=training.ProgressBar()), TypeError,
        r"callbacks: .*sequence"),
    "a schedule not callable": (lambda: training.LearningRateSchedule(0.5), TypeError,
                                r"factor: .*got float"),
    "zero threads": (lambda: training.TrainConfig(num_threads=0), ValueError, r"num_threads: .*got 0"),
    "config: zero heads": (lambda: models.RecallEncoderConfig(num_heads=0), ValueError,
                           r"num_heads: .*got 0"),
    "config: unknown positions": (lambda: models.RecallEncoderConfig(positional="rotary"), ValueError,
                                  r"positional: .*'rotary'"),
    "integer autocast dtype": (lambda: training.MixedPrecision(torch.int8), TypeError,
                               r"dtype: .*torch.int8"),
    "unknown cell": (lambda: models.RecurrentClassifier("gru", 8), ValueError, r"cell: .*'gru'"),
    "unknown kind": (lambda: models.make_recall_model("gru"), ValueError, r"kind: .*'gru'"),
    "unknown grid model": (lambda: distance_grid.run_distance_grid("gru"), ValueError, r"model: .*'gru'"),
    "factory without steps": (lambda: distance_grid.run_distance_grid(lambda: _Oracle()), ValueError,
                              r"steps: required"),
    "grid model of wrong type": (lambda: distance_grid.run_distance_grid(3), TypeError, r"model: .*got int"),
    "empty distances": (lambda: distance_grid.run_distance_grid("rnn", distances=()), ValueError,
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
