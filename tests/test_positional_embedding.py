"""Positional encodings and embeddings: the sinusoidal table, lookups, and what they add."""

from __future__ import annotations

import math

import pytest
import torch

from transformer_course.embedding import InputEmbedding, TokenEmbedding
from transformer_course.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)


def test_sinusoidal_table_matches_the_formula():
    pe = sinusoidal_encoding(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == torch.float32
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_sinusoidal_table_odd_width_and_bounded():
    pe = sinusoidal_encoding(10, 7)
    assert pe.shape == (10, 7)
    last = torch.sin(torch.arange(10.0) / 10000 ** (6 / 7))  # the unpaired sine column
    torch.testing.assert_close(pe[:, 6], last, atol=1e-6, rtol=0)
    assert pe.abs().max() <= 1.0


def test_shift_by_k_is_the_same_rotation_for_every_position():
    """PE(pos + k) = M_k PE(pos): each (sin, cos) pair turns by an angle depending on k only."""
    d_model, k = 16, 5
    pe = sinusoidal_encoding(200, d_model).double()
    inv_freq = 10000 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    m_k = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i, w in enumerate(inv_freq):
        c, s = math.cos(k * w), math.sin(k * w)
        m_k[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, s], [-s, c]])
    torch.testing.assert_close(pe[:-k] @ m_k.T, pe[k:], atol=1e-5, rtol=0)


def test_sinusoidal_module_adds_the_table_and_follows_dtype():
    module = SinusoidalPositionalEncoding(max_len=12, d_model=8)
    x = torch.zeros(2, 5, 8)
    torch.testing.assert_close(module(x), sinusoidal_encoding(12, 8)[:5].expand(2, 5, 8))
    assert module(x.to(torch.bfloat16)).dtype == torch.bfloat16
    assert "pe" not in module.state_dict()  # recomputed, never saved


def test_learned_positions_are_trainable_per_position():
    module = LearnedPositionalEncoding(max_len=6, d_model=4)
    out = module(torch.zeros(1, 3, 4))
    out.sum().backward()
    assert torch.all(module.weight.grad[:3] == 1) and torch.all(module.weight.grad[3:] == 0)


def test_token_embedding_is_one_hot_times_matrix():
    torch.manual_seed(0)
    embed = TokenEmbedding(vocab_size=11, d_model=4)
    ids = torch.tensor([[3, 0, 10], [1, 1, 2]])
    one_hot = torch.nn.functional.one_hot(ids, 11).float()  # (B, T) -> (B, T, V)
    torch.testing.assert_close(embed(ids), one_hot @ embed.table.weight)


def test_scaled_embedding_has_unit_scale_and_zero_padding_row():
    torch.manual_seed(1)
    embed = TokenEmbedding(vocab_size=1000, d_model=64, padding_idx=0, scale=True)
    vectors = embed(torch.arange(1, 1000)[None])
    assert 0.9 < vectors.std().item() < 1.1
    assert torch.all(embed(torch.tensor([[0]])) == 0)


def test_input_embedding_gives_order_to_identical_tokens():
    torch.manual_seed(2)
    for positional in ("sinusoidal", "learned"):
        embed = InputEmbedding(vocab_size=5, d_model=8, max_len=10, positional=positional)
        out = embed(torch.tensor([[4, 4, 4]]))
        assert out.shape == (1, 3, 8)
        assert not torch.allclose(out[0, 0], out[0, 1])  # same token, different positions


def test_input_embedding_without_positions_is_the_scaled_token_lookup_alone():
    torch.manual_seed(3)
    none = InputEmbedding(vocab_size=5, d_model=8, max_len=10, positional="none")
    sinusoidal = InputEmbedding(vocab_size=5, d_model=8, max_len=10)
    sinusoidal.load_state_dict(none.state_dict())  # neither has a learned position table
    ids = torch.tensor([[4, 4, 1]])
    out = none(ids)
    assert torch.equal(out[0, 0], out[0, 1])  # same token, same vector: no order at all
    torch.testing.assert_close(out, none.token_embedding(ids))
    # The only difference from the sinusoidal embedding is the table.
    torch.testing.assert_close(sinusoidal(ids) - out, sinusoidal_encoding(3, 8)[None])
    with pytest.raises(ValueError, match=r"positional: expected .*'learned' or 'none', got 'rotary'"):
        InputEmbedding(vocab_size=5, d_model=8, max_len=10, positional="rotary")
