"""Decoder: parity with torch.nn.TransformerDecoder(Layer) over many configurations, and invariants."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import random_padding_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.decoder import Decoder, DecoderLayer, causal_mask


def _config(seed: int) -> dict:
    """A random but reproducible decoder configuration and batch (Tk always differs from Tq)."""
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    Tq = rng.randint(1, 9)
    return {
        "num_layers": rng.randint(1, 3),
        "d_model": heads * rng.choice([2, 4, 8]),
        "num_heads": heads,
        "d_ff": rng.choice([4, 16, 32]),
        "activation": rng.choice(["relu", "gelu"]),
        "norm_first": rng.random() < 0.5,
        "final_norm": rng.random() < 0.5,
        "B": rng.randint(1, 3),
        "Tq": Tq,
        "Tk": rng.choice([t for t in range(1, 10) if t != Tq]),
        "padding": rng.random() < 0.6,
        "mode": rng.choice(["train", "eval"]),
    }


def _torch_layout_grads(ours: Decoder) -> dict[str, torch.Tensor]:
    """Our parameter gradients, renamed and stacked as torch.nn.TransformerDecoder lays them out."""
    grads = {}
    for i, layer in enumerate(ours.layers):
        p = f"layers.{i}."
        for ours_attn, torch_attn in [("self_attn", "self_attn"), ("cross_attn", "multihead_attn")]:
            attn = layer.get_submodule(ours_attn)
            grads[p + torch_attn + ".in_proj_weight"] = torch.cat(
                [attn.q_proj.weight.grad, attn.k_proj.weight.grad, attn.v_proj.weight.grad]
            )
            grads[p + torch_attn + ".in_proj_bias"] = torch.cat(
                [attn.q_proj.bias.grad, attn.k_proj.bias.grad, attn.v_proj.bias.grad]
            )
        for ours_name, torch_name in [
            ("self_attn.out_proj", "self_attn.out_proj"), ("cross_attn.out_proj", "multihead_attn.out_proj"),
            ("feed_forward.linear1", "linear1"), ("feed_forward.linear2", "linear2"),
            ("norm1", "norm1"), ("norm2", "norm2"), ("norm3", "norm3"),
        ]:
            module = layer.get_submodule(ours_name)
            grads[p + torch_name + ".weight"] = module.weight.grad
            grads[p + torch_name + ".bias"] = module.bias.grad
    if ours.norm is not None:
        grads["norm.weight"], grads["norm.bias"] = ours.norm.weight.grad, ours.norm.bias.grad
    return grads


def _torch_pair(cfg: dict, seed: int) -> tuple[nn.TransformerDecoder, Decoder]:
    """A torch decoder with perturbed norm parameters (so a swapped copy cannot pass) and our copy."""
    torch.manual_seed(seed)
    layer = nn.TransformerDecoderLayer(
        cfg["d_model"], cfg["num_heads"], cfg["d_ff"], dropout=0.0, activation=cfg["activation"],
        norm_first=cfg["norm_first"], batch_first=True,
    )
    final = nn.LayerNorm(cfg["d_model"]) if cfg["final_norm"] else None
    theirs = nn.TransformerDecoder(layer, cfg["num_layers"], norm=final)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    ours = Decoder.from_torch(theirs)
    getattr(theirs, cfg["mode"])()
    getattr(ours, cfg["mode"])()
    return theirs, ours


@pytest.mark.parametrize("seed", range(40))
def test_decoder_matches_torch_outputs_and_gradients(seed):
    cfg = _config(seed)
    theirs, ours = _torch_pair(cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    B, Tq, Tk, D = cfg["B"], cfg["Tq"], cfg["Tk"], cfg["d_model"]
    x = torch.randn(B, Tq, D, generator=gen, requires_grad=True)
    memory = torch.randn(B, Tk, D, generator=gen, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    memory_ref = memory.detach().clone().requires_grad_(True)
    mask = random_padding_mask(gen, B, Tk) if cfg["padding"] else None

    out = ours(x, memory, memory_mask=mask)  # causal=True by default
    ref = theirs(
        x_ref, memory_ref,
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(Tq), tgt_is_causal=True,
        memory_key_padding_mask=None if mask is None else to_torch_key_padding_mask(mask),
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)

    grad_out = torch.randn(out.shape, generator=gen)
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    real = torch.ones(B, Tk, dtype=torch.bool) if mask is None else mask
    torch.testing.assert_close(memory.grad[real], memory_ref.grad[real], atol=1e-4, rtol=1e-4)
    ours_grads = _torch_layout_grads(ours)
    theirs_grads = dict(theirs.named_parameters())
    assert set(ours_grads) == set(theirs_grads)
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, theirs_grads[name].grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("seed", [0, 7, 13, 21])
def test_non_causal_decoder_matches_torch_without_tgt_mask(seed):
    cfg = _config(seed)
    theirs, ours = _torch_pair(cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["B"], cfg["Tq"], cfg["d_model"], generator=gen)
    memory = torch.randn(cfg["B"], cfg["Tk"], cfg["d_model"], generator=gen)
    mask = random_padding_mask(gen, cfg["B"], cfg["Tk"])
    out = ours(x, memory, mask, causal=False)
    ref = theirs(x, memory, memory_key_padding_mask=to_torch_key_padding_mask(mask))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if cfg["Tq"] > 1:  # the look-ahead mask does change the output
        assert not torch.allclose(ours(x, memory, mask), out, atol=1e-4)


@pytest.mark.parametrize("return_attention", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_no_gradient_reaches_padded_memory(norm_first, return_attention):
    """Fused kernel (return_attention=False) and explicit formula (True) alike: exactly zero."""
    torch.manual_seed(2)
    decoder = Decoder(2, 8, 2, 16, dropout=0.0, norm_first=norm_first).train()
    x = torch.randn(3, 4, 8)
    memory = torch.randn(3, 6, 8, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = decoder(x, memory, mask, return_attention=return_attention)
    out = out[0] if return_attention else out
    out.square().sum().backward()
    assert torch.all(memory.grad[~mask] == 0)
    assert torch.all(memory.grad[mask].abs().sum(-1) > 0)  # real positions do get a gradient


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_is_causal(norm_first):
    torch.manual_seed(3)
    decoder = Decoder(2, 16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(2, 7, 16)
    memory = torch.randn(2, 5, 16)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    out = decoder(x, memory, mask)
    for t in range(7):
        changed = x.clone()
        changed[:, t] += torch.randn(2, 16)
        new = decoder(changed, memory, mask)
        assert torch.equal(new[:, :t], out[:, :t]), t  # the past does not see the future
        assert not torch.allclose(new[:, t], out[:, t], atol=1e-4), t


@pytest.mark.parametrize("norm_first", [False, True])
def test_return_attention_gives_per_layer_maps_and_same_output(norm_first):
    torch.manual_seed(1)
    B, H, Tq, Tk, L = 3, 4, 6, 5, 3
    decoder = Decoder(L, 16, H, 32, dropout=0.0, norm_first=norm_first).eval()
    x, memory = torch.randn(B, Tq, 16), torch.randn(B, Tk, 16)
    mask = torch.ones(B, Tk, dtype=torch.bool)
    mask[0, 2:] = False
    mask[2, 4:] = False
    out, self_weights, cross_weights = decoder(x, memory, mask, return_attention=True)
    assert isinstance(self_weights, list) and isinstance(cross_weights, list)
    assert len(self_weights) == len(cross_weights) == L
    above = ~causal_mask(Tq)
    for w_self, w_cross in zip(self_weights, cross_weights, strict=True):
        assert w_self.shape == (B, H, Tq, Tq) and w_cross.shape == (B, H, Tq, Tk)
        assert torch.all(w_self[..., above] == 0)  # no weight on future positions
        assert torch.all(w_cross[0, :, :, 2:] == 0) and torch.all(w_cross[2, :, :, 4:] == 0)
        torch.testing.assert_close(w_self.sum(-1), torch.ones(B, H, Tq))
        torch.testing.assert_close(w_cross.sum(-1), torch.ones(B, H, Tq))
    torch.testing.assert_close(out, decoder(x, memory, mask), atol=1e-6, rtol=1e-5)
    layer = decoder.layers[0]
    out1, w_self, w_cross = layer(x, memory, mask, return_attention=True)
    torch.testing.assert_close(w_self, self_weights[0])
    torch.testing.assert_close(w_cross, cross_weights[0])
    torch.testing.assert_close(out1, layer(x, memory, mask), atol=1e-6, rtol=1e-5)


def test_pre_ln_stack_ends_with_final_norm_post_ln_does_not():
    assert isinstance(Decoder(2, 8, 2, 16, norm_first=True).norm, nn.LayerNorm)
    assert Decoder(2, 8, 2, 16, norm_first=False).norm is None


def test_layer_from_torch_copies_hyperparameters():
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(
        16, 2, 48, dropout=0.2, activation="gelu", norm_first=True, layer_norm_eps=1e-6, batch_first=True
    )
    ours = DecoderLayer.from_torch(theirs)
    assert ours.norm_first and ours.training
    assert ours.self_attn.num_heads == ours.cross_attn.num_heads == 2
    assert ours.feed_forward.linear1.out_features == 48
    assert ours.feed_forward.activation_name == "gelu"
    assert ours.norm1.eps == ours.norm2.eps == ours.norm3.eps == 1e-6
    assert ours.dropout1.p == ours.dropout2.p == ours.dropout3.p == ours.feed_forward.dropout.p == 0.2
    assert ours.self_attn.dropout == ours.cross_attn.dropout == 0.2
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    look_ahead = nn.Transformer.generate_square_subsequent_mask(5)
    torch.testing.assert_close(
        ours.eval()(x, memory), theirs.eval()(x, memory, tgt_mask=look_ahead, tgt_is_causal=True),
        atol=1e-5, rtol=1e-5,
    )


def test_stack_from_torch_keeps_post_ln_final_norm_and_drops_missing_pre_ln_norm():
    torch.manual_seed(0)
    post = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    ours = Decoder.from_torch(nn.TransformerDecoder(post, 2, norm=nn.LayerNorm(8, eps=1e-3)))
    assert isinstance(ours.norm, nn.LayerNorm) and ours.norm.eps == 1e-3
    pre = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True, batch_first=True)
    assert Decoder.from_torch(nn.TransformerDecoder(pre, 2)).norm is None


def test_causal_mask():
    assert torch.equal(causal_mask(1), torch.ones(1, 1, dtype=torch.bool))
    assert torch.equal(causal_mask(4), torch.ones(4, 4).tril().bool())
    assert causal_mask(0).shape == (0, 0)
    with pytest.raises(ValueError, match=r"length: .*got -1"):
        causal_mask(-1)


def test_an_empty_target_gives_an_empty_output_causal_or_not():
    decoder = Decoder(2, 8, 2, 16)
    memory = torch.randn(2, 5, 8)
    for causal in (True, False):
        assert decoder(torch.randn(2, 0, 8), memory, causal=causal).shape == (2, 0, 8)


def _seeded_forward(seed: int) -> torch.Tensor:
    """Output and one gradient of a dropout-on training step of a freshly seeded decoder."""
    torch.manual_seed(seed)
    decoder = Decoder(2, 16, 4, 32, dropout=0.1).train()
    x, memory = torch.randn(3, 6, 16), torch.randn(3, 4, 16)
    out = decoder(x, memory, torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]))
    out.square().mean().backward()
    return torch.cat([out.flatten(), decoder.layers[0].cross_attn.k_proj.weight.grad.flatten()])


def test_seeded_runs_are_bit_identical():
    first, second = _seeded_forward(123), _seeded_forward(123)
    assert torch.equal(first, second)
    assert not torch.equal(first, _seeded_forward(124))


@settings(max_examples=25, deadline=None)
@given(
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.integers(1, 4),
    batch=st.integers(1, 3),
    tq=st.integers(1, 8),
    tk=st.integers(1, 8),
    norm_first=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_attention_rows_are_distributions_for_any_shape(heads, head_dim, batch, tq, tk, norm_first, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d = heads * head_dim
    layer = DecoderLayer(d, heads, 2 * d, dropout=0.0, norm_first=norm_first).eval()
    x, memory = torch.randn(batch, tq, d, generator=gen), torch.randn(batch, tk, d, generator=gen)
    mask = random_padding_mask(gen, batch, tk)
    out, w_self, w_cross = layer(x, memory, mask, return_attention=True)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(w_self.sum(-1), torch.ones(batch, heads, tq))
    torch.testing.assert_close(w_cross.sum(-1), torch.ones(batch, heads, tq))
    assert torch.all(w_self[..., ~causal_mask(tq)] == 0)
    assert torch.all(w_cross.masked_select(~mask[:, None, None, :]) == 0)
    torch.testing.assert_close(out, layer(x, memory, mask), atol=1e-5, rtol=1e-4)
