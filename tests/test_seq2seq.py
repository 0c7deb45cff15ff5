"""seq2seq, CopyTask and the training hooks they use: chapter 6's sequence-to-sequence models."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from book_tools import seq2seq_variants
from transformer_course import records, seq2seq, tasks, training

RECORD = records.DATA / "seq2seq_variants.json"


def _small_task(**kwargs) -> tasks.CopyTask:
    return tasks.CopyTask(max_length=8, test_lengths=(4, 8), num_test=30, **kwargs)


# ---------------------------------------------------------------- the task


def test_copy_task_test_sets_are_distinct_and_never_drawn_for_training():
    task = tasks.CopyTask(max_length=5, test_lengths=(3, 5), num_test=400)  # 400 of the 1000 3-symbol rows
    for n, test in task.test_sets.items():
        assert test.shape == (400, n) and test.dtype == torch.long
        assert len({tuple(row) for row in test.tolist()}) == 400
    generator = torch.Generator().manual_seed(0)
    test_rows = {tuple(row) for test in task.test_sets.values() for row in test.tolist()}
    lengths = set()
    for _ in range(300):
        batch = task.batch(16, generator)
        lengths.add(batch.shape[1])
        assert 0 <= int(batch.min()) and int(batch.max()) < task.num_symbols
        assert not test_rows & {tuple(row) for row in batch.tolist()}
    assert lengths == {1, 2, 3, 4, 5}  # one length per batch, every length drawn


def test_copy_task_is_seeded_and_its_target_copies_or_reverses():
    a, b = _small_task(seed=3), _small_task(seed=3)
    assert all(torch.equal(a.test_sets[n], b.test_sets[n]) for n in a.test_lengths)
    assert not torch.equal(a.test_sets[8], _small_task(seed=4).test_sets[8])
    source = torch.tensor([[1, 2, 3]])
    assert torch.equal(a.target(source), source)
    assert torch.equal(_small_task(reverse=True).target(source), torch.tensor([[3, 2, 1]]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_length": 0}, ValueError, "max_length"),
        ({"test_lengths": (5, 50)}, ValueError, "test_lengths"),
        ({"test_lengths": ()}, ValueError, "test_lengths"),
        ({"test_lengths": (2,), "num_test": 60}, ValueError, "num_test"),
        ({"reverse": 1}, TypeError, "reverse"),
        ({"num_symbols": 1}, ValueError, "num_symbols"),
    ],
)
def test_copy_task_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tasks.CopyTask(**kwargs)


def test_shift_right_puts_the_start_token_first():
    target = torch.tensor([[4, 5, 6], [7, 8, 9]])
    assert seq2seq.shift_right(target, start=10).tolist() == [[10, 4, 5], [10, 7, 8]]


# ---------------------------------------------------------------- the models


def test_parameter_counts_of_the_three_models():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(seq2seq.GRUSeq2Seq(attention=False)) == 143562
    assert count(seq2seq.GRUSeq2Seq(attention=True)) == 143562 + 128 * 128 + (256 * 128 + 128)
    assert count(seq2seq.TransformerSeq2Seq()) == 237642
    assert count(seq2seq.TransformerSeq2Seq(positions="separate")) == 237642 + 40 * 64
    assert count(seq2seq.TransformerSeq2Seq(positions="sinusoidal")) == 237642 - 40 * 64


def test_without_attention_the_decoder_sees_the_source_only_through_one_vector():
    torch.manual_seed(0)
    model = seq2seq.GRUSeq2Seq(attention=False).eval()
    source = torch.randint(0, 10, (3, 7))
    decoder_input = seq2seq.shift_right(source, model.start)
    outputs, initial = model.encode(source)
    assert initial.shape == (3, 128)
    logits = model.decode((outputs, initial), decoder_input)
    scrambled = model.decode((torch.randn_like(outputs), initial), decoder_input)
    torch.testing.assert_close(logits, scrambled, atol=0, rtol=0)  # the outputs are never read


def test_gru_attention_weights_are_a_distribution_over_the_source():
    torch.manual_seed(0)
    model = seq2seq.GRUSeq2Seq(attention=True).eval()
    source = torch.randint(0, 10, (2, 9))
    logits, weights = model.decode(model.encode(source), torch.full((2, 4), 10), return_attention=True)
    assert logits.shape == (2, 4, 10) and weights.shape == (2, 4, 9)
    assert bool((weights >= 0).all())
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    with pytest.raises(ValueError, match="return_attention"):
        seq2seq.GRUSeq2Seq(attention=False).decode(model.encode(source), torch.full((2, 4), 10),
                                                    return_attention=True)


def test_transformer_decoder_is_causal_and_returns_cross_attention_per_layer():
    torch.manual_seed(0)
    model = seq2seq.TransformerSeq2Seq().eval()
    source = torch.randint(0, 10, (2, 6))
    decoder_input = torch.randint(0, 11, (2, 5))
    changed = decoder_input.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 11  # change positions 3 and 4 only
    memory = model.encode(source)
    a, b = model.decode(memory, decoder_input), model.decode(memory, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3], atol=0, rtol=0)
    assert not torch.allclose(a[:, 3], b[:, 3])
    logits, cross = model.decode(memory, decoder_input, return_attention=True)
    torch.testing.assert_close(logits, a, atol=1e-5, rtol=1e-5)
    assert len(cross) == 2 and cross[0].shape == (2, 4, 5, 6)
    torch.testing.assert_close(cross[1].sum(-1), torch.ones(2, 4, 5))


def test_transformer_position_tables_shared_separate_or_fixed():
    shared = seq2seq.TransformerSeq2Seq()
    assert shared.source_positions is shared.target_positions
    assert shared.source_positions.weight.std().item() == pytest.approx(seq2seq.POSITION_INIT_STD, rel=0.1)
    separate = seq2seq.TransformerSeq2Seq(positions="separate")
    assert separate.source_positions is not separate.target_positions
    small = seq2seq.TransformerSeq2Seq(position_init_std=0.02)
    assert small.source_positions.weight.std().item() == pytest.approx(0.02, rel=0.1)
    fixed = seq2seq.TransformerSeq2Seq(positions="sinusoidal")
    assert not any("positions" in name for name, _ in fixed.named_parameters())
    with pytest.raises(ValueError, match="positions"):
        seq2seq.TransformerSeq2Seq(positions="rotary")


@pytest.mark.parametrize("make", [lambda: seq2seq.GRUSeq2Seq(attention=True), seq2seq.TransformerSeq2Seq])
def test_models_reject_ids_outside_their_vocabulary(make):
    model = make()
    with pytest.raises(ValueError, match="source"):
        model(torch.tensor([[10, 1]]), torch.tensor([[10, 1]]))  # 10 is the start token, not a symbol
    with pytest.raises(ValueError, match="decoder_input"):
        model(torch.tensor([[1, 2]]), torch.tensor([[11, 1]]))
    with pytest.raises(TypeError, match="source"):
        model(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long))


# ---------------------------------------------------------------- decoding and scoring


@pytest.mark.parametrize("make", [lambda: seq2seq.GRUSeq2Seq(attention=False),
                                  lambda: seq2seq.GRUSeq2Seq(attention=True), seq2seq.TransformerSeq2Seq])
def test_greedy_decoding_is_the_argmax_of_its_own_teacher_forced_pass(make):
    """Feeding the greedy output back as the decoder input reproduces it position by position."""
    torch.manual_seed(1)
    model = make().eval()
    source = torch.randint(0, 10, (4, 9))
    written = seq2seq.greedy_decode(model, source, 9)
    assert written.shape == (4, 9) and written.dtype == torch.long
    with torch.no_grad():
        again = model(source, seq2seq.shift_right(written, model.start)).argmax(-1)
    assert torch.equal(again, written)


class _Copier(nn.Module):
    """Writes back its source perfectly: logits one-hot on source symbol t at output position t."""

    start = tasks.START

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # evaluate_copy reads the device from a parameter

    def encode(self, source):
        return source

    def decode(self, memory, written):
        return nn.functional.one_hot(memory[:, : written.shape[1]], tasks.COPY_SYMBOLS).float()


def test_evaluate_copy_scores_a_perfect_copier_and_its_reversal():
    copy_report = seq2seq.evaluate_copy(_Copier(), _small_task())
    assert copy_report.sequence_accuracy == {4: 1.0, 8: 1.0} == copy_report.token_accuracy
    assert copy_report.mean_sequence_accuracy == 1.0
    reverse_report = seq2seq.evaluate_copy(_Copier(), _small_task(reverse=True))
    assert reverse_report.sequence_accuracy[8] < 0.1  # a palindrome now and then at most
    assert 0.0 < reverse_report.token_accuracy[8] < 0.3  # about 1 in 10 by chance
    with pytest.raises(TypeError, match="task"):
        seq2seq.evaluate_copy(_Copier(), tasks.make_copy_data(4, num_train=4, num_test=4))


def test_share_on_diagonal():
    assert seq2seq.share_on_diagonal(torch.eye(5)[None].repeat(2, 1, 1)) == 1.0
    weights = torch.full((3, 4), 0.25)
    assert seq2seq.share_on_diagonal(weights) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="weights"):
        seq2seq.share_on_diagonal(torch.ones(5, 3))


# ---------------------------------------------------------------- training


def test_train_copy_learns_and_is_deterministic():
    task = _small_task()
    config = training.TrainConfig(steps=40, eval_every=20)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = seq2seq.GRUSeq2Seq(attention=True, embed_dim=16, hidden_size=16)
        runs.append(seq2seq.train_copy(model, task, config, warmup=5, seed=0, device="cpu"))
    (first, report), (second, _) = runs
    assert first.losses == second.losses
    assert len(first.losses) == 40 and first.eval_steps == [20, 40]
    assert sum(first.losses[-5:]) < sum(first.losses[:5])
    assert first.test_accuracy[-1] == report.mean_sequence_accuracy


def test_train_draws_batches_as_it_goes_schedules_the_rate_and_scores():
    model = nn.Linear(3, 2)
    drawn, rates = [], []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def batches():
        while True:
            drawn.append(len(drawn) + 1)
            yield torch.randn(4, 3), torch.zeros(4, dtype=torch.long)

    class Rates(training.Callback):
        def on_step_end(self, state):
            rates.append(state.optimizer.param_groups[0]["lr"])

    schedule = training.LearningRateSchedule(training.warmup_cosine(2, 6))
    result = training.train(
        model, batches(), training.TrainConfig(steps=6, eval_every=3, lr=0.1, optimizer="sgd"),
        device="cpu", callbacks=[schedule, Rates()], optimizer=optimizer, score=lambda m: 0.5,
    )
    assert drawn == [1, 2, 3, 4, 5, 6]
    assert result.eval_steps == [3, 6] and result.test_accuracy == [0.5, 0.5]
    factor = training.warmup_cosine(2, 6)
    assert rates == pytest.approx([0.1 * factor(step) for step in range(1, 7)])
    assert rates[1] == pytest.approx(0.1) and rates[-1] == pytest.approx(0.0)


def test_train_passes_a_tuple_of_inputs_as_separate_arguments():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, a, b):
            return self.linear(a + b)

    def batches():
        while True:
            yield (torch.randn(4, 3), torch.randn(4, 3)), torch.zeros(4, dtype=torch.long)

    seen = training.train(Two(), batches(), training.TrainConfig(steps=2, eval_every=2), device="cpu",
                          score=lambda m: 1.0)
    assert len(seen.losses) == 2 and all(math.isfinite(x) for x in seen.losses)


def test_train_misuse_is_reported():
    model = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="data"):
        training.train(model, None)
    with pytest.raises(TypeError, match="score: required"):
        training.train(model, iter([]))  # batches but no score: nothing to test on
    with pytest.raises(TypeError, match="factor"):
        training.LearningRateSchedule(0.5)


def test_warmup_cosine_rises_then_falls_to_zero():
    factor = training.warmup_cosine(15, 300)
    values = [factor(step) for step in range(1, 301)]
    assert values[0] == pytest.approx(1 / 15) and values[14] == 1.0 and values[-1] == pytest.approx(0.0)
    assert all(a < b for a, b in pairwise(values[:15]))
    assert all(a >= b for a, b in pairwise(values[14:]))
    with pytest.raises(ValueError, match="warmup"):
        training.warmup_cosine(10, 10)


# ---------------------------------------------------------------- the recorded variants


# Chapter 6's reading of the sinusoidal variant: it copies sequences of up to 20 symbols and slips
# at 40. A retrained run lands on other digits on another processor (0.17 instead of the recorded
# 0.242 at n = 40 on an AMD EPYC), so what is checked again is this claim, with margins, on every
# recorded seed and on a fresh run here and under another processor's code paths.
SINUSOIDAL = ("copy", "transformer", "sinusoidal")
COPIES_UP_TO_20 = 0.95  # lowest sequence accuracy at n = 5, 10, 20 (recorded seeds: 0.984 and up)
SLIPS_AT_40 = 0.5  # highest sequence accuracy at n = 40 (recorded seeds: 0.242 and below)


def _holds_the_sinusoidal_claim(run: dict) -> bool:
    accuracy = run["sequence_accuracy"]
    return min(accuracy[n] for n in ("5", "10", "20")) >= COPIES_UP_TO_20 and accuracy["40"] < SLIPS_AT_40


def test_every_recorded_seed_of_the_sinusoidal_variant_holds_the_claim():
    record = json.loads(RECORD.read_text())
    runs = [r for r in record["runs"] if (r["task"], r["model"], r["positions"]) == SINUSOIDAL]
    assert len(runs) >= 3 and all(_holds_the_sinusoidal_claim(r) for r in runs), runs
    assert record["recorded"]["machine"] and record["recorded"]["torch"]  # where the digits came from


_RETRAIN = """
import json
from book_tools.seq2seq_variants import VARIANTS, run
(build,) = [v[-1] for v in VARIANTS if tuple(v[:3]) == {variant!r}]
print(json.dumps(run({variant!r}[0], build, seed=0)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["this processor", "another processor's code paths"])
def test_the_sinusoidal_variant_retrained_holds_the_claim(cpu, other_cpu_env):
    """book_tools.seq2seq_variants' run of seed 0, retrained in a fresh process. The other
    processor is tests/other_cpu.env with MKL on its generic path (MKL_CBWR=COMPATIBLE, slow, fine
    for one small run): on the development machine (Intel Xeon, AVX-512, AMX) that gave 0.168 at
    n = 40, as the AMD EPYC's 0.17, where the AVX2 settings alone gave 0.24 (recorded: 0.242)."""
    import os
    import subprocess
    import sys

    other = {**other_cpu_env, "MKL_CBWR": "COMPATIBLE"}
    env = dict(os.environ, **(other if cpu.startswith("another") else {}))
    result = subprocess.run([sys.executable, "-c", _RETRAIN.format(variant=SINUSOIDAL)], env=env,
                            capture_output=True, text=True, timeout=600, check=True)
    measured = json.loads(result.stdout.splitlines()[-1])
    assert _holds_the_sinusoidal_claim(measured), measured


def test_recorded_variants_cover_every_variant_and_seed():
    record = json.loads(RECORD.read_text())
    assert record["recipe"]["steps"] == seq2seq.COPY_TRAINING.steps
    assert record["recipe"]["test_lengths"] == list(tasks.CopyTask().test_lengths)
    keys = {(r["task"], r["model"], r["positions"], r["position_init_std"]) for r in record["runs"]}
    assert keys == {variant[:4] for variant in seq2seq_variants.VARIANTS}  # what the tool runs today
    seeds = {r["seed"] for r in record["runs"]}
    assert len(record["runs"]) == len(keys) * len(seeds) and len(seeds) >= 3
    for r in record["runs"]:
        for key in ("sequence_accuracy", "token_accuracy"):
            assert set(r[key]) == {"5", "10", "20", "40"}
            assert all(0.0 <= value <= 1.0 for value in r[key].values())


def test_the_variants_script_records_the_machine_and_what_it_ran_on(tmp_path, monkeypatch):
    """book_tools.seq2seq_variants' record names the CPU, the kernels torch picked and the versions
    (its runs are replaced by a stub: the real ones take minutes)."""
    from book_tools import seq2seq_variants

    scores = {str(n): 0.5 for n in tasks.CopyTask().test_lengths}
    monkeypatch.setattr(seq2seq_variants, "run", lambda *args, **kwargs: {
        "sequence_accuracy": scores, "token_accuracy": scores})
    out = tmp_path / "variants.json"
    assert seq2seq_variants.main(["--seeds", "0", "--out", str(out)]) == 0
    recorded = json.loads(out.read_text())["recorded"]
    assert recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert recorded["torch"] == torch.__version__ and recorded["python"].count(".") == 2
    assert "cores" in recorded["machine"]
