"""cli, distributed, checkpoint: the command-line trainer ``python -m transformer_course``, alone and
under torchrun, with its checkpoints."""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from transformer_course import checkpoint, cli, distance_grid, distributed, models, tasks, training

# A model and data set small enough that a run of a few steps takes a fraction of a second.
TINY = [
    "--distance", "5", "--num-train", "256", "--num-test", "64", "--batch-size", "32",
    "--d-model", "16", "--num-heads", "2", "--num-layers", "2", "--device", "cpu", "--no-progress",
]
TOLERANCE = 1e-5  # 1 process vs 2: the same sums, added in another order


def _main(*options: str) -> int:
    return cli.main([*TINY, *options])


def _train(tmp_path, name: str, *options: str) -> dict:
    """Run the CLI in this process with ``options``; return its JSON log."""
    log = tmp_path / f"{name}.json"
    assert _main(*options, "--log-json", str(log)) == 0
    return json.loads(log.read_text())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(tmp_path, nproc: int, *options: str) -> subprocess.CompletedProcess:
    """Launch the CLI as torchrun does it from a shell, on the loopback interface."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        "-m", "transformer_course", *TINY, *options,
    ]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _max_difference(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_one_process_is_the_book_training_loop(tmp_path, capsys):
    log = _train(tmp_path, "cli", "--steps", "8")
    out = capsys.readouterr().out
    printed = re.findall(r"^test accuracy: ([0-9.]+) \(64 sequences\)$", out, flags=re.MULTILINE)
    assert printed == [f"{log['test_accuracy']:.4f}"]

    # The same run through training.train: same data, initial weights and batches, so the same numbers.
    data = tasks.RecallTask(5, num_train=256, num_test=64, seed=0).make()
    torch.manual_seed(0)
    model = models.EncoderClassifier(d_model=16, num_heads=2, num_layers=2, d_ff=64)
    config = training.TrainConfig(steps=8, batch_size=32, eval_every=8)
    reference = training.train(model, data, config, seed=0, device="cpu")
    assert log["losses"] == reference.losses
    assert log["grad_norms"] == reference.grad_norms
    assert log["test_accuracy"] == reference.final_accuracy
    assert (log["world_size"], log["first_step"], log["last_step"]) == (1, 1, 8)


@pytest.mark.slow
def test_two_processes_give_the_one_process_run_and_their_checkpoint_resumes_anywhere(tmp_path):
    done = _torchrun(tmp_path, 2, "--steps", "4", "--log-json", "two.json", "--checkpoint", "two.safetensors")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes (gloo) on cpu, global batch 32 = 2 x 16" in done.stdout
    assert done.stdout.count("test accuracy:") == 1  # only rank 0 prints
    two = json.loads((tmp_path / "two.json").read_text())
    one = _train(tmp_path, "one", "--steps", "6", "--checkpoint", str(tmp_path / "one.safetensors"))
    assert two["world_size"] == 2 and len(two["losses"]) == 4
    assert _max_difference(two["losses"], one["losses"][:4]) <= TOLERANCE
    assert _max_difference(two["grad_norms"], one["grad_norms"][:4]) <= TOLERANCE

    # The checkpoint of 2 processes, continued by 1: the global batches are the same.
    resumed = _train(tmp_path, "resumed", "--steps", "6", "--checkpoint", str(tmp_path / "two.safetensors"),
                     "--resume")
    assert (resumed["first_step"], resumed["last_step"]) == (5, 6)
    assert resumed["losses"][:4] == two["losses"]  # the history travels in the checkpoint
    assert _max_difference(resumed["losses"], one["losses"]) <= TOLERANCE
    ours, reference = load_file(tmp_path / "two.safetensors"), load_file(tmp_path / "one.safetensors")
    for name, value in reference.items():
        # A key bias shifts every score of a query by the same amount, which softmax ignores: its
        # true gradient is 0, so what it gets is rounding noise, which Adam rescales to lr-sized
        # steps that differ between runs. Every other weight follows its gradient.
        if name.startswith("model.") and not name.endswith("k_proj.bias"):
            torch.testing.assert_close(ours[name], value, rtol=0, atol=1e-4, msg=name)


def test_an_interrupted_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    whole = _train(tmp_path, "whole", "--steps", "6", "--checkpoint", str(tmp_path / "whole.safetensors"))

    class Interrupted(Exception):
        pass

    save = checkpoint.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise Interrupted  # as if the machine went down just after the checkpoint of step 3

    part = str(tmp_path / "part.safetensors")
    options = ("--steps", "6", "--checkpoint", part, "--checkpoint-every", "3")
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        _main(*options)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    with safe_open(part, framework="pt") as file:
        assert file.metadata()["format"] == checkpoint.CHECKPOINT_FORMAT
        assert json.loads(file.metadata()["state"])["step"] == 3
    resumed = _train(tmp_path, "resumed", *options, "--resume")

    assert (resumed["first_step"], resumed["last_step"]) == (4, 6)
    assert resumed["losses"] == whole["losses"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    ours, reference = load_file(part), load_file(tmp_path / "whole.safetensors")
    assert ours.keys() == reference.keys()
    assert any(name.startswith("optimizer.") for name in ours)
    for name, value in reference.items():  # weights, Adam's moments, batch generator, history
        assert torch.equal(ours[name], value), name

    # Resuming a finished run takes no step and changes nothing.
    again = _train(tmp_path, "again", *options, "--resume")
    assert (again["first_step"], again["last_step"], again["losses"]) == (7, 6, whole["losses"])
    assert torch.equal(load_file(part)["model.readout.weight"], reference["model.readout.weight"])


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, capsys):
    path = str(tmp_path / "run.safetensors")
    assert _main("--steps", "2", "--checkpoint", path) == 0
    with pytest.raises(SystemExit) as exit_info:
        _main("--steps", "4", "--checkpoint", path, "--resume", "--lr", "0.01")
    assert exit_info.value.code == 2
    assert "lr=0.003 (now 0.01)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--num-heads", "3"], "--d-model 16 must be divisible by --num-heads 3"),
        (["--heads", "2"], "unrecognized arguments: --heads 2"),
        (["--precision", "fp16"], "--precision fp16 needs CUDA"),
        (["--resume"], "--resume need --checkpoint PATH"),
        (["--resume", "--checkpoint", "absent.safetensors"], "--resume: no checkpoint at"),
        (["--lr", "-1"], "argument --lr: expected a positive number, got '-1'"),
        (["--steps", "0"], "argument --steps: expected a positive int, got '0'"),
        (["--batch-size", "512"], "--batch-size 512 is larger than --num-train 256"),
        (["--distance", "1"], "distance 1 allows only 64 distinct sequences"),
        (["--task", "copy"], "argument --task: invalid choice: 'copy'"),
        pytest.param(["--device", "cuda"], "--device cuda: no CUDA device is available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")),
    ],
)
def test_bad_options_get_a_message_naming_them(options, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main("--steps", "1", *options)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_under_torchrun_the_global_batch_must_split_evenly_over_loopback(monkeypatch, capsys):
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "3")):
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        _main("--steps", "1")
    assert "--batch-size 32 is the global batch: it must be divisible by the 3 processes" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("MASTER_ADDR", "10.1.2.3")
    with pytest.raises(SystemExit):
        _main("--steps", "1", "--batch-size", "48")
    assert "MASTER_ADDR: expected a loopback address" in capsys.readouterr().err
    assert not torch.distributed.is_initialized()


def test_a_diverging_run_returns_1(capsys):
    assert _main("--steps", "5", "--optimizer", "sgd", "--lr", "1e30", "--clip-norm", "0") == 1
    assert "diverged at step" in capsys.readouterr().err


def test_bf16_on_the_cpu_trains_in_mixed_precision(tmp_path):
    full = _train(tmp_path, "fp32", "--steps", "4")
    mixed = _train(tmp_path, "bf16", "--steps", "4", "--precision", "bf16")
    difference = _max_difference(mixed["losses"], full["losses"])
    assert 0 < difference < 0.05  # bfloat16 keeps 8 bits of mantissa: close, not equal


def test_shard_gives_equal_contiguous_parts():
    batch = torch.arange(12).view(6, 2)  # (B, 2)
    parts = [distributed.shard(batch, rank, 3) for rank in range(3)]
    assert all(part.shape == (2, 2) for part in parts)
    assert torch.equal(torch.cat(parts), batch)
    with pytest.raises(ValueError, match="divisible by world_size=4, got 6 rows"):
        distributed.shard(batch, 0, 4)
    with pytest.raises(ValueError, match=r"rank: expected an int in \[0, 3\), got 3"):
        distributed.shard(batch, 3, 3)


def test_launch_reads_torchruns_environment():
    assert distributed.Launch.from_env({}) == distributed.Launch()
    launch = distributed.Launch.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (launch.rank, launch.local_rank, launch.world_size, launch.distributed) == (3, 1, 4, True)
    assert not launch.is_main
    with pytest.raises(ValueError, match="found only RANK"):
        distributed.Launch.from_env({"RANK": "0"})
    with pytest.raises(ValueError, match="RANK < WORLD_SIZE"):
        distributed.Launch.from_env({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})


@pytest.mark.gpu
def test_cuda_runs_in_every_precision(tmp_path):
    cpu = _train(tmp_path, "cpu", "--steps", "4")
    cuda = _train(tmp_path, "cuda", "--steps", "4", "--device", "cuda")
    assert _max_difference(cuda["losses"], cpu["losses"]) <= 1e-4  # TF32 off: true float32
    for precision in ("bf16", "fp16"):  # fp16 with a GradScaler
        mixed = _train(tmp_path, precision, "--steps", "4", "--device", "cuda", "--precision", precision)
        assert all(map(math.isfinite, mixed["losses"])), precision
        # Only the first loss is compared: the scaler may skip a step while it finds its scale.
        assert abs(mixed["losses"][0] - cpu["losses"][0]) < 0.05, precision


def test_the_model_options_default_to_the_recall_encoder_config():
    args = cli.build_parser().parse_args([])
    book = models.RecallEncoderConfig()
    assert (args.d_model, args.num_heads, args.num_layers) == (book.d_model, book.num_heads, book.num_layers)
    assert cli.run_settings(args)["d_ff"] == book.resolved_d_ff
    assert args.steps == distance_grid.STEPS["encoder"]


@pytest.mark.slow
def test_python_dash_m_transformer_course_prints_its_help(tmp_path):
    done = subprocess.run([sys.executable, "-m", "transformer_course", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: python -m transformer_course")
    assert "--num-heads" in done.stdout and "--num-layers" in done.stdout
    assert done.stderr == ""  # no warning either


def test_the_console_script_is_the_cli():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = Path(__file__).resolve().parents[1] / "code" / "pyproject.toml"
    target = tomllib.loads(pyproject.read_text())["project"]["scripts"]["transformer-course"]
    module_name, _, function = target.partition(":")
    assert getattr(importlib.import_module(module_name), function) is cli.main


def test_training_imports_neither_the_command_line_nor_processes_nor_files():
    # The whole package's import graph is checked for cycles in test_package.py; this is the
    # direction of this part: cli uses training, distributed and checkpoint, never the reverse.
    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        return {
            alias.name if node.module is None else node.module.split(".")[0]
            for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names
        }

    assert imported(training).isdisjoint({"cli", "distributed", "checkpoint"})
    assert {"training", "distributed", "checkpoint", "models"} <= imported(cli)
