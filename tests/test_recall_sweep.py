"""The recorded recall sweep that chapter 1 renders (code/transformer_course/data/recall_sweep.json,
written by ``python -m book_tools.recall_sweep``): complete, made with today's recipe, and
reproduced where the chapter draws its conclusion."""

from __future__ import annotations

import pytest
import torch

from book_tools import recall_sweep
from transformer_course import distance_grid, models, records, tasks, training

RECORD = records.read_packaged_record("recall_sweep.json", {"recorded.torch": str, "recipe.steps": dict,
                                                            "runs": list, "task_variants": list})


def _accuracy(model: str, bias: float | None, distance: int, seed: int) -> float:
    wanted = {"model": model, "forget_bias": bias, "distance": distance, "seed": seed}
    (run,) = [run for run in RECORD["runs"] if all(run[key] == value for key, value in wanted.items())]
    return run["accuracy"]


def test_the_record_holds_every_model_distance_and_seed_once():
    keys = [(run["model"], run["forget_bias"], run["distance"], run["seed"]) for run in RECORD["runs"]]
    expected = {(kind, bias, distance, seed) for kind, bias, _ in recall_sweep.variants()
                for distance in recall_sweep.DISTANCES for seed in (0, 1, 2)}
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert all(0.0 <= run["accuracy"] <= 1.0 for run in RECORD["runs"])


def test_the_record_holds_every_task_variant_distance_and_seed_once():
    fields = ("model", "forget_bias", "positions", "shared_symbols", "distance", "seed")
    keys = [tuple(run[field] for field in fields) for run in RECORD["task_variants"]]
    expected = {(kind, bias, positions, shared, distance, seed)
                for kind, bias, positions, shared, _ in recall_sweep.task_variants()
                for distance in recall_sweep.VARIANT_DISTANCES for seed in (0, 1, 2)}
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert all(0.0 <= run["accuracy"] <= 1.0 for run in RECORD["task_variants"])


def test_the_encoder_without_positions_has_no_positional_table():
    torch.manual_seed(0)
    bare, book = recall_sweep.encoder_without_positions(), models.make_recall_model("encoder")
    assert sum(p.numel() for p in bare.parameters()) == sum(p.numel() for p in book.parameters())
    ids = torch.randint(0, 10, (2, 7))
    reversed_ids = ids.flip(1)
    with torch.no_grad():  # no positions: the embedded sequence is a bag, reversal only reorders it
        assert torch.allclose(bare.embedding(ids).flip(1), bare.embedding(reversed_ids))
        assert not torch.allclose(book.embedding(ids).flip(1), book.embedding(reversed_ids))


def test_the_record_was_made_with_todays_recipe():
    config = training.TrainConfig()
    recipe = RECORD["recipe"]
    assert recipe["steps"] == distance_grid.STEPS
    assert (recipe["batch_size"], recipe["lr"], recipe["clip_norm"], recipe["optimizer"]) == (
        config.batch_size, config.lr, config.clip_norm, config.optimizer)


def test_a_forget_bias_changes_the_biases_and_nothing_else():
    def fresh(bias):
        torch.manual_seed(0)
        return models.make_recall_model("lstm", forget_bias=bias).state_dict()

    default, opened = fresh(None), fresh(3.0)
    changed = [name for name, tensor in default.items() if not torch.equal(tensor, opened[name])]
    assert changed == ["recurrent.bias_ih_l0", "recurrent.bias_hh_l0"]
    forget = slice(32, 64)  # N_h = 32; PyTorch's gate order: input, forget, cell, output
    assert torch.equal(opened["recurrent.bias_ih_l0"][forget], torch.full((32,), 3.0))
    assert not opened["recurrent.bias_hh_l0"][forget].any()
    for name in changed:  # the other three gates keep their default biases
        keep = torch.ones(128, dtype=torch.bool)
        keep[forget] = False
        assert torch.equal(default[name][keep], opened[name][keep])


@pytest.mark.slow  # two trainings at d = 50, about 5 s
def test_the_chapters_conclusion_at_d_50_is_reproduced():
    # Seed 0, as recorded: PyTorch's default LSTM is at chance, the LSTM whose forget gate starts
    # open remembers every answer.
    for bias in (None, 3.0):
        def build(bias=bias):
            return models.make_recall_model("lstm", forget_bias=bias)

        grid = distance_grid.run_distance_grid(build, steps=distance_grid.STEPS["lstm"], distances=(50,),
                                               progress=False)
        accuracy = float(grid.accuracy[0, 0])
        if bias is None:
            assert accuracy < tasks.CHANCE + 0.1 and _accuracy("lstm", None, 50, 0) < tasks.CHANCE + 0.1
        else:
            assert accuracy >= 0.95 and _accuracy("lstm", 3.0, 50, 0) >= 0.95


def _variant_accuracy(model: str, positions: str | None, distance: int, seed: int) -> float:
    wanted = {"model": model, "positions": positions, "shared_symbols": True,
              "distance": distance, "seed": seed}
    (run,) = [run for run in RECORD["task_variants"]
              if all(run[key] == value for key, value in wanted.items())]
    return run["accuracy"]


@pytest.mark.slow  # two encoder trainings at d = 50 (100 steps each), about 5 s
def test_chapter_5s_shared_symbols_conclusion_is_reproduced():
    # Seed 1: with positions the encoder recalls every answer, without them it stays below 50 %.
    for positions, build in (("sinusoidal", lambda: models.make_recall_model("encoder")),
                             ("none", recall_sweep.encoder_without_positions)):
        grid = distance_grid.run_distance_grid(build, steps=distance_grid.STEPS["encoder"], distances=(50,),
                                               seeds=(1,), shared_symbols=True, progress=False)
        accuracy, recorded = float(grid.accuracy[0, 0]), _variant_accuracy("encoder", positions, 50, 1)
        assert abs(accuracy - recorded) <= 0.05
        assert (accuracy >= 0.95) if positions == "sinusoidal" else (accuracy < 0.5)
