"""Numbers recorded from the reference ``transformers.BertModel`` running all-MiniLM-L6-v2.

``transformers`` is a test-only dependency, yet the book shows that our classes reproduce the
reference model. So the reference's outputs on one padded batch (:data:`REFERENCE_TEXTS`) were
recorded once, with transformers 4.57.6, eager attention, on CPU in float32, and are kept here;
:func:`reference_differences` compares a model of ours with them. ``tests/test_pretrained.py``
re-derives every number from the live ``transformers.BertModel``, so they cannot drift from it,
and checks that a perturbed model is caught.

Legend: B batch, T length, D model width (384), L layers (6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _checks
from .bert import PretrainedEncoder
from .tokenization import WordPieceTokenizer

__all__ = [
    "REFERENCE_TEXTS", "REFERENCE_IDS", "REFERENCE_MEAN_ABS", "REFERENCE_CLS", "reference_summary",
    "reference_differences",
]

# Three texts of different lengths (so the batch is padded), with an apostrophe and accents.
REFERENCE_TEXTS = (
    "The animal didn't cross the street because it was too wide.",
    "Hi!",
    "A café in Zürich serves crème brûlée.",
)
# The reference tokenizer's padded input_ids (B, T) for REFERENCE_TEXTS.
REFERENCE_IDS = (
    (101, 1996, 4111, 2134, 1005, 1056, 2892, 1996, 2395, 2138, 2009, 2001, 2205, 2898, 1012, 102),
    (101, 7632, 999, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (101, 1037, 7668, 1999, 10204, 4240, 13675, 21382, 7987, 9307, 2063, 1012, 102, 0, 0, 0),
)
# Mean |h| over the real tokens of the batch, for the embeddings and after each of the 6 layers.
REFERENCE_MEAN_ABS = (0.3497598, 0.405273, 0.3930455, 0.3870949, 0.4103612, 0.3292553, 0.3288772)
# The first 3 coordinates of the first text's [CLS] vector in the same 7 hidden states.
REFERENCE_CLS = (
    (-0.176567, -0.048236, 0.037698),
    (-0.002117, -0.018548, -0.016751),
    (-0.041261, 0.010236, -0.015527),
    (-0.017818, -0.012619, -0.013818),
    (-0.002082, 0.000593, -0.007406),
    (-0.030489, 0.00408, -0.004873),
    (0.345609, -0.113188, 0.4175),
)


def reference_summary(hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> dict[str, list]:
    """The statistics recorded in :data:`REFERENCE_MEAN_ABS` and :data:`REFERENCE_CLS`.

    Shape:
        hidden_states: L + 1 tensors (B, T, D); attention_mask: (B, T), 1 = real token.
        Returns ``{"mean_abs": L + 1 floats, "cls": L + 1 lists of 3 floats}``.

    Examples:
        >>> states = [torch.tensor([[[1.0, -2.0, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0]]])]  # (1, 2, 4)
        >>> reference_summary(states, torch.tensor([[1, 0]]))
        {'mean_abs': [2.5], 'cls': [[1.0, -2.0, 3.0]]}
    """
    real = _checks.bool_mask(attention_mask, "attention_mask")
    return {
        "mean_abs": [h[real].abs().mean().item() for h in hidden_states],
        "cls": [h[0, 0, :3].tolist() for h in hidden_states],
    }


@torch.no_grad()
def reference_differences(tokenizer: WordPieceTokenizer, model: PretrainedEncoder) -> dict[str, float]:
    """How far our model is from the recorded outputs of the reference ``transformers.BertModel``.

    Runs ``model`` on the padded batch of :data:`REFERENCE_TEXTS` and compares the statistics of
    :func:`reference_summary` with the recorded ones.

    Returns:
        ``{"ids": 0.0 if the tokenizer gives the reference ids (else 1.0), "mean_abs": max
        difference over the 7 hidden states, "cls": max difference over the 21 coordinates}``.

    Examples:
        >>> from transformer_course.pretrained import load_minilm
        >>> tokenizer, model = load_minilm(device="cpu")
        >>> max(reference_differences(tokenizer, model).values()) < 1e-4
        True
    """
    batch = tokenizer(list(REFERENCE_TEXTS))
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)  # (B, T)
    attention_mask = batch["attention_mask"].to(device)  # (B, T)
    ours = reference_summary(model.hidden_states(input_ids, attention_mask), attention_mask)
    same_ids = tuple(map(tuple, batch["input_ids"].tolist())) == REFERENCE_IDS
    return {
        "ids": 0.0 if same_ids else 1.0,
        "mean_abs": max(abs(a - b) for a, b in zip(ours["mean_abs"], REFERENCE_MEAN_ABS, strict=True)),
        "cls": max(
            abs(a - b)
            for x, y in zip(ours["cls"], REFERENCE_CLS, strict=True)
            for a, b in zip(x, y, strict=True)
        ),
    }
