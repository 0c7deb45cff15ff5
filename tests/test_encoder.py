"""Encoder: parity with torch.nn.TransformerEncoder(Layer) over many configurations, and invariants."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from transformer_course import runtime
from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.encoder import Encoder, EncoderLayer, FeedForward


def _config(seed: int) -> dict:
    """A random but reproducible encoder configuration and batch."""
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    return {
        "num_layers": rng.randint(1, 3),
        "d_model": heads * rng.choice([2, 4, 8]),
        "num_heads": heads,
        "d_ff": rng.choice([4, 16, 32]),
        "activation": rng.choice(["relu", "gelu"]),
        "norm_first": rng.random() < 0.5,
        "final_norm": rng.random() < 0.5,
        "B": rng.randint(1, 3),
        "T": rng.randint(1, 9),
        "padding": rng.random() < 0.6,
        "mode": rng.choice(["train", "eval"]),
    }


def _torch_layout_grads(ours: Encoder) -> dict[str, torch.Tensor]:
    """Our parameter gradients, renamed and stacked as torch.nn.TransformerEncoder lays them out."""
    grads = {}
    for i, layer in enumerate(ours.layers):
        attn, p = layer.self_attn, f"layers.{i}."
        grads[p + "self_attn.in_proj_weight"] = torch.cat(
            [attn.q_proj.weight.grad, attn.k_proj.weight.grad, attn.v_proj.weight.grad]
        )
        grads[p + "self_attn.in_proj_bias"] = torch.cat(
            [attn.q_proj.bias.grad, attn.k_proj.bias.grad, attn.v_proj.bias.grad]
        )
        for ours_name, torch_name in [
            ("self_attn.out_proj", "self_attn.out_proj"), ("feed_forward.linear1", "linear1"),
            ("feed_forward.linear2", "linear2"), ("norm1", "norm1"), ("norm2", "norm2"),
        ]:
            module = layer.get_submodule(ours_name)
            grads[p + torch_name + ".weight"] = module.weight.grad
            grads[p + torch_name + ".bias"] = module.bias.grad
    if ours.norm is not None:
        grads["norm.weight"], grads["norm.bias"] = ours.norm.weight.grad, ours.norm.bias.grad
    return grads


@pytest.mark.parametrize("seed", range(40))
def test_encoder_matches_torch_outputs_and_gradients(seed):
    cfg = _config(seed)
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(
        cfg["d_model"], cfg["num_heads"], cfg["d_ff"], dropout=0.0, activation=cfg["activation"],
        norm_first=cfg["norm_first"], batch_first=True,
    )
    final = nn.LayerNorm(cfg["d_model"]) if cfg["final_norm"] else None
    theirs = nn.TransformerEncoder(layer, cfg["num_layers"], norm=final, enable_nested_tensor=False)
    with torch.no_grad():  # non-trivial norm parameters, so a swapped copy cannot pass
        for name, p in theirs.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    ours = Encoder.from_torch(theirs)
    getattr(theirs, cfg["mode"])()
    getattr(ours, cfg["mode"])()

    gen = torch.Generator().manual_seed(seed)
    B, T = cfg["B"], cfg["T"]
    x = torch.randn(B, T, cfg["d_model"], generator=gen, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    mask = None
    if cfg["padding"]:
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T), True = real token
    out = ours(x, attention_mask=mask)
    ref = theirs(x_ref, src_key_padding_mask=None if mask is None else to_torch_key_padding_mask(mask))

    keep = torch.ones(B, T, dtype=torch.bool) if mask is None else mask
    torch.testing.assert_close(out[keep], ref[keep], atol=1e-5, rtol=1e-5)

    grad_out = torch.randn(out.shape, generator=gen) * keep[..., None]  # loss on real tokens
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    ours_grads = _torch_layout_grads(ours)
    theirs_grads = dict(theirs.named_parameters())
    assert set(ours_grads) == set(theirs_grads)
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, theirs_grads[name].grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.filterwarnings("ignore:.*nested tensor:UserWarning")
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_matches_torch_fast_path_in_inference(norm_first):
    """In eval under no_grad torch takes its fused fast path (nested tensors for padding)."""
    torch.manual_seed(11)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, norm_first=norm_first, batch_first=True)
    theirs = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32) if norm_first else None).eval()
    ours = Encoder.from_torch(theirs).eval()
    x = torch.randn(3, 10, 32)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2, 3:] = False
    with torch.inference_mode():
        out = ours(x, mask)
        ref = theirs(x, src_key_padding_mask=to_torch_key_padding_mask(mask))
    torch.testing.assert_close(out[mask], ref[mask], atol=1e-5, rtol=1e-5)


def test_layer_from_torch_copies_hyperparameters():
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        16, 2, 48, dropout=0.2, activation="gelu", norm_first=True, layer_norm_eps=1e-6, batch_first=True
    )
    ours = EncoderLayer.from_torch(theirs)
    assert ours.norm_first and ours.self_attn.num_heads == 2 and ours.norm1.eps == 1e-6
    assert ours.feed_forward.activation_name == "gelu" and ours.dropout1.p == 0.2
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-5, rtol=1e-5)


def test_return_attention_gives_one_map_per_layer_and_same_output():
    torch.manual_seed(1)
    encoder = Encoder(3, 16, 4, 32, dropout=0.0).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 4:] = False
    out, weights = encoder(x, mask, return_attention=True)
    assert len(weights) == 3
    for w in weights:
        assert w.shape == (2, 4, 7, 7)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 7))
        assert torch.all(w[0, :, :, 4:] == 0)  # padded keys get exactly zero weight
    torch.testing.assert_close(out, encoder(x, mask), atol=1e-6, rtol=1e-5)


def test_pre_ln_stack_ends_with_final_norm_post_ln_does_not():
    assert isinstance(Encoder(2, 8, 2, 16, norm_first=True).norm, nn.LayerNorm)
    assert Encoder(2, 8, 2, 16, norm_first=False).norm is None


@pytest.mark.parametrize("norm_first", [False, True])
def test_layer_without_residual_drops_only_the_skip_connections(norm_first):
    torch.manual_seed(4)
    layer = EncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first, residual=False).eval()
    x = torch.randn(2, 5, 8)
    attn = lambda h: layer.self_attn(h)[0]  # noqa: E731
    if norm_first:
        h = attn(layer.norm1(x))
        expected = layer.feed_forward(layer.norm2(h))
    else:
        h = layer.norm1(attn(x))
        expected = layer.norm2(layer.feed_forward(h))
    torch.testing.assert_close(layer(x), expected)
    with_residual = EncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first).eval()
    with_residual.load_state_dict(layer.state_dict())
    assert not torch.allclose(with_residual(x), layer(x), atol=1e-3)  # the switch changes the output
    assert "residual=False" in repr(layer) and "residual" not in repr(with_residual)
    with pytest.raises(TypeError, match="residual: expected a bool, got int"):
        EncoderLayer(8, 2, 16, residual=1)
    stack = Encoder(3, 8, 2, 16, norm_first=norm_first, residual=False)
    assert all(not each.residual for each in stack.layers)


def test_feed_forward_acts_on_each_position_alone():
    torch.manual_seed(2)
    ff = FeedForward(8, 32, activation="gelu")
    x = torch.randn(2, 6, 8)
    per_position = torch.stack([ff(x[:, t]) for t in range(6)], dim=1)
    torch.testing.assert_close(ff(x), per_position)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_without_positions_is_permutation_equivariant(norm_first):
    torch.manual_seed(3)
    encoder = Encoder(2, 16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(2, 9, 16)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    perm = torch.randperm(9)
    out = encoder(x, mask)
    out_perm = encoder(x[:, perm], mask[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], atol=1e-5, rtol=1e-5)


def _seeded_training_step(seed: int) -> torch.Tensor:
    """Output and one gradient of a dropout-on training step, after ``runtime.setup(seed)``."""
    runtime.setup(seed, device="cpu")
    encoder = Encoder(2, 16, 4, 32, dropout=0.1).train()
    x = torch.randn(3, 8, 16)
    out = encoder(x)
    out.square().mean().backward()
    return torch.cat([out.flatten(), encoder.layers[0].self_attn.q_proj.weight.grad.flatten()])


def test_seeded_runs_are_bit_identical():
    first, second = _seeded_training_step(123), _seeded_training_step(123)
    assert torch.equal(first, second)
    assert not torch.equal(first, _seeded_training_step(124))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_encoder_runs_in_half_precision_close_to_float32(dtype):
    torch.manual_seed(4)
    encoder = Encoder(2, 32, 4, 64, dropout=0.0).eval()
    x = torch.randn(2, 10, 32)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False
    reference = encoder(x, mask)
    half = encoder.to(dtype)(x.to(dtype), mask)
    assert half.dtype == dtype
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), reference, atol=0.1, rtol=0.05)


@pytest.mark.gpu
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_matches_torch_on_cuda(norm_first):
    runtime.setup(5)
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, norm_first=norm_first, batch_first=True)
    theirs = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).cuda()
    ours = Encoder.from_torch(theirs)
    x = torch.randn(2, 16, 64).cuda()
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_encoder_under_autocast_on_cuda(dtype):
    runtime.setup(6)
    encoder = Encoder(2, 64, 4, 128, dropout=0.0).cuda().eval()
    x = torch.randn(2, 16, 64).cuda()
    reference = encoder(x)
    with torch.autocast("cuda", dtype=dtype):
        out = encoder(x)
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


def test_stack_checks_its_mask_once_not_once_per_layer(monkeypatch):
    # An integer mask is read back to check its values (a host-device sync on a GPU): the stack
    # does it once, and its layers and their attention take the checked mask as it is.
    from transformer_course import _checks

    calls = []
    real_bool_mask = _checks.bool_mask

    def counting_bool_mask(mask, name="mask"):
        calls.append(name)
        return real_bool_mask(mask, name)

    monkeypatch.setattr(_checks, "bool_mask", counting_bool_mask)
    torch.manual_seed(0)
    stack = Encoder(num_layers=4, d_model=8, num_heads=2, d_ff=16, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # int64, 1 = may attend
    out, weights = stack(x, mask, return_attention=True)
    assert calls == ["attention_mask"]
    assert len(weights) == 4 and all(torch.all(w[0, :, :, 3:] == 0) for w in weights)
    # encode() is the same computation, given the mask already checked and expanded
    same, _ = stack.encode(x, mask.bool()[:, None, None, :], need_weights=True)
    torch.testing.assert_close(same, out, rtol=0, atol=0)
