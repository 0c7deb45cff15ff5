"""Attention: parity with torch, explicit vs fused paths, and the invariants of the weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import random_padding_mask
from torch import nn

from transformer_course import attention
from transformer_course.attention import (
    MultiHeadAttention,
    scaled_dot_product_attention,
    to_torch_key_padding_mask,
)


def test_sdpa_matches_formula_and_torch_fused():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=gen) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v)
    by_hand = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
    torch.testing.assert_close(weights, by_hand)
    torch.testing.assert_close(out, by_hand @ v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("mask_kind", ["padding", "causal", "integer"])
def test_sdpa_with_mask_matches_torch_fused(mask_kind):
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=gen) for _ in range(3))
    if mask_kind == "padding":
        mask = random_padding_mask(gen, 2, 6)[:, None, None, :]  # (B, 1, 1, Tk)
    elif mask_kind == "causal":
        mask = torch.ones(6, 6, dtype=torch.bool).tril()
    else:
        mask = torch.ones(6, 6, dtype=torch.long).tril()
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool())
    torch.testing.assert_close(out, expected)


def test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero():
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(3, 7, 4, generator=gen) for _ in range(3))
    mask = torch.rand(3, 7, 7, generator=gen) > 0.4
    mask[:, :, 0] = True  # every query keeps a key
    _, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7))
    assert torch.all(weights[~mask] == 0.0)
    assert torch.all(weights[mask] > 0.0)


def test_fully_masked_query_gives_zeros_and_finite_gradients():
    q = torch.randn(1, 3, 4, requires_grad=True)
    k = torch.randn(1, 5, 4, requires_grad=True)
    v = torch.randn(1, 5, 4, requires_grad=True)
    mask = torch.ones(1, 3, 5, dtype=torch.bool)
    mask[0, 1] = False  # query 1 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.all(out[0, 1] == 0) and torch.all(weights[0, 1] == 0)
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.all(q.grad[0, 1] == 0)


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_fully_masked_row_is_zero_on_both_paths(need_weights):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 4, 8)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 2, :] = False
    out, _ = mha(x, attention_mask=mask, need_weights=need_weights)
    assert torch.isfinite(out).all()
    # With no key, the context is zero and only the output projection's bias remains.
    torch.testing.assert_close(out[0, 2], mha.out_proj.bias)


def _copy_pair(d_model, num_heads, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True)
    return MultiHeadAttention.from_torch(theirs), theirs


@pytest.mark.parametrize("seed", range(6))
def test_mha_matches_torch_self_and_cross_with_padding(seed):
    gen = torch.Generator().manual_seed(seed)
    heads = [1, 2, 4][seed % 3]
    d_model = heads * [2, 4, 8][seed % 3]
    ours, theirs = _copy_pair(d_model, heads, bias=seed % 2 == 0, seed=seed)
    B, Tq, Tk = 3, 5, [5, 7][seed % 2]
    query = torch.randn(B, Tq, d_model, generator=gen)
    memory = query if Tk == Tq else torch.randn(B, Tk, d_model, generator=gen)
    mask = random_padding_mask(gen, B, Tk)
    out, w = ours(query, memory, memory, attention_mask=mask, need_weights=True)
    ref, ref_w = theirs(
        query, memory, memory, key_padding_mask=to_torch_key_padding_mask(mask),
        need_weights=True, average_attn_weights=False,
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)
    fused, none = ours(query, memory, memory, attention_mask=mask)
    assert none is None
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)


def test_mha_matches_torch_with_causal_mask_and_gradients():
    ours, theirs = _copy_pair(16, 4, seed=3)
    x = torch.randn(2, 6, 16, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()
    out, _ = ours(x, attention_mask=allowed[None, None])
    ref, _ = theirs(x2, x2, x2, attn_mask=~allowed, need_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-4, rtol=1e-4)
    w_q, w_k, w_v = theirs.in_proj_weight.grad.chunk(3)
    torch.testing.assert_close(ours.q_proj.weight.grad, w_q, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.k_proj.weight.grad, w_k, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.v_proj.weight.grad, w_v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "mask_shape", [None, "padding", "per_query", "per_head", "causal_2d_broadcast"]
)
def test_mha_explicit_and_fused_paths_agree(mask_shape):
    torch.manual_seed(4)
    mha = MultiHeadAttention(12, 3).eval()
    B, T, H = 2, 5, 3
    x = torch.randn(B, T, 12)
    gen = torch.Generator().manual_seed(4)
    masks = {
        None: None,
        "padding": random_padding_mask(gen, B, T),  # (B, T)
        "per_query": torch.rand(B, T, T, generator=gen) > 0.3,  # (B, Tq, Tk)
        "per_head": torch.rand(B, H, T, T, generator=gen) > 0.3,  # (B, H, Tq, Tk)
        "causal_2d_broadcast": torch.ones(T, T, dtype=torch.bool).tril()[None, None],
    }
    mask = masks[mask_shape]
    explicit, weights = mha(x, attention_mask=mask, need_weights=True)
    fused, _ = mha(x, attention_mask=mask, need_weights=False)
    torch.testing.assert_close(explicit, fused, atol=1e-6, rtol=1e-5)
    assert weights.shape == (B, H, T, T)


def test_mha_head_split_is_concatenation_of_single_heads():
    """Multi-head output = out_proj(concat of H separate attentions on slices of Q, K, V)."""
    torch.manual_seed(5)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 4, 8)
    q, k, v = mha.q_proj(x), mha.k_proj(x), mha.v_proj(x)
    heads = [scaled_dot_product_attention(q[..., h * 4:(h + 1) * 4], k[..., h * 4:(h + 1) * 4],
                                          v[..., h * 4:(h + 1) * 4])[0] for h in range(2)]
    expected = mha.out_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(mha(x)[0], expected)


def test_dropout_only_in_training():
    torch.manual_seed(6)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 6, 8)
    mha.eval()
    a, _ = mha(x)
    b, _ = mha(x)
    assert torch.equal(a, b)
    mha.train()
    c, _ = mha(x)
    assert not torch.allclose(a, c)


def test_fused_path_never_shows_the_kernel_a_query_without_keys(monkeypatch):
    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def recording_sdpa(q, k, v, attn_mask=None, **kwargs):
        seen.append(attn_mask)
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording_sdpa)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(8))
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    out, _ = mha(x, attention_mask=mask)
    (fused_mask,) = seen
    assert fused_mask.any(dim=-1).all()  # every query row the kernel sees has a key
    context_of_keyless_row = out[1] - mha.out_proj.bias  # out_proj(0) = its bias
    assert torch.equal(context_of_keyless_row, torch.zeros_like(context_of_keyless_row))


def test_fused_path_merges_heads_without_a_copy_in_inference():
    # Heads split as MultiHeadAttention splits them ((B, T, H, Dh) memory seen as (B, H, T, Dh)):
    # the fused kernel's output, transposed back and with keyless queries zeroed, is laid out so
    # that merging the heads into (B, Tq, D) is a view of the same memory.
    B, H, T, Dh = 2, 4, 6, 4
    gen = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(B, T, H, Dh, generator=gen).transpose(1, 2) for _ in range(3))
    mask = torch.tensor([[True] * T, [False] * T])[:, None, None, :]  # (B, 1, 1, Tk), row 1 keyless
    with torch.inference_mode():
        context = attention.fused_attention(q, k, v, mask)
        merged = context.reshape(B, T, H * Dh)
    assert context.shape == (B, T, H, Dh)
    assert merged.data_ptr() == context.data_ptr()  # the same memory: a view, no copy
    assert torch.equal(merged[1], torch.zeros(T, H * Dh))  # zeroed in place, still the same memory
