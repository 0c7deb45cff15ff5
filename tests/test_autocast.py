"""Mixed precision and kernel choice on CPU: what tests/test_gpu.py checks on CUDA, here.

``torch.autocast("cpu", dtype=torch.bfloat16)`` runs the matmuls in bfloat16 as a GPU would, so
the half-precision safety of both attention paths (the -inf mask, fully masked rows) is checked
on every machine.
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import padding_mask_from_lengths
from torch import nn

from transformer_course import runtime
from transformer_course.attention import MultiHeadAttention, to_torch_key_padding_mask
from transformer_course.encoder import Encoder
from transformer_course.profiling import fused_attention_kernels


@pytest.mark.parametrize("return_attention", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_under_cpu_bfloat16_autocast_is_finite_and_close_to_float32(return_attention, norm_first):
    runtime.setup(21, device="cpu")
    encoder = Encoder(2, 64, 4, 128, dropout=0.0, activation="gelu", norm_first=norm_first).eval()
    x = torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(21))
    mask = padding_mask_from_lengths([16, 11, 5, 0], 16)
    assert not mask[-1].any()  # one row attends to nothing at all
    with torch.no_grad():
        reference = encoder(x, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = encoder(x, mask, return_attention=return_attention)
    if return_attention:
        out, weights = out
        assert all(torch.isfinite(w).all() for w in weights)
        assert all((w[-1] == 0).all() for w in weights)  # the fully masked row gets zero weights
    assert torch.isfinite(out).all()
    error = (out.float() - reference).abs().max().item()
    # bfloat16 keeps 8 bits of mantissa: a few hundredths on unit-size outputs, yet clearly not float32
    assert 1e-4 < error < 0.15, error
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_gradients_are_finite_under_cpu_bfloat16_autocast(need_weights):
    runtime.setup(22, device="cpu")
    mha = MultiHeadAttention(32, 4).train()
    x = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(22)).requires_grad_()
    mask = padding_mask_from_lengths([10, 5, 0], 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = mha(x, attention_mask=mask, need_weights=need_weights)
    assert out.dtype == torch.bfloat16  # the projections did run in bfloat16
    assert (out[-1] == mha.out_proj.bias.to(out.dtype)).all()  # no key: the context is exactly zero
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0].abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


def test_fused_and_explicit_paths_agree_on_fully_masked_rows_with_gradients():
    # float32: the fused kernel must see no all-masked row (its backward would be 0/0 there).
    runtime.setup(23, device="cpu")
    mha = MultiHeadAttention(16, 2)
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(23))
    mask = torch.tensor([[True, True, True, False, False], [False] * 5])
    grads = []
    for need_weights in (False, True):
        xi = x.clone().requires_grad_()
        out, _ = mha(xi, attention_mask=mask, need_weights=need_weights)
        out.square().sum().backward()
        grads.append((out.detach(), xi.grad))
    (fused, fused_grad), (explicit, explicit_grad) = grads
    torch.testing.assert_close(fused, explicit)
    torch.testing.assert_close(fused_grad, explicit_grad)
    assert torch.isfinite(fused_grad).all()


def test_fused_attention_kernels_names_the_cpu_kernel():
    mha = MultiHeadAttention(16, 2).eval()
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(24))
    assert fused_attention_kernels(lambda: mha(x)) == ["aten::_scaled_dot_product_flash_attention_for_cpu"]
    assert fused_attention_kernels(lambda: mha(x, need_weights=True)) == []  # explicit: plain matmuls
    encoder = Encoder(3, 16, 2, 32)
    assert len(fused_attention_kernels(lambda: encoder(x))) == 3  # one call per layer


def test_ours_and_torch_encoder_agree_under_cpu_bfloat16_autocast():
    # Both run their matmuls in bfloat16: each is a few thousandths off its float32 output, and
    # the two agree with each other to bfloat16 accuracy.
    runtime.setup(25, device="cpu")
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
    theirs = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    ours = Encoder.from_torch(theirs).eval()
    x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(25))
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    with torch.no_grad():
        reference = ours(x, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, ref = ours(x, mask), theirs(x, src_key_padding_mask=to_torch_key_padding_mask(mask))
    for result in (out, ref):
        error = (result.float() - reference)[mask].abs().max().item()
        assert 1e-4 < error < 0.1, error
    torch.testing.assert_close(out.float()[mask], ref.float()[mask], atol=0.05, rtol=0.05)


def test_fused_attention_kernels_leaves_nothing_on_stderr(capfd):
    # The profiler's C++ back end logs "profiler_start/stop" lines to file descriptor 2; a
    # notebook would store them (time-stamped) as an output, so the helper silences them.
    mha = MultiHeadAttention(8, 2)
    assert fused_attention_kernels(lambda: mha(torch.randn(1, 4, 8))) != []
    captured = capfd.readouterr()
    assert "profiler" not in captured.err and captured.err == ""
    os.write(2, b"still connected\n")  # and stderr works again afterwards
    assert capfd.readouterr().err == "still connected\n"
