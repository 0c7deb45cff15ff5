"""The pieces of a multi-process run under ``torchrun``: where a process sits, its process group,
its share of each batch, the DDP wrapper and the mean over processes.

``torchrun --nproc_per_node=N -m transformer_course ...`` starts N copies of the command line
(:mod:`~transformer_course.cli`), each with RANK, LOCAL_RANK and WORLD_SIZE in its environment.
Each one reads them (:meth:`Launch.from_env`), joins the process group over the loopback
interface (:func:`join_process_group`: gloo on the CPU, NCCL on GPUs, one GPU per process) and
trains with :func:`~transformer_course.training.train` and the callback :class:`DataParallel`,
which plugs in three pieces: :func:`shard` (this process's slice of each global batch),
:func:`data_parallel` (the ``DistributedDataParallel`` wrapper) and :func:`mean_over_processes`
(the loss it records).

Why N processes give the single-process result:

- **The same global batch everywhere.** Every process builds the same data (a function of the
  seed) and the same :class:`~transformer_course.training.MiniBatches`, so every process draws
  the same B indices at every step; :func:`shard` gives process r the r-th contiguous slice.
- **Averaged gradients.** Each process backpropagates the mean loss of its slice; DDP averages
  the gradients over the processes during the backward pass. With equal slices, the average of
  the slice means is the mean over the global batch, so every process holds the gradient that one
  process would compute on the whole batch (up to the order of float additions), and takes the
  same clipped optimizer step. A run on N processes is a run on one process, N times as wide.
- **One seed, one run.** The weights start from ``torch.manual_seed(seed)`` on every process (and
  DDP copies rank 0's weights to the others when it wraps the model).

Legend: B global batch, W processes (the world size), r rank.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import _checks
from .training import Callback, TrainState

__all__ = [
    "Launch",
    "join_process_group",
    "leave_process_group",
    "shard",
    "data_parallel",
    "mean_over_processes",
    "DataParallel",
]


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the run, read from the environment that ``torchrun`` sets.

    Examples:
        >>> Launch.from_env({})  # not launched by torchrun: one process
        Launch(rank=0, local_rank=0, world_size=1, distributed=False)
        >>> Launch.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}).is_main
        False
    """

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


def join_process_group(launch: Launch, device: torch.device) -> str:
    """Join torchrun's process group over the loopback interface; return the backend's name.

    The backend is NCCL for a CUDA ``device`` (which becomes this process's current GPU) and
    gloo otherwise. A ``MASTER_ADDR`` other than a loopback address is refused with a
    ValueError: the trainer runs on one machine and opens no port beyond it.
    """
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


def leave_process_group() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()


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
    _checks.positive_int(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank: expected an int in [0, {world_size}), got {rank!r}")
    if len(batch) % world_size:
        raise ValueError(
            f"batch: expected a global batch divisible by world_size={world_size}, got {len(batch)} rows"
        )
    per_rank = len(batch) // world_size
    return batch[rank * per_rank : (rank + 1) * per_rank]  # (B, ...) -> (B / W, ...)


def data_parallel(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``model`` (already on ``device``) wrapped in ``DistributedDataParallel``.

    The wrapper copies rank 0's weights to every process, then averages the gradients over the
    processes during each backward pass. Save and score the model itself, not the wrapper,
    whose parameter names carry a ``module.`` prefix.
    """
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_processes(value: torch.Tensor) -> float:
    """The mean of a 0-d tensor over all processes of the group, as a Python float."""
    total = value.detach().clone()
    dist.all_reduce(total)  # sum over the processes
    return total.item() / dist.get_world_size()


class DataParallel(Callback):
    """The training callback of a multi-process run: this process trains on its slice of every
    global batch (:func:`shard`), through the DDP wrapper (:func:`data_parallel`), and records
    the loss averaged over the processes (:func:`mean_over_processes`), so that every process
    sees the same losses and stops at the same step if one diverges.

    Args:
        launch: where this process sits (its rank and the world size).
        device: this process's device (the model is on it when training starts).
    """

    def __init__(self, launch: Launch, device: torch.device) -> None:
        if not isinstance(launch, Launch):
            raise TypeError(f"launch: expected a distributed.Launch, got {type(launch).__name__}")
        self.launch, self.device = launch, device

    def on_train_start(self, state: TrainState) -> None:
        state.forward = data_parallel(state.model, self.device)
        state.loss_value = mean_over_processes
        state.batches = self._slices(state.batches)

    def _slices(self, batches: Iterator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's rows of every global batch: (B, ...) -> (B / W, ...)."""
        rank, world_size = self.launch.rank, self.launch.world_size
        for inputs, targets in batches:
            yield shard(inputs, rank, world_size), shard(targets, rank, world_size)
