"""Property-based tests (hypothesis): attention invariants over random shapes and masks."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_course.attention import MultiHeadAttention, scaled_dot_product_attention
from transformer_course.encoder import Encoder


@st.composite
def attention_inputs(draw):
    """Random (q, k, v, mask) with batch dims, lengths and widths of varying size."""
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    tq, tk = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    d, dv = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, tq, d, generator=gen)
    k = torch.randn(*batch, tk, d, generator=gen)
    v = torch.randn(*batch, tk, dv, generator=gen)
    # The mask may broadcast over the batch dims and over queries.
    mask_shape = [1] * len(batch) + [draw(st.sampled_from([1, tq])), tk]
    density = draw(st.floats(0.0, 1.0))
    mask = torch.rand(mask_shape, generator=gen) < density
    return q, k, v, mask


@given(attention_inputs())
def test_weights_are_distributions_over_allowed_keys(inputs):
    q, k, v, mask = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    full_mask = mask.expand_as(weights)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.all(weights[~full_mask] == 0)
    has_key = full_mask.any(-1)
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[has_key], torch.ones_like(sums[has_key]))
    assert torch.all(out[~has_key] == 0)  # queries with no allowed key output zeros


@given(attention_inputs())
def test_explicit_attention_matches_torch_fused_where_any_key_is_allowed(inputs):
    q, k, v, mask = inputs
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    has_key = mask.expand_as(weights).any(-1)
    torch.testing.assert_close(out[has_key], fused[has_key], atol=1e-5, rtol=1e-4)


@given(
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.integers(1, 6),
    batch=st.integers(1, 3),
    length=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_mha_paths_agree_with_random_padding(heads, head_dim, batch, length, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mha = MultiHeadAttention(heads * head_dim, heads).eval()
    x = torch.randn(batch, length, heads * head_dim, generator=gen)
    mask = torch.rand(batch, length, generator=gen) < 0.7
    explicit, weights = mha(x, attention_mask=mask, need_weights=True)
    fused, _ = mha(x, attention_mask=mask)
    assert weights.shape == (batch, heads, length, length)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-4)


@given(length=st.integers(2, 10), seed=st.integers(0, 2**31 - 1), norm_first=st.booleans())
def test_encoder_is_permutation_equivariant_for_any_permutation(length, seed, norm_first):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    encoder = Encoder(2, 8, 2, 16, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(2, length, 8, generator=gen)
    perm = torch.randperm(length, generator=gen)
    torch.testing.assert_close(encoder(x[:, perm]), encoder(x)[:, perm], atol=1e-5, rtol=1e-4)
