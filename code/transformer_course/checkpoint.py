"""Checkpoints of a training run: one ``safetensors`` file that lets the run continue exactly.

The file is written beside its final name and renamed onto it, so an interruption never leaves
half a file. It holds the tensors

- ``model.<name>``: the weights, as in ``model.state_dict()``;
- ``optimizer.<i>.<name>``: the optimizer's per-parameter state (e.g. Adam's moments and step
  count) of parameter i;
- ``batches.generator`` and ``batches.order``: the state of the
  :class:`~transformer_course.training.MiniBatches` (its generator and the current pass's order);
- ``history.losses`` and ``history.grad_norms``: every step so far, float64;

and its header's metadata holds ``format`` (:data:`CHECKPOINT_FORMAT`) and a JSON string
``state`` with the step, the settings that define the run, the optimizer's hyperparameters and
non-tensor state, the batch position and the fp16 gradient scaler.

:class:`Checkpoints` is the training callback that writes them as a run goes and continues a
run from one. That is all a resumed run needs: the command line (:mod:`~transformer_course.cli`) re-makes the
data from the seed, and its model has no dropout, so no other random number is drawn after
initialisation. A run of N steps interrupted after step k and resumed ends with the same
weights, bit for bit on the CPU, as the uninterrupted run. A checkpoint does not depend on the
number of processes: a run saved by 2 processes can be resumed by 1 or 4, since every process
draws the same global batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .training import Callback, MiniBatches, TrainState

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "Checkpoints"]

CHECKPOINT_FORMAT = "transformer_course.checkpoint/1"  # the "format" entry of a checkpoint's metadata


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: MiniBatches,
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
        batches: the :class:`~transformer_course.training.MiniBatches` the run draws from.
        step: the number of optimizer steps taken.
        history: ``{"losses": [...], "grad_norms": [...]}``, one entry per step so far.
        run: the settings that define the run (JSON-serialisable), checked on resume.
        scaler: the fp16 gradient scaler, if any.

    Examples:
        >>> import tempfile
        >>> model = nn.Linear(3, 2)
        >>> optimizer = torch.optim.Adam(model.parameters())
        >>> batches = MiniBatches(num_examples=8, batch_size=4, seed=0)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "run.safetensors"
        ...     save_checkpoint(path, model, optimizer, batches, step=0,
        ...                     history={"losses": [], "grad_norms": []}, run={"seed": 0})
        ...     copy = nn.Linear(3, 2)
        ...     saved = load_checkpoint(path, copy, run={"seed": 0})
        >>> saved["step"], torch.equal(copy.weight, model.weight)
        (0, True)
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
    batches: MiniBatches | None = None,
    scaler: torch.amp.GradScaler | None = None,
    run: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Restore a :func:`save_checkpoint` file into ``model`` (and whichever of the rest is given).

    Args:
        path: the checkpoint file.
        model: the bare model; its weights are replaced (on the model's device).
        optimizer, batches, scaler: restored too when given. Build the optimizer on the model
            once the model is on its device: its state is moved to its parameters' device.
        run: if given, the settings of the run that will continue; a ValueError names every
            setting that differs from the checkpoint's.

    Returns:
        ``{"step": int, "run": dict, "losses": list[float], "grad_norms": list[float]}``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file and what is wrong, when it is truncated or corrupt, not a
            checkpoint, of another run, or does not fit the model (another size or architecture),
            the optimizer, the batches or the scaler. The file is checked whole before anything
            is restored, so after this error every object passed in is as it was.

    Examples:
        See :func:`save_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {str(path)!r}")
    # Everything is read and checked before anything is restored: a file that fails a check
    # leaves the model, the optimizer, the batches and the scaler as they were.
    try:
        with safe_open(str(path), framework="pt") as file:  # one read: the header, then every tensor
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except SafetensorError as error:  # a damaged header, or fewer bytes than the header promises
        raise ValueError(f"checkpoint: {str(path)!r} is not a readable safetensors file, truncated or "
                         f"corrupt ({error})") from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint: {str(path)!r} is not a checkpoint of this trainer (format "
            f"{metadata.get('format')!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    state = _read_state(path, metadata.get("state"), tensors)
    if run is not None:
        differ = [f"{key}={state['run'].get(key)!r} (now {run.get(key)!r})"
                  for key in sorted(set(run) | set(state["run"])) if state["run"].get(key) != run.get(key)]
        if differ:
            raise ValueError(
                f"checkpoint: {str(path)!r} belongs to another run; it was written with "
                + ", ".join(differ)
            )
    weights = {name[len("model."):]: value for name, value in tensors.items() if name.startswith("model.")}
    _check_model_shapes(path, weights, model.state_dict())
    if optimizer is not None:
        optimizer_state = _optimizer_state(path, state, tensors, optimizer)
    if scaler is not None and state["scaler"] is None:
        raise ValueError(f"checkpoint: {str(path)!r} has no fp16 gradient scaler to restore")
    if batches is not None and len(tensors["batches.order"]) not in (0, batches.num_examples):
        raise ValueError(
            f"checkpoint: {str(path)!r} was written for {len(tensors['batches.order'])} training examples, "
            f"these batches draw from {batches.num_examples}"
        )

    model.load_state_dict(weights)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)  # moves the moments to the parameters' device and dtype
    if batches is not None:
        batches.load_state_dict({"generator": tensors["batches.generator"], "order": tensors["batches.order"],
                                 "position": torch.tensor(state["batches_position"])})
    if scaler is not None:
        scaler.load_state_dict(state["scaler"])
    return {
        "step": state["step"],
        "run": state["run"],
        "losses": tensors["history.losses"].tolist(),
        "grad_norms": tensors["history.grad_norms"].tolist(),
    }


_STATE_KEYS = ("step", "run", "batches_position", "optimizer", "scaler")  # the metadata's "state" entry
_TENSORS = ("batches.generator", "batches.order", "history.losses", "history.grad_norms")


def _read_state(path: Path, text: str | None, tensors: Mapping[str, torch.Tensor]) -> dict:
    """The checkpoint's JSON state, checked to hold every entry a resume reads."""
    try:
        state = json.loads(text) if text is not None else None
    except json.JSONDecodeError as error:
        raise ValueError(f"checkpoint: {str(path)!r} has a damaged state entry ({error})") from None
    missing = [key for key in _STATE_KEYS if not isinstance(state, dict) or key not in state]
    missing += [name for name in _TENSORS if name not in tensors]
    if missing:
        raise ValueError(
            f"checkpoint: {str(path)!r} lacks {', '.join(missing)}; was it written by save_checkpoint?"
        )
    return state


def _check_model_shapes(path: Path, saved: Mapping[str, torch.Tensor],
                        expected: Mapping[str, torch.Tensor]) -> None:
    """ValueError naming the weights that ``saved`` lacks, adds, or holds at another shape."""
    problems = [f"{name} missing" for name in expected if name not in saved]
    problems += [f"{name} unexpected" for name in saved if name not in expected]
    problems += [f"{name} is {tuple(saved[name].shape)} in the file, {tuple(tensor.shape)} in the model"
                 for name, tensor in expected.items() if name in saved and saved[name].shape != tensor.shape]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"checkpoint: {str(path)!r} does not fit the model, written for another model size "
                         f"or architecture: {'; '.join(problems[:3])}{more}")


def _optimizer_state(path: Path, state: Mapping, tensors: Mapping[str, torch.Tensor],
                     optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state dict from the file, checked against ``optimizer``'s parameters."""
    per_param: dict[int, dict[str, object]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            per_param.setdefault(int(index), {})[key] = value
    for index, values in state["optimizer"]["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    groups = state["optimizer"]["param_groups"]
    saved_sizes = [len(group["params"]) for group in groups]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise ValueError(f"checkpoint: {str(path)!r} holds an optimizer over parameter groups of sizes "
                         f"{saved_sizes}, this optimizer's are {sizes}")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    indices = [i for group in groups for i in group["params"]]
    for index, values in per_param.items():
        if index not in indices:
            raise ValueError(f"checkpoint: {str(path)!r} holds optimizer state for a parameter {index} "
                             "that no parameter group lists")
        parameter = parameters[indices.index(index)]
        for key, value in values.items():  # moments have their parameter's shape; step counts are scalars
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != parameter.shape:
                raise ValueError(
                    f"checkpoint: {str(path)!r} does not fit the optimizer: its {key} of parameter {index} "
                    f"is {tuple(value.shape)}, the parameter is {tuple(parameter.shape)}"
                )
    return {"state": per_param, "param_groups": groups}


class Checkpoints(Callback):
    """The training callback that saves a run every ``every`` steps and at its end, and continues
    a run from the step its checkpoint was saved at.

    Restore the checkpoint first (:func:`load_checkpoint`, into the model, the optimizer, the
    batch order and the scaler that :func:`~transformer_course.training.train` then uses), and
    pass its step and history here.

    Args:
        path: the checkpoint file.
        order: the :class:`~transformer_course.training.MiniBatches` the run draws from.
        run: the settings that define the run (see :func:`save_checkpoint`).
        every: save after every this many steps (0: only at the end). Default: 0.
        start_step: the step a resumed run continues from (its first step is the next). Default: 0.
        history: the losses and gradient norms of the steps before ``start_step``. Default: none.
        write: save the files (False in every process but the first of a multi-process run,
            which still continues from ``start_step``). Default: True.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        order: MiniBatches,
        run: Mapping[str, object],
        every: int = 0,
        start_step: int = 0,
        history: Mapping[str, Sequence[float]] | None = None,
        write: bool = True,
    ) -> None:
        self.path, self.order, self.run, self.every, self.start_step, self.write = (
            path, order, run, every, start_step, write
        )
        self.history = {"losses": [], "grad_norms": []} if history is None else history

    def on_train_start(self, state: TrainState) -> None:
        state.step = self.start_step

    def on_step_end(self, state: TrainState) -> None:
        if self.every and state.step % self.every == 0 and state.step < state.config.steps:
            self._save(state)

    def on_train_end(self, state: TrainState) -> None:
        if not state.result.diverged:
            self._save(state)

    def _save(self, state: TrainState) -> None:
        if self.write:
            so_far = {name: [*self.history[name], *getattr(state.result, name)]
                      for name in ("losses", "grad_norms")}
            save_checkpoint(self.path, state.model, state.optimizer, self.order, state.step, so_far,
                            self.run, state.scaler)
