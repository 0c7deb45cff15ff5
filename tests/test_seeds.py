"""Every trained comparison a chapter draws a conclusion from runs on at least three seeds.

A code cell *trains* when it calls the package's training functions (``training.train``,
``run_distance_grid``, ``train_copy``, ``train_shift``, ``run_comparison``). Such a cell must show
its seeds: a tuple named ``..._SEEDS`` or a ``seeds=`` argument with three or more entries (or a
call whose default has three). Otherwise it is listed in ``ONE_SEED`` with the reason one run is
enough there, and, where the chapter concludes from it, the cell that has the three-seed version
(a cell with three seeds or one that renders a recorded run of several seeds). A new single-seed
training cell fails here until it gets seeds or an entry; a stale entry fails too.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

from transformer_course import distance_grid, position_generalization

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CALLS = {"train", "run_distance_grid", "train_copy", "train_shift", "run_comparison"}
DEFAULT_SEEDS = {  # the functions whose default seeds a call without seeds= gets
    "run_distance_grid": inspect.signature(distance_grid.run_distance_grid).parameters["seeds"].default,
    "run_comparison": inspect.signature(position_generalization.run_comparison).parameters["seeds"].default,
}

# chapter -> {cell id: (why one seed is enough here, the cell of its three-seed version or None)}
ONE_SEED = {
    "01_rnn_limits": {
        "ch1-loop-6": ("not a comparison: the package's loop takes the hand-written loop's steps", None),
        "ch1-cell-12": ("the live grid, for the loop's run and the figure; its conclusions are drawn "
                        "from the recorded sweep on three seeds", "01_rnn_limits:ch1-forget-2"),
    },
    "05_encoder": {
        "74f2adc5": ("the encoder on shared symbols retrained on the record's seed 0 to look at its "
                     "attention; the comparison of the variants is the recorded three seeds",
                     "05_encoder:410a8085"),
    },
    "06_encoder_at_work": {
        "c0ff38f7": ("the main table; the same recipe on three seeds is recorded and shown beside it",
                     "06_encoder_at_work:ch6-seeds-2"),
    },
}


def _chapters() -> dict[str, list[dict]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))["cells"]
            for path in sorted((ROOT / "chapters").glob("*.ipynb"))}


CHAPTERS = _chapters()


PACKAGE_MODULES = {"training", "distance_grid", "seq2seq", "position_generalization"}


def _call_name(call: ast.Call) -> str | None:
    """The training function a call names (``training.train``, ``distance_grid.run_distance_grid``, a
    name imported from them), or None (``model.train()`` is not training)."""
    function = call.func
    if isinstance(function, ast.Attribute):
        owner = function.value
        return function.attr if isinstance(owner, ast.Name) and owner.id in PACKAGE_MODULES else None
    name = getattr(function, "id", None)
    return name if name != "train" else None


def seeds_shown(source: str) -> tuple[bool, int]:
    """Whether the cell trains, and the most seeds it shows (0: none shown)."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.startswith(("%", "!"))))
    trains, seeds = False, 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Tuple, ast.List)):
            if any(isinstance(t, ast.Name) and t.id.endswith("SEEDS") for t in node.targets):
                seeds = max(seeds, len(node.value.elts))
        if isinstance(node, ast.Call) and _call_name(node) in TRAINING_CALLS:
            trains = True
            given = [k.value for k in node.keywords if k.arg == "seeds"]
            if given and isinstance(given[0], (ast.Tuple, ast.List)):
                seeds = max(seeds, len(given[0].elts))
            elif not given and _call_name(node) in DEFAULT_SEEDS:
                seeds = max(seeds, len(DEFAULT_SEEDS[_call_name(node)]))
    return trains, seeds


def _training_cells() -> list[tuple[str, str, int]]:
    found = []
    for chapter, cells in CHAPTERS.items():
        for cell in cells:
            if cell["cell_type"] == "code":
                trains, seeds = seeds_shown("".join(cell["source"]))
                if trains:
                    found.append((chapter, cell["id"], seeds))
    return found


TRAINING_CELLS = _training_cells()


def test_the_check_finds_the_training_cells():
    assert len(TRAINING_CELLS) >= 8  # the chapters train in at least that many cells


@pytest.mark.parametrize(("chapter", "cell", "seeds"), TRAINING_CELLS, ids=lambda value: str(value))
def test_a_training_cell_shows_three_seeds_or_says_why_not(chapter, cell, seeds):
    if seeds >= 3:
        assert cell not in ONE_SEED.get(chapter, {}), f"{chapter}:{cell} has {seeds} seeds: drop its entry"
        return
    assert cell in ONE_SEED.get(chapter, {}), (
        f"{chapter}:{cell} trains on {seeds or 'one'} seed(s): give it a ..._SEEDS tuple of three or more, "
        "or an entry in ONE_SEED with the reason and the cell of its three-seed version")


def test_every_one_seed_entry_is_a_training_cell_and_points_to_three_seeds():
    trained = {(chapter, cell) for chapter, cell, _ in TRAINING_CELLS}
    for chapter, entries in ONE_SEED.items():
        for cell, (reason, pointer) in entries.items():
            assert (chapter, cell) in trained, f"{chapter}:{cell} no longer trains: drop its entry"
            assert len(reason) > 20
            if pointer is None:
                continue
            target_chapter, target_cell = pointer.split(":")
            (target,) = [c for c in CHAPTERS[target_chapter] if c.get("id") == target_cell]
            source = "".join(target["source"])
            assert "read_packaged_record" in source or seeds_shown(source)[1] >= 3, pointer


def test_the_seed_count_reads_tuples_and_arguments():
    assert seeds_shown("SEEDS = (0, 1, 2)\nfor s in SEEDS:\n    training.train(m, d, seed=s)") == (True, 3)
    assert seeds_shown("distance_grid.run_distance_grid('rnn', seeds=(0,))") == (True, 1)
    default = len(DEFAULT_SEEDS["run_distance_grid"])
    assert seeds_shown("distance_grid.run_distance_grid('rnn')") == (True, default)
    assert seeds_shown("model.train()\ndropout.train()(x)") == (False, 0)
    assert seeds_shown("x = training.TrainConfig(steps=3)") == (False, 0)
