"""Checkers of chapter 1's exercises (the limits of recurrent networks).

- ``ch1-predict-norm``: ``predicted_norm(radius, steps)`` is compared with the exact norm of a
  product of Jacobians ``radius * Q`` (Q orthogonal), and ``measured_norm(cell, w, steps)`` with
  :func:`~transformer_course.rnn.hidden_state_gradients` on cells of other sizes, some with
  biases (non-zero states, so tanh' < 1) and a recurrent matrix that is not orthogonal.
- ``ch1-chance``: ``constant_answer_accuracy(train_targets, test_targets)`` on seeded random
  answers whose most frequent training answer is not the most frequent test answer.
"""

from __future__ import annotations

import math

import torch

from .. import rnn
from ._core import NotYet, as_number, checker, expect, expect_close

# ---------------------------------------------------------------- ch1-predict-norm


def _orthogonal(size: int, generator: torch.Generator) -> torch.Tensor:
    """A random (size, size) orthogonal matrix in float64."""
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # fix the signs of the columns: Haar-distributed


def _make_cell(input_size: int, hidden_size: int, weight_hh: torch.Tensor, biases: bool,
               generator: torch.Generator) -> rnn.ElmanRNN:
    """A float64 ElmanRNN with the given W_hh and, if ``biases``, seeded non-zero biases."""
    with torch.random.fork_rng(devices=[]):  # the constructor's init must not move the student's RNG
        cell = rnn.ElmanRNN(input_size, hidden_size).double()
    bound = 1 / math.sqrt(hidden_size)

    def uniform(*shape: int) -> torch.Tensor:  # PyTorch's init, from the checker's generator
        return bound * (2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1)

    with torch.no_grad():
        cell.weight_hh.copy_(weight_hh)
        cell.weight_ih.copy_(uniform(hidden_size, input_size))
        for bias in (cell.bias_ih, cell.bias_hh):
            bias.copy_(uniform(hidden_size) if biases else torch.zeros(hidden_size, dtype=torch.float64))
    return cell


@checker("ch1-predict-norm")
def check_predict_norm(predicted_norm, measured_norm) -> None:
    """Prediction at unseen radii and step counts; measurement against the package's autograd."""
    for radius, steps in ((0.7, 13), (1.15, 9), (0.95, 31), (0.5, 1), (1.0, 40)):
        got = as_number(predicted_norm(radius, steps), "predicted_norm")
        expect_close(
            got, radius**steps,
            f"predicted_norm({radius}, {steps}) is not the norm of the gradient: with zero states, "
            "what is each Jacobian, and what does one multiplication by it do to a vector's norm?",
            atol=0, rtol=1e-9,
        )

    generator = torch.Generator().manual_seed(1701)
    cases = [  # (I, N_h, steps, radius, orthogonal W_hh, biases)
        (3, 11, 17, 0.8, True, False),
        (5, 7, 12, 1.1, False, True),
        (2, 9, 6, 0.9, False, False),
        (4, 6, 20, 1.3, True, True),
    ]
    for input_size, hidden, steps, radius, orthogonal, biases in cases:
        if orthogonal:
            weight_hh = radius * _orthogonal(hidden, generator)
        else:
            random = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
            weight_hh = rnn.scale_spectral_radius(random, radius)
        cell = _make_cell(input_size, hidden, weight_hh, biases, generator)
        w = torch.randn(hidden, generator=generator, dtype=torch.float64)
        w = w / w.norm()
        x = torch.zeros(1, steps, input_size, dtype=torch.float64)  # (1, T, I)
        expected = rnn.hidden_state_gradients(cell, x, w)[0, 0].norm().item()  # d loss / d h_0
        got = as_number(measured_norm(cell, w.clone(), steps), "measured_norm")
        kind = ("an orthogonal" if orthogonal else "a non-orthogonal") + " W_hh " + (
            "and non-zero biases" if biases else "and zero biases")
        hint = (f"measured_norm is off for a cell with N_h = {hidden}, {kind}, {steps} steps: "
                "multiply the row vector w by one step Jacobian per step, from the loss back to h_0, "
                "each taken at the state that step produced")
        if orthogonal and not biases:
            hint += " (here the measurement should equal your prediction)"
        expect_close(got, expected, hint, atol=0, rtol=1e-7)


# ---------------------------------------------------------------- ch1-chance


def _shuffled(counts: dict[int, int], generator: torch.Generator) -> torch.Tensor:
    """A 1-D LongTensor holding ``count`` copies of each answer id, in a seeded random order."""
    values = torch.cat([torch.full((n,), answer, dtype=torch.long) for answer, n in counts.items()])
    return values[torch.randperm(len(values), generator=generator)]


def _reference_accuracy(train: torch.Tensor, test: torch.Tensor) -> float:
    """Test accuracy of always answering the most frequent training answer."""
    most_frequent = torch.bincount(train).argmax()
    return (test == most_frequent).double().mean().item()


@checker("ch1-chance")
def check_chance(constant_answer_accuracy) -> None:
    """Seeded targets with a clear training mode that differs from the test set's mode."""
    generator = torch.Generator().manual_seed(2024)
    counts = [  # (training answers, test answers): the two sets have different modes
        ({3: 41, 1: 30, 0: 22, 2: 7}, {1: 25, 3: 11, 0: 9, 2: 15}),
        ({5: 18, 0: 12, 6: 11, 2: 4}, {0: 30, 5: 6, 6: 5, 4: 3}),
    ]
    cases = [(_shuffled(train, generator), _shuffled(test, generator)) for train, test in counts]
    # Random answers: 6 symbols with unequal probabilities, train and test drawn independently.
    probabilities = torch.tensor([0.08, 0.27, 0.2, 0.15, 0.1, 0.2], dtype=torch.float64)
    for n_train, n_test in ((300, 211), (57, 90)):
        while True:  # redraw until the training mode is unique (ties would make the answer ambiguous)
            train = torch.multinomial(probabilities, n_train, replacement=True, generator=generator)
            counts = torch.bincount(train, minlength=len(probabilities))
            if (counts == counts.max()).sum() == 1:
                break
        cases.append((train, torch.multinomial(probabilities, n_test, replacement=True, generator=generator)))

    for train, test in cases:
        expected = _reference_accuracy(train, test)
        got = as_number(constant_answer_accuracy(train.clone(), test.clone()), "constant_answer_accuracy")
        expect(0 <= got <= 1, "an accuracy is the fraction of test answers that are right, between 0 and 1")
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):  # float32 means are fine
            test_mode = (test == torch.bincount(test).argmax()).double().mean().item()
            if math.isclose(got, test_mode, rel_tol=1e-6):
                raise NotYet("the constant answer must be fixed before the model sees the test set: "
                             "pick it from the training answers only")
            raise NotYet(f"wrong accuracy for {len(train)} training and {len(test)} test answers: "
                         "find the answer that is most frequent among the training targets, then "
                         "count how often the test targets equal it")
