"""Train the encoder from the command line, in one process or in several with ``torchrun``.

``python -m transformer_course.train`` trains :class:`~transformer_course.train.EncoderClassifier`
on the long-range recall task of :mod:`~transformer_course.tasks`, with the loop of
:func:`~transformer_course.train.train`. Launched by ``torchrun``, every process trains the same
model on its share of each batch, wrapped in ``torch.nn.parallel.DistributedDataParallel``
(gloo on the CPU, NCCL on GPUs, one GPU per process). The commands::

    # one process: the CPU, or the GPU when there is one (--device cpu / cuda to choose)
    python -m transformer_course.train --distance 50 --steps 100

    # two processes on the CPU (gloo): each step's global batch of 64 is split 32 + 32
    torchrun --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29500 \\
        -m transformer_course.train --distance 50 --steps 100 --device cpu

    # one process per GPU of this machine (NCCL), in bfloat16 mixed precision
    torchrun --nproc_per_node=gpu --master_addr=127.0.0.1 --master_port=29500 \\
        -m transformer_course.train --distance 50 --steps 100 --device cuda --precision bf16

    # save a checkpoint every 50 steps; after an interruption, the same command plus --resume
    python -m transformer_course.train --steps 400 --checkpoint run.safetensors --checkpoint-every 50
    python -m transformer_course.train --steps 400 --checkpoint run.safetensors --checkpoint-every 50 --resume

``python -m transformer_course.train --help`` lists every option. ``--log-json PATH`` writes the
loss of every step and the final test accuracy to a JSON file.

Why N processes give the single-process result:

- **The same global batch everywhere.** Every process builds the same data (a function of
  ``--seed``) and the same :class:`GlobalBatches`, so every process draws the same ``--batch-size``
  indices at every step; :func:`shard` gives process r the r-th contiguous slice.
- **Averaged gradients.** Each process backpropagates the mean loss of its slice; DDP averages
  the gradients over the processes during the backward pass. With equal slices, the average of
  the slice means is the mean over the global batch, so every process holds the gradient that one
  process would compute on the whole batch (up to the order of float additions), and takes the
  same clipped optimizer step. A run on N processes is a run on one process, N times as wide.
- **One seed, one run.** The weights start from ``torch.manual_seed(seed)`` on every process (and
  DDP copies rank 0's weights to the others when it wraps the model).

Checkpoints are one ``safetensors`` file, written by rank 0 only and read by every process; the
file is written beside its final name and renamed, so an interruption never leaves half a file.
It holds tensors ``model.<name>`` (the weights, as in ``model.state_dict()``),
``optimizer.<i>.<name>`` (the optimizer's per-parameter state, e.g. Adam's moments and step count),
``batches.generator`` and ``batches.order`` (the state of :class:`GlobalBatches`: its generator
and the current pass's order) and ``history.losses`` / ``history.grad_norms`` (every step so
far, float64); its header's metadata holds a JSON string ``state`` with the step, the settings
that define the run, the optimizer's hyperparameters, the batch position and the fp16 gradient
scaler. That is all a resumed run needs to continue exactly: the data are re-made from the seed,
and the model has no dropout, so no other random number is drawn after initialisation. A run of N
steps interrupted after step k and resumed ends with the same weights, bit for bit on the CPU, as
the uninterrupted run. A checkpoint does not depend on the number of processes: a run saved by
2 processes can be resumed by 1 or 4, since the global batch is the same.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import train as _train_module
from .attention import _check_positive_int
from .runtime import setup
from .tasks import RecallTask, SplitData

__all__ = [
    "TASKS",
    "PRECISIONS",
    "Launch",
    "GlobalBatches",
    "shard",
    "save_checkpoint",
    "load_checkpoint",
    "build_parser",
    "main",
]

TASKS = ("recall", "recall-shared")  # recall-shared: the distractors are answer symbols too
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtypes
CHECKPOINT_FORMAT = "transformer_course.distributed/1"  # the "format" entry of a checkpoint's metadata

# The settings a resumed run must share with the run that wrote its checkpoint: together with the
# step they fix every number of the run. The step budget, the device and the number of processes
# may change.
_RUN_KEYS = (
    "task", "distance", "num_train", "num_test", "d_model", "heads", "layers", "d_ff",
    "batch_size", "lr", "clip_norm", "optimizer", "seed", "precision",
)


# ---------------------------------------------------------------- where this process runs


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the run, read from the environment that ``torchrun`` sets."""

    rank: int = 0  # RANK: this process's index among all of them; rank 0 prints and saves
    local_rank: int = 0  # LOCAL_RANK: its index on this machine, which picks its GPU
    world_size: int = 1  # WORLD_SIZE: the number of processes W
    distributed: bool = False  # launched by torchrun: join a process group and wrap the model in DDP

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Launch:
        """Read RANK, LOCAL_RANK and WORLD_SIZE (all three, as torchrun sets them) or none."""
        environ = os.environ if environ is None else environ
        names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
        present = [name for name in names if name in environ]
        if not present:
            return cls()
        if len(present) < len(names):
            raise ValueError(
                f"environment: torchrun sets {', '.join(names)}; found only {', '.join(present)}"
            )
        values = {}
        for name in names:
            try:
                values[name] = int(environ[name])
            except ValueError:
                raise ValueError(f"environment: {name} must be an int, got {environ[name]!r}") from None
        rank, local_rank, world_size = values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"]
        if world_size < 1 or not 0 <= rank < world_size or not 0 <= local_rank <= rank:
            raise ValueError(
                f"environment: expected 0 <= LOCAL_RANK <= RANK < WORLD_SIZE, got LOCAL_RANK="
                f"{local_rank}, RANK={rank}, WORLD_SIZE={world_size}"
            )
        return cls(rank, local_rank, world_size, distributed=True)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints, saves checkpoints and writes the log."""
        return self.rank == 0


def _is_loopback(address: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _join_process_group(launch: Launch, device: torch.device) -> str:
    """Join torchrun's process group over the loopback interface; return the backend's name."""
    address = os.environ.get("MASTER_ADDR", "")
    if not _is_loopback(address):
        raise ValueError(
            f"MASTER_ADDR: expected a loopback address (this trainer runs on one machine and opens "
            f"no port beyond it), got {address!r}: launch with torchrun --master_addr=127.0.0.1"
        )
    if sys.platform.startswith("linux"):
        # Gloo and NCCL otherwise pick the interface the host name resolves to, and listen there.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts, so that it binds this process's GPU
    dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size)
    return backend


# ---------------------------------------------------------------- the same batch on every rank


class GlobalBatches(_train_module.MiniBatches):
    """The mini-batches of :func:`~transformer_course.train.train` (a
    :class:`~transformer_course.train.MiniBatches`), with the global batch B at most N.

    Every process builds the same iterator, so every process draws the same global batch at
    every step; :func:`shard` then gives each its part. B > N is refused: the batch would then
    hold N rows, not the B that ``--batch-size`` split across the processes.

    Examples:
        >>> batches = GlobalBatches(num_examples=6, batch_size=3, seed=0)
        >>> first, second, third = next(batches), next(batches), next(batches)
        >>> sorted(torch.cat([first, second]).tolist())  # one pass: every example once
        [0, 1, 2, 3, 4, 5]
        >>> again = GlobalBatches(6, 3, seed=0)
        >>> again.load_state_dict(batches.state_dict())  # continue where the first one stopped
        >>> torch.equal(next(again), next(batches))
        True
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int) -> None:
        super().__init__(num_examples, batch_size, seed)
        if batch_size > num_examples:
            raise ValueError(
                f"batch_size: expected at most num_examples={num_examples}, got {batch_size}"
            )


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Process ``rank``'s contiguous slice of a global batch: rows r B/W to (r + 1) B/W.

    Raises a ValueError unless B is divisible by W, since unequal slices would weight the
    examples of the smaller ones more in the averaged gradient.

    Shape:
        batch (B, ...) -> (B / W, ...)

    Examples:
        >>> shard(torch.arange(8), rank=1, world_size=4)
        tensor([2, 3])
    """
    _check_positive_int(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank: expected an int in [0, {world_size}), got {rank!r}")
    if len(batch) % world_size:
        raise ValueError(
            f"batch: expected a global batch divisible by world_size={world_size}, got {len(batch)} rows"
        )
    per_rank = len(batch) // world_size
    return batch[rank * per_rank : (rank + 1) * per_rank]  # (B, ...) -> (B / W, ...)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: GlobalBatches,
    step: int,
    history: Mapping[str, Sequence[float]],
    run: Mapping[str, object],
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write everything a run needs to continue after ``step`` to one safetensors file.

    The layout is described in this module's docstring. The file is written next to ``path``
    and renamed onto it, so ``path`` always holds a whole checkpoint.

    Args:
        path: the ``.safetensors`` file to write (its folder is created).
        model: the bare model (not the DDP wrapper, whose names carry a ``module.`` prefix).
        optimizer: its optimizer.
        batches: the :class:`GlobalBatches` the run draws from.
        step: the number of optimizer steps taken.
        history: ``{"losses": [...], "grad_norms": [...]}``, one entry per step so far.
        run: the settings that define the run (JSON-serialisable), checked on resume.
        scaler: the fp16 gradient scaler, if any.
    """
    tensors = {f"model.{name}": value.detach() for name, value in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict[str, object]] = {}  # non-tensor per-parameter state, if an optimizer has any
    for index, per_param in optimizer_state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach()
            else:
                scalars.setdefault(str(index), {})[name] = value
    batch_state = batches.state_dict()
    tensors["batches.generator"] = batch_state["generator"]
    tensors["batches.order"] = batch_state["order"]
    for name in ("losses", "grad_norms"):
        tensors[f"history.{name}"] = torch.tensor(list(history[name]), dtype=torch.float64)
    # safetensors stores each tensor by itself: contiguous CPU copies (a clone also breaks any
    # storage sharing between the tensors, which save_file refuses).
    tensors = {name: value.to("cpu", copy=True).contiguous() for name, value in tensors.items()}
    state = {
        "step": step,
        "run": dict(run),
        "batches_position": int(batch_state["position"]),
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
        "scaler": None if scaler is None else scaler.state_dict(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, partial, metadata={"format": CHECKPOINT_FORMAT, "state": json.dumps(state)})
    os.replace(partial, path)  # atomic on one file system


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    batches: GlobalBatches | None = None,
    scaler: torch.amp.GradScaler | None = None,
    run: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Restore a :func:`save_checkpoint` file into ``model`` (and whichever of the rest is given).

    Args:
        path: the checkpoint file.
        model: the bare model; its weights are replaced (on the model's device).
        optimizer, batches, scaler: restored too when given.
        run: if given, the settings of the run that will continue; a ValueError names every
            setting that differs from the checkpoint's.

    Returns:
        ``{"step": int, "run": dict, "losses": list[float], "grad_norms": list[float]}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint: {str(path)!r} is not a checkpoint of this trainer (format "
            f"{metadata.get('format')!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    state = json.loads(metadata["state"])
    if run is not None:
        differ = [f"{key}={state['run'].get(key)!r} (now {run.get(key)!r})"
                  for key in sorted(set(run) | set(state["run"])) if state["run"].get(key) != run.get(key)]
        if differ:
            raise ValueError(
                f"checkpoint: {str(path)!r} belongs to another run; it was written with "
                + ", ".join(differ)
            )
    tensors = load_file(path)
    model.load_state_dict({name[len("model."):]: value for name, value in tensors.items()
                           if name.startswith("model.")})
    if optimizer is not None:
        per_param: dict[int, dict[str, object]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                per_param.setdefault(int(index), {})[key] = value
        for index, values in state["optimizer"]["scalars"].items():
            per_param.setdefault(int(index), {}).update(values)
        # Moves the moments to the parameters' device and dtype itself.
        optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer"]["param_groups"]})
    if batches is not None:
        batches.load_state_dict({"generator": tensors["batches.generator"], "order": tensors["batches.order"],
                                 "position": torch.tensor(state["batches_position"])})
    if scaler is not None:
        if state["scaler"] is None:
            raise ValueError(f"checkpoint: {str(path)!r} has no fp16 gradient scaler to restore")
        scaler.load_state_dict(state["scaler"])
    return {
        "step": state["step"],
        "run": state["run"],
        "losses": tensors["history.losses"].tolist(),
        "grad_norms": tensors["history.grad_norms"].tolist(),
    }


# ---------------------------------------------------------------- the command line


def _argument_type(convert, accept, expected: str):
    """An argparse ``type``: ``convert(text)``, refused with "expected ..." unless ``accept``s it."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _argument_type(int, lambda value: value >= 1, "a positive int")
_non_negative_int = _argument_type(int, lambda value: value >= 0, "an int >= 0")
_positive_float = _argument_type(float, lambda value: math.isfinite(value) and value > 0, "a positive number")


def _non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m transformer_course.train``; defaults are the book's runs."""
    book = _train_module.TrainConfig()  # the defaults of chapters 1 and 5
    parser = argparse.ArgumentParser(
        prog="python -m transformer_course.train",
        description="Train the course's encoder on the long-range recall task, in one process or "
        "in several under torchrun (DistributedDataParallel: gloo on the CPU, NCCL on GPUs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    task = parser.add_argument_group("task")
    task.add_argument("--task", choices=TASKS, default="recall",
                      help="recall: [s, n_1 .. n_d, Q] -> s; recall-shared: the n_i are answer symbols too")
    task.add_argument("--distance", type=_positive_int, default=50, help="d, distractors between s and Q")
    task.add_argument("--num-train", type=_positive_int, default=4096, help="training sequences")
    task.add_argument("--num-test", type=_positive_int, default=1024, help="test sequences")

    model = parser.add_argument_group("model (EncoderClassifier: post-LN encoder, no dropout)")
    model.add_argument("--d-model", type=_positive_int, default=32, help="D, the model width")
    model.add_argument("--heads", type=_positive_int, default=4, help="H, attention heads; D / H each")
    model.add_argument("--layers", type=_positive_int, default=2, help="encoder layers")
    # SUPPRESS: no attribute when absent, so that the help shows "4 D" rather than "None".
    model.add_argument("--d-ff", type=_positive_int, default=argparse.SUPPRESS,
                       help="feed-forward width (default: 4 D)")

    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=_positive_int, default=_train_module.STEPS["encoder"],
                          help="optimizer steps in all (a resumed run continues up to this step)")
    training.add_argument("--batch-size", type=_positive_int, default=book.batch_size,
                          help="global batch per step, split evenly across the processes")
    training.add_argument("--lr", type=_positive_float, default=book.lr, help="learning rate")
    training.add_argument("--clip-norm", type=_non_negative_float, default=book.clip_norm,
                          help="clip the gradient to this norm; 0: no clipping")
    training.add_argument("--optimizer", choices=("adam", "sgd"), default=book.optimizer)
    training.add_argument("--seed", type=_non_negative_int, default=0,
                          help="seeds the data, the initial weights and the batch order")

    where = parser.add_argument_group("device and precision")
    where.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="auto: CUDA when present; under torchrun each process takes cuda:LOCAL_RANK")
    where.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                       help="bf16/fp16: torch.autocast mixed precision (fp16: CUDA only, with a GradScaler)")
    where.add_argument("--threads", type=_positive_int, default=1,
                       help="torch CPU threads per process")

    saving = parser.add_argument_group("checkpoints and logs")
    saving.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                        help="safetensors file written at the end (and every --checkpoint-every steps)")
    saving.add_argument("--checkpoint-every", type=_non_negative_int, default=0, metavar="N",
                        help="also save every N steps; 0: only at the end")
    saving.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    saving.add_argument("--log-json", type=Path, default=None, metavar="PATH",
                        help="write every step's loss and the test accuracy to this JSON file")
    saving.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, launch: Launch) -> torch.device:
    """Reject inconsistent options with a message naming them; return this process's device."""
    if args.d_model % args.heads:
        parser.error(f"--d-model {args.d_model} must be divisible by --heads {args.heads} "
                     f"(each head gets D / H dimensions)")
    if args.batch_size % launch.world_size:
        parser.error(f"--batch-size {args.batch_size} is the global batch: it must be divisible by "
                     f"the {launch.world_size} processes (WORLD_SIZE), so that each gets an equal share")
    if args.batch_size > args.num_train:
        parser.error(f"--batch-size {args.batch_size} is larger than --num-train {args.num_train}")
    if (args.checkpoint_every or args.resume) and args.checkpoint is None:
        parser.error("--checkpoint-every and --resume need --checkpoint PATH")
    if args.resume and not args.checkpoint.is_file():
        parser.error(f"--resume: no checkpoint at --checkpoint {str(args.checkpoint)!r}")
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available (use --device cpu or auto)")
        if launch.local_rank >= torch.cuda.device_count():
            parser.error(f"--device cuda: this is process {launch.local_rank} of this machine, which has "
                         f"only {torch.cuda.device_count()} GPU(s): give torchrun at most that many")
    if args.precision == "fp16" and name != "cuda":
        parser.error("--precision fp16 needs CUDA (float16 autocast with a gradient scaler); "
                     "on the CPU use --precision bf16 or fp32")
    return torch.device(name, launch.local_rank) if name == "cuda" else torch.device("cpu")


def _run_settings(args: argparse.Namespace) -> dict[str, object]:
    """The settings that define the run (:data:`_RUN_KEYS`), as stored in its checkpoints."""
    settings = {key: getattr(args, key, None) for key in _RUN_KEYS}
    settings["d_ff"] = getattr(args, "d_ff", 4 * args.d_model)
    return settings


def _mean_over_processes(value: torch.Tensor, launch: Launch) -> float:
    """The mean of a 0-d tensor over all processes, as a Python float."""
    if not launch.distributed:
        return value.item()
    total = value.detach().clone()
    dist.all_reduce(total)  # sum over the processes
    return total.item() / launch.world_size


@torch.no_grad()
def _test_accuracy(
    model: nn.Module, data: SplitData, launch: Launch, device: torch.device, autocast
) -> float:
    """Accuracy on the whole test set: each process scores its contiguous part, the counts are summed."""
    model.eval()
    parts = torch.tensor_split(torch.arange(len(data.test_inputs)), launch.world_size)
    index = parts[launch.rank]  # (N_test / W,) this process's test sequences
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(index), 1024):
        rows = index[start : start + 1024]
        with autocast():
            logits = model(data.test_inputs[rows].to(device))  # (b, T) -> (b, C)
        correct += (logits.argmax(-1) == data.test_targets[rows].to(device)).sum()
    if launch.distributed:
        dist.all_reduce(correct)
    model.train()
    return correct.item() / len(data.test_inputs)


def _train_run(parser: argparse.ArgumentParser, args: argparse.Namespace, launch: Launch,
               device: torch.device, backend: str | None) -> int:
    """Build data, model and optimizer, resume if asked, train, save, score; return the exit code."""
    run = _run_settings(args)
    try:
        data = RecallTask(args.distance, args.num_train, args.num_test, seed=args.seed,
                          shared_symbols=args.task == "recall-shared").make()
    except ValueError as error:  # e.g. more sequences asked for than the distance allows
        parser.error(f"--distance / --num-train / --num-test: {error}")
    setup(args.seed, device)  # seeds the initial weights, as run_distance_grid does
    model = _train_module.EncoderClassifier(
        args.d_model, args.heads, args.layers, run["d_ff"], max_len=args.distance + 2
    ).to(device)
    if args.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    # bfloat16 has float32's exponent range; float16 gradients underflow without a scaled loss.
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" else None
    batches = GlobalBatches(args.num_train, args.batch_size, seed=args.seed)
    history: dict[str, list[float]] = {"losses": [], "grad_norms": []}
    first_step = 1
    if args.resume:
        try:
            saved = load_checkpoint(args.checkpoint, model, optimizer, batches, scaler, run=run)
        except ValueError as error:
            parser.error(f"--resume: {error}")
        history = {"losses": saved["losses"], "grad_norms": saved["grad_norms"]}
        first_step = saved["step"] + 1

    # DDP copies rank 0's weights to every process, then averages the gradients in backward().
    wrapped = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
               if launch.distributed else model)
    dtype = PRECISIONS[args.precision]

    def autocast():
        return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

    def save(step: int) -> None:
        if launch.is_main:
            save_checkpoint(args.checkpoint, model, optimizer, batches, step, history, run, scaler)

    per_process = args.batch_size // launch.world_size
    if launch.is_main:
        size = sum(p.numel() for p in model.parameters())
        print(f"{args.task}, distance {args.distance}: encoder D={args.d_model}, {args.heads} heads, "
              f"{args.layers} layer{'s' * (args.layers > 1)}, d_ff={run['d_ff']} ({size:,} parameters)")
        processes = f"{launch.world_size} processes ({backend})" if launch.distributed else "1 process"
        span = (f"steps {first_step}-{args.steps}" if first_step <= args.steps
                else f"no step left to take (the checkpoint is at step {first_step - 1})")
        print(f"{processes} on {device.type}, global batch {args.batch_size} = {launch.world_size} x "
              f"{per_process}, {args.precision}, {span}"
              + (f" (resumed from {args.checkpoint})" if args.resume else ""), flush=True)

    train_inputs, train_targets = data.train_inputs.to(device), data.train_targets.to(device)
    clip = math.inf if args.clip_norm == 0 else args.clip_norm
    diverged = False
    last_step = first_step - 1  # the last optimizer step taken
    wrapped.train()
    start = time.perf_counter()
    with _train_module.tqdm(total=args.steps, initial=first_step - 1, desc="training", leave=False,
                            **_train_module._bar_switch(launch.is_main and not args.no_progress)) as bar:
        for step in range(first_step, args.steps + 1):
            index = shard(next(batches), launch.rank, launch.world_size).to(device)  # (B,) -> (B / W,)
            with autocast():
                logits = wrapped(train_inputs[index])  # (B / W, T) -> (B / W, C)
            # The loss in float32 whatever the precision; DDP averages its gradient over processes.
            loss, _ = _train_module._loss_and_correct(logits.float(), train_targets[index])
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # true gradients, so that clipping sees their real norm
            # The same averaged gradient in every process: the same norm, no communication needed.
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
            history["losses"].append(_mean_over_processes(loss, launch))
            history["grad_norms"].append(grad_norm)
            # An fp16 overflow is the scaler's business (it skips the step and lowers the scale).
            if not math.isfinite(history["losses"][-1]) or (scaler is None and not math.isfinite(grad_norm)):
                diverged = True
                break
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            last_step = step
            bar.update(1)
            bar.set_postfix(loss=f"{history['losses'][-1]:.3f}", refresh=False)
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.steps:
                save(step)
    seconds = time.perf_counter() - start
    if args.checkpoint is not None and not diverged:
        save(last_step)
    accuracy = _test_accuracy(model, data, launch, device, autocast)
    if launch.is_main:
        if diverged:
            print(f"diverged at step {last_step + 1} (loss {history['losses'][-1]}, gradient norm "
                  f"{history['grad_norms'][-1]}): try a smaller --lr", file=sys.stderr)
        elif last_step >= first_step:
            print(f"step {last_step}: loss {history['losses'][-1]:.4f}, {seconds:.1f} s for "
                  f"{last_step - first_step + 1} steps")
        print(f"test accuracy: {accuracy:.4f} ({len(data.test_inputs)} sequences)", flush=True)
        if args.checkpoint is not None and not diverged:
            print(f"checkpoint: {args.checkpoint} (step {last_step})")
        if args.log_json is not None:
            args.log_json.parent.mkdir(parents=True, exist_ok=True)
            args.log_json.write_text(json.dumps({
                "run": run, "world_size": launch.world_size, "device": device.type,
                "first_step": first_step, "last_step": last_step, "diverged": diverged,
                "losses": history["losses"], "grad_norms": history["grad_norms"],
                "test_accuracy": accuracy, "seconds": seconds,
            }, indent=1))
    return 1 if diverged else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv``: the options, default ``sys.argv[1:]``); return the exit code.

    A bad option exits through ``argparse`` (status 2, with a message naming it); a run that
    diverges returns 1, a finished run 0. Under torchrun, every process calls this.

    Examples:
        >>> main(["--distance", "3", "--num-train", "64", "--num-test", "32", "--steps", "2",
        ...       "--batch-size", "32", "--d-model", "8", "--heads", "2", "--layers", "1",
        ...       "--device", "cpu", "--no-progress"])  # doctest: +ELLIPSIS
        recall, distance 3: encoder D=8, 2 heads, 1 layer, d_ff=32 (... parameters)
        ...
        test accuracy: ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        launch = Launch.from_env()
    except ValueError as error:
        parser.error(str(error))
    device = _check_args(parser, args, launch)
    backend = None
    with _train_module._threads(args.threads):
        if launch.distributed:
            try:
                backend = _join_process_group(launch, device)
            except ValueError as error:
                parser.error(str(error))
        try:
            return _train_run(parser, args, launch, device, backend)
        finally:
            if launch.distributed and dist.is_initialized():
                dist.destroy_process_group()
