"""Chapter 6's exercise checkers: the instructor's solutions pass, plausible wrong answers get a
hint that does not give the answer away, and the student notebook's stubs are "not attempted yet"."""

from __future__ import annotations

import pytest
import torch
from conftest import exercise_stub, solution_namespace

from transformer_course import decoder, seq2seq
from transformer_course.exercises import evaluate
from transformer_course.exercises.ch6 import GREEDY_CASES, MASK_LENGTHS, seeded_model, seeded_source

CHAPTER = "06_encoder_at_work"


@pytest.fixture(scope="module")
def mask_solution():
    return solution_namespace(CHAPTER, "ch6-causal-mask")["look_ahead_mask"]


@pytest.fixture(scope="module")
def greedy_solution():
    return solution_namespace(CHAPTER, "ch6-greedy")["greedy"]


def assert_not_yet(verdict, *forbidden: str) -> None:
    """A "not yet" verdict whose hint is non-empty and contains none of the ``forbidden`` texts."""
    assert verdict.status == "not yet", verdict
    assert verdict.hint
    for text in forbidden:
        assert text not in verdict.hint, (text, verdict.hint)


# Texts that would give the look-ahead mask away: the functions that build it, the comparison.
MASK_ANSWERS = ("tril", "triu", "<=", ">=", "j <= i", "lower triangle", "below the diagonal")


# ---------------------------------------------------------------- ch6-causal-mask


def test_mask_solution_is_correct(mask_solution):
    assert evaluate("ch6-causal-mask", mask_solution).correct


def test_mask_checker_uses_lengths_the_chapter_does_not_show():
    assert 5 not in MASK_LENGTHS and 1 in MASK_LENGTHS


def test_mask_solution_equals_the_package_mask(mask_solution):
    for T in (1, 3, 5, 40):
        assert torch.equal(mask_solution(T), decoder.causal_mask(T))


@pytest.mark.parametrize(
    ("wrong", "hint_word"),
    [
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "query"),  # transposed: upper triangle
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal"),  # strict: no diagonal
        (lambda T: torch.ones(T, T).tril(), "dtype"),  # float
        (lambda T: torch.ones(T, T, dtype=torch.int64).tril(), "dtype"),  # int
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "True means"),  # True = masked
        (lambda T: torch.ones(T, T, dtype=torch.bool), "by hand"),  # no mask at all
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril()[None, None], "shape"),  # (1, 1, T, T)
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril().tolist(), "torch.Tensor"),  # a list
    ],
    ids=["transposed", "strict", "float", "int", "inverted", "all-true", "4-d", "list"],
)
def test_mask_rejects_wrong_masks(wrong, hint_word):
    verdict = evaluate("ch6-causal-mask", wrong)
    assert_not_yet(verdict, *MASK_ANSWERS)
    assert hint_word in verdict.hint


@pytest.mark.parametrize("borrowed", [decoder.causal_mask, lambda T: decoder.causal_mask(T)],
                         ids=["the package's function", "a wrapper around it"])
def test_mask_refuses_the_package_s_own_mask(borrowed):
    """The exercise says "torch only": handing in decoder.causal_mask, or calling it, is not an answer."""
    original = decoder.causal_mask
    verdict = evaluate("ch6-causal-mask", borrowed)
    assert verdict.status == "not yet" and "torch only" in verdict.hint
    assert decoder.causal_mask is original  # restored after the check


def test_mask_stub_is_not_attempted():
    assert evaluate("ch6-causal-mask", exercise_stub).status == "not attempted yet"


# ---------------------------------------------------------------- ch6-greedy


def _written(model, source, steps, position=-1):
    """The decoding loop with a choice of the position whose prediction is kept; includes the start."""
    memory = model.encode(source)
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long)
    for _ in range(steps):
        best = model.decode(memory, written)[:, position].argmax(-1, keepdim=True)
        written = torch.cat([written, best], dim=1)
    return written


def with_start_token(model, source, length):
    return _written(model, source, length)


def one_short(model, source, length):
    return _written(model, source, length - 1)[:, 1:]


def one_long(model, source, length):
    return _written(model, source, length + 1)[:, 1:]


def teacher_forced_with_source(model, source, length):
    return model.decode(model.encode(source), seq2seq.shift_right(source, model.start)).argmax(-1)


def source_prefix_fed_back(model, source, length):
    """Each step reads the source's first symbols instead of the model's own."""
    memory, columns = model.encode(source), []
    for t in range(length):
        seen = torch.cat([torch.full((source.shape[0], 1), model.start), source[:, :t]], dim=1)
        columns.append(model.decode(memory, seen)[:, -1].argmax(-1))
    return torch.stack(columns, dim=1)


def first_position_kept(model, source, length):
    return _written(model, source, length, position=0)[:, 1:]


def scores_returned(model, source, length):
    memory, written, scores = model.encode(source), torch.full((source.shape[0], 1), model.start), []
    for _ in range(length):
        last = model.decode(memory, written)[:, -1]
        scores.append(last)
        written = torch.cat([written, last.argmax(-1, keepdim=True)], dim=1)
    return torch.stack(scores, dim=1)


def sampled(model, source, length):
    generator = torch.Generator().manual_seed(0)
    memory, written = model.encode(source), torch.full((source.shape[0], 1), model.start)
    for _ in range(length):
        probabilities = model.decode(memory, written)[:, -1].softmax(-1)
        written = torch.cat([written, torch.multinomial(probabilities, 1, generator=generator)], dim=1)
    return written[:, 1:]


def reencoded_every_step(model, source, length):
    written = torch.full((source.shape[0], 1), model.start, dtype=torch.long)
    for _ in range(length):
        written = torch.cat([written, model(source, written)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return written[:, 1:]


def test_greedy_solution_is_correct(greedy_solution):
    assert evaluate("ch6-greedy", greedy_solution).correct


def test_greedy_accepts_re_encoding_at_every_step():
    assert evaluate("ch6-greedy", reencoded_every_step).correct


def test_greedy_cases_cover_both_families_and_lengths_other_than_the_source():
    families = {family for family, *_ in GREEDY_CASES}
    assert families == {"gru", "gru+attention", "transformer"}
    assert any(S == length for _, _, _, S, length in GREEDY_CASES)
    assert any(S < length for _, _, _, S, length in GREEDY_CASES)
    assert any(S > length for _, _, _, S, length in GREEDY_CASES)


def test_greedy_models_write_different_symbols_at_different_positions():
    # The checker's untrained models must not write one symbol everywhere, or feeding back the
    # wrong thing would go unnoticed.
    for family, seed, B, S, length in GREEDY_CASES:
        model = seeded_model(family, seed)
        written = seq2seq.greedy_decode(model, seeded_source(model, B, S, seed), length)
        assert all(len(set(row)) >= min(3, length) for row in written.tolist()), (family, seed)


@pytest.mark.parametrize(
    ("wrong", "hint_word"),
    [
        (with_start_token, "did not write"),
        (one_short, "steps of your loop"),
        (one_long, "steps of your loop"),
        (teacher_forced_with_source, "teacher forcing"),
        (source_prefix_fed_back, "teacher forcing"),
        (first_position_kept, "last position"),
        (scores_returned, "integers"),
        (sampled, "differ"),
    ],
    ids=["start-token", "one-short", "one-long", "teacher-forced", "source-prefix", "first-position",
         "scores", "sampled"],
)
def test_greedy_rejects_wrong_decoders(wrong, hint_word):
    verdict = evaluate("ch6-greedy", wrong)
    assert_not_yet(verdict, "argmax", "[:, -1]", "torch.cat")
    assert hint_word in verdict.hint


def test_greedy_hint_shows_no_expected_symbols(greedy_solution):
    # The hint names the case (family, batch, lengths) but never the symbols to write.
    verdict = evaluate("ch6-greedy", first_position_kept)
    family, seed, B, S, length = GREEDY_CASES[0]
    model = seeded_model(family, seed)
    expected = greedy_solution(model, seeded_source(model, B, S, seed), length)
    assert str(expected.tolist()) not in verdict.hint and str(expected[0].tolist()) not in verdict.hint


def test_greedy_stub_is_not_attempted():
    assert evaluate("ch6-greedy", exercise_stub).status == "not attempted yet"


def test_checks_leave_the_global_random_stream_alone(mask_solution, greedy_solution):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    evaluate("ch6-causal-mask", mask_solution)
    evaluate("ch6-greedy", greedy_solution)
    assert torch.equal(torch.get_rng_state(), before)
