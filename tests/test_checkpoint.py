"""A damaged or mismatched checkpoint gets a ValueError naming the file, and restores nothing."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from transformer_course.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from transformer_course.training import MiniBatches


def _model(width=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(width, 4), nn.ReLU(), nn.Linear(4, 2))


def _trained_state(model):
    """An Adam optimizer with moments, and batches part-way through a pass."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(5, model[0].in_features)).sum().backward()
    optimizer.step()
    batches = MiniBatches(num_examples=8, batch_size=4, seed=0)
    next(iter(batches))
    return optimizer, batches


@pytest.fixture
def saved(tmp_path):
    """A good checkpoint of a 3 -> 4 -> 2 model, and its path."""
    model = _model()
    optimizer, batches = _trained_state(model)
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, model, optimizer, batches, step=1, history={"losses": [0.5], "grad_norms": [1.0]},
                    run={"seed": 0})
    return path


@pytest.fixture
def target(saved):
    """The objects a resume would restore into, in a state of their own (different from the file's)."""
    model = _model(seed=1)
    optimizer, batches = _trained_state(model)
    assert not torch.equal(load_file(saved)["model.0.weight"], model[0].weight)  # a restore would show
    return {"model": model, "optimizer": optimizer, "batches": batches, "scaler": torch.amp.GradScaler("cpu")}


def _snapshot(target):
    return {
        "model": copy.deepcopy(target["model"].state_dict()),
        "optimizer": copy.deepcopy(target["optimizer"].state_dict()),
        "batches": copy.deepcopy(target["batches"].state_dict()),
        "scaler": copy.deepcopy(target["scaler"].state_dict()),
    }


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _refused(path, target, match, **restore):
    """load_checkpoint raises a ValueError naming the file and matching ``match``; nothing changed."""
    before = _snapshot(target)
    kwargs = {name: target[name] for name in ("optimizer", "batches", "scaler") if restore.get(name, True)}
    with pytest.raises(ValueError, match=match) as error:
        load_checkpoint(path, target["model"], **kwargs, run=restore.get("run"))
    assert str(path) in str(error.value)
    assert _equal(_snapshot(target), before), "a refused checkpoint changed the objects it was given"
    return str(error.value)


def test_a_good_checkpoint_restores_everything(saved, target):
    model = _model()
    optimizer, batches = _trained_state(model)
    restored = load_checkpoint(saved, target["model"], target["optimizer"], target["batches"])
    assert restored["step"] == 1 and restored["losses"] == [0.5]
    assert _equal(target["model"].state_dict(), model.state_dict())
    assert _equal(target["optimizer"].state_dict()["state"], optimizer.state_dict()["state"])


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, 0.999])
def test_a_truncated_file_is_refused(saved, target, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    _refused(saved, target, "truncated or corrupt", scaler=False)


@pytest.mark.parametrize("damage", ["random bytes", "header length", "header text"])
def test_a_corrupt_file_is_refused(saved, target, damage):
    data = bytearray(saved.read_bytes())
    if damage == "random bytes":
        data = bytearray(torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).tolist())
    elif damage == "header length":  # the first 8 bytes give the header's length
        data[:8] = (len(data) * 10).to_bytes(8, "little")
    else:
        data[8:40] = b"#" * 32
    saved.write_bytes(bytes(data))
    _refused(saved, target, "truncated or corrupt", scaler=False)


def test_a_model_of_another_size_is_refused(saved, target):
    wider = _model(width=5)
    target["model"] = wider
    target["optimizer"], _ = _trained_state(wider)
    message = _refused(saved, target, "another model size", scaler=False)
    assert "0.weight is (4, 3) in the file, (4, 5) in the model" in message


def test_a_model_of_another_architecture_is_refused(saved, target):
    target["model"] = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Linear(2, 2))
    message = _refused(saved, target, "another model size or architecture", optimizer=False, scaler=False)
    assert "3.weight missing" in message


def test_an_optimizer_over_other_parameters_is_refused(saved, target):
    model = target["model"]
    target["optimizer"] = torch.optim.Adam([{"params": model[0].parameters()},
                                            {"params": model[2].parameters()}])
    _refused(saved, target, "parameter groups of sizes", scaler=False)


def test_batches_over_another_data_set_are_refused(saved, target):
    target["batches"] = MiniBatches(num_examples=12, batch_size=4, seed=0)
    _refused(saved, target, "8 training examples", scaler=False)


def test_a_missing_scaler_is_refused_before_anything_is_restored(saved, target):
    _refused(saved, target, "no fp16 gradient scaler")


def test_a_checkpoint_of_another_run_is_refused_before_anything_is_restored(saved, target):
    _refused(saved, target, "belongs to another run", scaler=False, run={"seed": 1})


def test_a_safetensors_file_of_something_else_is_refused(tmp_path, target):
    path = tmp_path / "weights.safetensors"
    save_file({"weight": torch.zeros(2)}, path)
    _refused(path, target, "not a checkpoint of this trainer", scaler=False)


@pytest.mark.parametrize("state", ["{not json", json.dumps({"step": 1})])
def test_a_damaged_state_entry_is_refused(tmp_path, target, state):
    path = tmp_path / "run.safetensors"
    save_file({"model.0.weight": torch.zeros(4, 3)}, path,
              metadata={"format": CHECKPOINT_FORMAT, "state": state})
    _refused(path, target, "damaged state entry|lacks", scaler=False)
