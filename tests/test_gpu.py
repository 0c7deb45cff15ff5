"""The GPU path: parity with torch on CUDA, half precision, fused-kernel dispatch, the chapters.

Every test here carries ``@pytest.mark.gpu`` and is skipped without CUDA (tests/conftest.py).
Random data is made on the CPU with a seeded generator, then moved, so CPU and GPU runs see the
same numbers. The CPU side of mixed precision is in tests/test_autocast.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import random_padding_mask
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from book_tools.toc import toc_chapters
from transformer_course import runtime
from transformer_course.attention import MultiHeadAttention, to_torch_key_padding_mask
from transformer_course.encoder import Encoder
from transformer_course.profiling import fused_attention_kernels

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
FLASH = "aten::_scaled_dot_product_flash_attention"
EFFICIENT = "aten::_scaled_dot_product_efficient_attention"
FUSED_KERNELS = (FLASH, EFFICIENT, "aten::_scaled_dot_product_cudnn_attention")


def _encoder_pair(seed: int, norm_first: bool = False) -> tuple[Encoder, nn.TransformerEncoder]:
    """Ours and torch's GELU encoder (D 64, 4 heads, 2 layers) with the same weights, on CUDA, in eval."""
    runtime.setup(seed, device="cpu")
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu", norm_first=norm_first,
                                       batch_first=True)
    theirs = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).to(CUDA).eval()
    return Encoder.from_torch(theirs).eval(), theirs


def test_mha_matches_torch_on_cuda_with_and_without_padding():
    gen = torch.Generator().manual_seed(7)
    theirs = nn.MultiheadAttention(32, 4, batch_first=True)
    ours = MultiHeadAttention.from_torch(theirs).to(CUDA)
    theirs = theirs.to(CUDA)
    x = torch.randn(3, 9, 32, generator=gen).to(CUDA)
    mask = random_padding_mask(gen, 3, 9, full_first=True, short_last=True).to(CUDA)
    for attention_mask in (None, mask):
        key_padding = None if attention_mask is None else to_torch_key_padding_mask(attention_mask)
        ref, _ = theirs(x, x, x, key_padding_mask=key_padding, need_weights=False)
        for need_weights in (False, True):
            out, _ = ours(x, attention_mask=attention_mask, need_weights=need_weights)
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("precision", ["float32", "autocast-bfloat16", "bfloat16"])
def test_encoder_matches_torch_on_cuda_with_padding(precision, norm_first):
    ours, theirs = _encoder_pair(11, norm_first)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(4, 24, 64, generator=gen).to(CUDA)
    mask = random_padding_mask(gen, 4, 24, full_first=True, short_last=True).to(CUDA)
    with torch.inference_mode():
        # float32: what bf16 is measured against
        reference = theirs(x, src_key_padding_mask=to_torch_key_padding_mask(mask)).float()
        if precision == "bfloat16":
            ours, theirs, x = ours.to(torch.bfloat16), theirs.to(torch.bfloat16), x.to(torch.bfloat16)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "autocast-bfloat16"):
            out = ours(x, mask)
            out_explicit, _ = ours(x, mask, return_attention=True)
            ref = theirs(x, src_key_padding_mask=to_torch_key_padding_mask(mask))
    valid = mask[:, :, None].expand_as(out)  # torch's eval fast path zeroes the padded positions
    assert torch.isfinite(out).all() and torch.isfinite(out_explicit).all()
    if precision == "float32":
        torch.testing.assert_close(out[valid], ref[valid], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out_explicit[valid], ref[valid], atol=1e-4, rtol=1e-4)
        return
    # bfloat16 keeps 8 bits of mantissa (relative step 2**-8 = 0.4 %): after two layers the outputs
    # (about unit size, after LayerNorm) are a few hundredths off float32, for ours as for torch's.
    ours_error = (out.float() - reference)[valid].abs().max().item()
    torch_error = (ref.float() - reference)[valid].abs().max().item()
    assert 0 < ours_error < 0.15, ours_error
    assert ours_error <= 2 * torch_error + 0.02, (ours_error, torch_error)
    torch.testing.assert_close(out.float()[valid], ref.float()[valid], atol=0.1, rtol=0.05)
    torch.testing.assert_close(out_explicit.float()[valid], out.float()[valid], atol=0.1, rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("need_weights", [False, True])
def test_no_nan_in_half_precision_with_fully_masked_rows(dtype, need_weights):
    runtime.setup(12, device="cpu")
    encoder = Encoder(2, 64, 4, 128, dropout=0.1, activation="gelu").to(CUDA).train()
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(3, 16, 64, generator=gen).to(CUDA).requires_grad_()
    mask = random_padding_mask(gen, 3, 16, full_first=True, short_last=True)
    mask[1] = False  # a row whose every key is masked: its attention must give zeros, not NaN
    mask = mask.to(CUDA)
    with torch.autocast("cuda", dtype=dtype):
        out = encoder(x, mask, return_attention=need_weights)
        out = out[0] if need_weights else out
    assert out.dtype == torch.float32  # LayerNorm runs in float32 under autocast
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())

    # The explicit path masks with -inf, representable in both half precisions: no weight leaks.
    mha = encoder.layers[0].self_attn.eval()
    with torch.autocast("cuda", dtype=dtype), torch.no_grad():
        _, weights = mha(x.detach(), attention_mask=mask, need_weights=True)
    assert torch.isfinite(weights).all()
    assert (weights[1] == 0).all()  # the fully masked row attends to nothing
    assert (weights.masked_select(~mask[:, None, None, :].expand_as(weights)) == 0).all()


@pytest.mark.parametrize(
    ("dtype", "with_mask", "backend", "expected"),
    [
        (torch.bfloat16, False, SDPBackend.FLASH_ATTENTION, FLASH),
        (torch.float16, False, SDPBackend.FLASH_ATTENTION, FLASH),
        (torch.bfloat16, True, SDPBackend.EFFICIENT_ATTENTION, EFFICIENT),
        (torch.float16, True, SDPBackend.EFFICIENT_ATTENTION, EFFICIENT),
        (torch.float32, True, SDPBackend.EFFICIENT_ATTENTION, EFFICIENT),
        (torch.float32, False, SDPBackend.EFFICIENT_ATTENTION, EFFICIENT),
    ],
)
def test_fused_path_dispatches_to_a_fused_kernel_on_cuda(dtype, with_mask, backend, expected):
    runtime.setup(13, device="cpu")
    mha = MultiHeadAttention(64, 4).to(CUDA).train()
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(2, 32, 64, generator=gen).to(CUDA)
    mask = random_padding_mask(gen, 2, 32, full_first=True, short_last=True).to(CUDA) if with_mask else None

    def forward() -> torch.Tensor:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            return mha(x, attention_mask=mask)[0]

    # Left free, SDPA must not fall back to the unfused math kernel.
    chosen = fused_attention_kernels(forward)
    assert len(chosen) == 1 and chosen[0] in FUSED_KERNELS, chosen
    assert "math" not in chosen[0]
    # Restricted to one backend, that backend runs (or SDPA raises "No available kernel"), forward
    # and backward, with the same result as the free choice.
    free = forward()
    with sdpa_kernel([backend]):
        assert fused_attention_kernels(forward) == [expected]
        restricted = forward()
        restricted.float().square().mean().backward()
    torch.testing.assert_close(restricted.float(), free.float(), atol=2e-2, rtol=2e-2)
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


def test_explicit_path_runs_no_fused_kernel_on_cuda():
    mha = MultiHeadAttention(64, 4).to(CUDA)
    x = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(14)).to(CUDA)
    assert fused_attention_kernels(lambda: mha(x, need_weights=True)) == []


def test_chapters_execute_on_cuda(tmp_path):
    # nbval-lax: on a GPU the chapters must run without error; their stored outputs were made
    # on CPU and are compared only by the strict CPU run of `make nbval`.
    chapters = [f"{chapter}.ipynb" for chapter in toc_chapters(ROOT)]
    assert chapters, "_toc.yml lists no chapter"
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
           "PYTHONHASHSEED": "0"}
    env.pop("MPLBACKEND", None)  # as `make nbval`: the kernel picks its inline backend itself
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600",
         "-p", "no:cacheprovider", "-q", *chapters],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "failed" not in result.stdout
