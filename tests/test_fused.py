"""The fused kernels of the padding-free path (``transformer_course.fused``): the same numbers as
the plain operators (in bfloat16, rounded once instead of several times), taken only where they
apply, and never stale after the weights change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transformer_course import fused
from transformer_course.attention import MultiHeadAttention
from transformer_course.encoder import Encoder
from transformer_course.packing import Packing
from transformer_course.profiling import operator_calls

COUNTED = ["aten::addmm", "aten::_addmm_activation", "aten::gelu", "aten::gelu_"]


def _operators(fn) -> dict[str, int]:
    """The matrix products and GELUs ``fn()`` runs, each with its number of calls."""
    return operator_calls(fn, COUNTED)


ONEDNN = "mkldnn::_linear_pointwise"
needs_onednn_bf16 = pytest.mark.skipif(torch.bfloat16 not in fused._ONEDNN_DTYPES,
                                       reason="torch reports no oneDNN bfloat16 kernels on this CPU")


def test_the_pinned_torch_has_the_fused_operators():
    # Private operators of torch: if an upgrade drops one, the fused path silently becomes the
    # plain one; this test says so instead.
    assert fused._ADDMM_ACTIVATION is torch._addmm_activation
    assert fused._LINEAR_POINTWISE is torch.ops.mkldnn._linear_pointwise
    assert fused._LAY_OUT is torch.ops.mkldnn._reorder_linear_weight
    assert (torch.bfloat16 in fused._ONEDNN_DTYPES) == torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _max_error(out: torch.Tensor, exact: torch.Tensor) -> float:
    return (out.double() - exact).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
def test_low_precision_linears_run_on_onednn_and_round_once(activation, dtype):
    """oneDNN's linear layer adds the bias (and applies the activation) before rounding to the
    dtype, so it is at least as close to the exact result as the plain operators, which round
    the product, then the sum with the bias, then the activation's result."""
    if dtype not in fused._ONEDNN_DTYPES:
        pytest.skip(f"torch reports no oneDNN {dtype} kernels on this CPU")
    torch.manual_seed(1)
    layer = nn.Linear(64, 96).to(dtype)
    x = torch.randn(2, 40, 64, dtype=dtype)
    plain = {None: lambda h: h, "gelu": F.gelu, "relu": F.relu}[activation]
    run = ((lambda: fused.linear(x, layer)) if activation is None
           else (lambda: fused.linear_activation(x, layer, activation)))
    with torch.no_grad():
        out, reference = run(), plain(layer(x))
        calls = operator_calls(run, [ONEDNN, "aten::addmm"])
    exact = plain(F.linear(x.double(), layer.weight.double(), layer.bias.double()))
    assert out.shape == (2, 40, 96) and out.dtype == dtype
    assert calls == {ONEDNN: 1}
    assert _max_error(out, exact) <= _max_error(reference, exact)
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)


@needs_onednn_bf16
def test_bfloat16_qkv_projection_runs_on_onednn():
    torch.manual_seed(2)
    attn = MultiHeadAttention(d_model=32, num_heads=4).to(torch.bfloat16).eval()
    x = torch.randn(20, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        calls = operator_calls(lambda: fused.project_qkv(attn, x), [ONEDNN, "aten::addmm"])
        q, k, v = fused.project_qkv(attn, x)
        torch.testing.assert_close(k, attn.k_proj(x), atol=0.05, rtol=0.02)
    assert calls == {ONEDNN: 1}


def test_onednn_linears_serve_only_low_precision_without_autograd(monkeypatch):
    torch.manual_seed(3)
    layer = nn.Linear(8, 16)
    x = torch.randn(5, 8)
    with torch.no_grad():  # float32: torch's own matmul, bit for bit the module's
        assert operator_calls(lambda: fused.linear(x, layer), [ONEDNN]) == {}
        assert torch.equal(fused.linear(x, layer), layer(x))
        with pytest.raises(RuntimeError):  # mixed dtypes fail as the module fails
            fused.linear(x.bfloat16(), layer)
    low = nn.Linear(8, 16).to(torch.bfloat16)
    x16 = x.bfloat16().requires_grad_()
    out = fused.linear(x16, low)  # autograd records: the module, whose gradients exist
    out.sum().backward()
    assert x16.grad is not None and low.weight.grad is not None
    monkeypatch.setattr(fused, "_ONEDNN_DTYPES", ())  # a CPU without oneDNN bfloat16 kernels
    with torch.no_grad():
        assert operator_calls(lambda: fused.linear(x16, low), [ONEDNN]) == {}
        assert torch.equal(fused.linear(x16, low), low(x16))
        assert "aten::_addmm_activation" in _operators(lambda: fused.linear_activation(x16, low, "gelu"))


LAY_OUT = "mkldnn::_reorder_linear_weight"


@needs_onednn_bf16
def test_each_weight_is_laid_out_once_and_again_after_every_change():
    """oneDNN's layout of a weight is made on the first call and reused; a write in place, a
    copied state dict, a new tensor or a new dtype makes a new one, so no call reads a stale
    layout: every result stays that of the module as it is now."""
    torch.manual_seed(4)
    layer = nn.Linear(32, 48).to(torch.bfloat16)
    x = torch.randn(7, 32, dtype=torch.bfloat16)

    def layouts_and_check(calls: int = 1) -> int:
        """How many layouts ``calls`` calls of fused.linear made; each call's result is checked."""
        def run() -> None:
            for _ in range(calls):
                torch.testing.assert_close(fused.linear(x, layer), layer(x), atol=0.05, rtol=0.02)
        with torch.no_grad():
            return operator_calls(run, [LAY_OUT]).get(LAY_OUT, 0)

    assert layouts_and_check(calls=3) == 1  # laid out once, read three times
    assert layouts_and_check() == 0
    with torch.no_grad():
        layer.weight.mul_(-2.0)  # written in place, as an optimizer step writes it
    assert layouts_and_check(calls=2) == 1
    layer.load_state_dict(nn.Linear(32, 48).to(torch.bfloat16).state_dict())  # copied in place
    assert layouts_and_check() == 1
    layer.weight = nn.Parameter(torch.randn(48, 32, dtype=torch.bfloat16))  # a new tensor
    assert layouts_and_check() == 1
    if torch.float16 in fused._ONEDNN_DTYPES:
        layer.half()  # the same parameter, new memory of another dtype
        x = x.half()
        assert layouts_and_check() == 1


@needs_onednn_bf16
def test_a_layout_is_freed_with_its_weight_and_none_is_kept_for_inference_tensors():
    import gc

    torch.manual_seed(5)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    layer = nn.Linear(16, 8).to(torch.bfloat16)
    with torch.no_grad():
        fused.linear(x, layer)
    assert layer.weight in fused._LAID_OUT
    kept = len(fused._LAID_OUT)
    del layer
    gc.collect()
    assert len(fused._LAID_OUT) == kept - 1
    with torch.inference_mode():  # an inference tensor counts no writes: no layout is kept
        frozen = nn.Linear(16, 8).to(torch.bfloat16)
        calls = operator_calls(lambda: fused.linear(x, frozen), [ONEDNN, LAY_OUT])
        torch.testing.assert_close(fused.linear(x, frozen), frozen(x), atol=0.05, rtol=0.02)
    assert calls == {ONEDNN: 1} and frozen.weight not in fused._LAID_OUT
    attn = MultiHeadAttention(d_model=16, num_heads=2).to(torch.bfloat16)
    with torch.inference_mode():  # the stacked Q, K, V weight is built as a normal tensor
        fused.project_qkv(attn, x)
        assert operator_calls(lambda: fused.project_qkv(attn, x), [ONEDNN, LAY_OUT]) == {ONEDNN: 1}
    stacked = attn._stacked_qkv[1]
    assert not stacked.is_inference() and stacked in fused._LAID_OUT


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_linear_activation_equals_the_plain_operators_and_runs_fused(activation):
    torch.manual_seed(0)
    linear = nn.Linear(8, 32)
    x = torch.randn(2, 5, 8)
    plain = {"gelu": F.gelu, "relu": F.relu}[activation]
    with torch.no_grad():
        out = fused.linear_activation(x, linear, activation)
        assert out.shape == (2, 5, 32)
        assert torch.equal(out, plain(linear(x)))  # the same matmul, the same activation kernel
        assert "aten::_addmm_activation" in _operators(lambda: fused.linear_activation(x, linear, activation))
    with torch.inference_mode():
        assert torch.equal(fused.linear_activation(x, linear, activation), out)


def test_linear_activation_falls_back_where_the_fused_kernel_does_not_apply():
    torch.manual_seed(0)
    linear = nn.Linear(8, 32)
    x = torch.randn(3, 8, requires_grad=True)
    # Autograd records: the plain operators, whose gradients exist.
    out = fused.linear_activation(x, linear, "gelu")
    assert "aten::_addmm_activation" not in _operators(lambda: fused.linear_activation(x, linear, "gelu"))
    out.sum().backward()
    expected = torch.autograd.grad(F.gelu(linear(x)).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected)
    # No bias: the plain operators too.
    no_bias = nn.Linear(8, 32, bias=False)
    with torch.no_grad():
        assert torch.equal(fused.linear_activation(x, no_bias, "gelu"), F.gelu(no_bias(x)))
        # A dtype that does not match the weight's fails as the plain operators fail.
        with pytest.raises(RuntimeError):
            fused.linear_activation(x.double(), linear, "gelu")


def test_linear_activation_under_autocast_matches_the_plain_operators():
    torch.manual_seed(0)
    linear = nn.Linear(8, 32)
    x = torch.randn(4, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused.linear_activation(x, linear, "gelu")
        expected = F.gelu(linear(x))
    assert out.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(out, expected)


def test_project_qkv_equals_the_three_projections():
    torch.manual_seed(0)
    attn = MultiHeadAttention(d_model=16, num_heads=4).eval()
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        q, k, v = fused.project_qkv(attn, x)
        for got, proj in zip((q, k, v), (attn.q_proj, attn.k_proj, attn.v_proj), strict=True):
            assert got.shape == (2, 7, 16)
            torch.testing.assert_close(got, proj(x), atol=1e-6, rtol=0)
        ops = _operators(lambda: fused.project_qkv(attn, x))
        separate = _operators(lambda: (attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)))
    assert ops["aten::addmm"] == 1 and separate["aten::addmm"] == 3  # one matmul instead of three
    storages = {t.untyped_storage().data_ptr() for t in (q, k, v)}
    assert len(storages) == 1  # three views of one (2, 7, 48) product


def test_project_qkv_follows_every_change_of_the_weights():
    torch.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, num_heads=2).eval()
    x = torch.randn(5, 8)

    def check() -> None:
        with torch.no_grad():
            q, k, v = fused.project_qkv(attn, x.to(attn.q_proj.weight.dtype))
            xs = x.to(attn.q_proj.weight.dtype)
            for got, proj in zip((q, k, v), (attn.q_proj, attn.k_proj, attn.v_proj), strict=True):
                torch.testing.assert_close(got, proj(xs), atol=1e-6, rtol=0)

    check()
    with torch.no_grad():
        attn.k_proj.weight.mul_(2.0)  # written in place, as an optimizer step writes it
    check()
    other = MultiHeadAttention(d_model=8, num_heads=2)
    attn.load_state_dict(other.state_dict())  # copied in place
    check()
    attn.v_proj.bias = nn.Parameter(torch.randn(8))  # a new tensor
    check()
    attn.double()  # new tensors of another dtype
    check()


def test_project_qkv_records_gradients_through_the_plain_projections():
    torch.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, num_heads=2)
    x = torch.randn(5, 8)
    q, k, v = fused.project_qkv(attn, x)
    (q.sum() + k.sum() + v.sum()).backward()
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
        assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_the_padding_free_path_runs_the_fused_kernels_and_the_padded_path_does_not():
    torch.manual_seed(0)
    encoder = Encoder(2, 16, 4, 32, dropout=0.0, activation="gelu").eval()
    x = torch.randn(3, 6, 16)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    with torch.no_grad():
        fast = _operators(lambda: encoder(x, mask, padding_free=True))
        plain = _operators(lambda: encoder(x, mask))
        torch.testing.assert_close(encoder(x, mask, padding_free=True)[mask.bool()],
                                   encoder(x, mask)[mask.bool()], atol=1e-5, rtol=0)
    assert "aten::_addmm_activation" in fast and "aten::gelu" not in fast
    assert "aten::_addmm_activation" not in plain and "aten::gelu" in plain


@needs_onednn_bf16
def test_the_bfloat16_padding_free_path_runs_every_linear_on_onednn():
    """Four linear layers per layer (Q, K, V stacked, the output projection, linear1 with GELU,
    linear2), none of them torch's addmm; the real tokens as the padded path computes them."""
    torch.manual_seed(0)
    encoder = Encoder(2, 16, 4, 32, dropout=0.0, activation="gelu").to(torch.bfloat16).eval()
    x = torch.randn(3, 6, 16, dtype=torch.bfloat16)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4]).bool()
    with torch.no_grad():
        calls = operator_calls(lambda: encoder(x, mask, padding_free=True), [ONEDNN, *COUNTED])
        torch.testing.assert_close(encoder(x, mask, padding_free=True)[mask], encoder(x, mask)[mask],
                                   atol=0.05, rtol=0.02)
    assert calls == {ONEDNN: 8}


def test_project_qkv_with_spare_rows_writes_the_same_product_and_zeros_after_it():
    torch.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, num_heads=2)
    x = torch.randn(5, 8)
    with torch.no_grad():
        plain = fused.project_qkv(attn, x)
        q, k, v = fused.project_qkv(attn, x, spare_rows=3)
        for got, expected in zip((q, k, v), plain, strict=True):
            assert got.shape == (5, 8) and torch.equal(got, expected)  # addmm into rows, bit for bit
        rows = q.as_strided((8, 24), (24, 1), q.storage_offset())  # the whole (N + 3, 3D) tensor
        assert torch.equal(rows[5:], torch.zeros(3, 24))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # in autocast's dtype, as F.linear runs
            q16 = fused.project_qkv(attn, x, spare_rows=3)[0]
            assert q16.dtype == torch.bfloat16 and torch.equal(q16, fused.project_qkv(attn, x)[0])
        with pytest.raises(ValueError, match=r"spare rows need a packed \(N, D\) matrix"):
            fused.project_qkv(attn, x.view(1, 5, 8), spare_rows=3)


def test_padded_keys_apply_only_where_the_view_is_safe_and_worth_it():
    kv = torch.randn(2 * 5 + 11, 8)
    k, v = kv[:10], kv[:10]
    keys, values, mask = fused.padded_keys(k, v, start=0, rows=2, length=5, num_heads=2)
    assert keys.shape == values.shape == (2, 2, 16, 4) and mask.shape == (1, 1, 1, 16)
    assert mask.flatten().tolist() == [True] * 5 + [False] * 11
    # Row 1's head 1, key 2 is token 5 + 2, columns 4..7.
    assert torch.equal(keys[1, 1, 2], kv[7, 4:])
    assert fused.padded_keys(k, v, 0, 2, 16, 2) is None  # already a multiple of KEY_BLOCK
    short = torch.randn(10, 8)  # no storage after the last row: the view would read past it
    assert fused.padded_keys(short, short, 0, 2, 5, 2) is None
    assert fused.padded_keys(k.clone().requires_grad_(), v, 0, 2, 5, 2) is None  # autograd records


def _packed_attention(attn, lengths, x, grad=False):
    """attn.attend_packed on rows of ``lengths`` tokens taken from x (B, T, D), and the padded
    path's result on the same real tokens."""
    real = torch.arange(x.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    packing = Packing.from_mask(real)
    with torch.set_grad_enabled(grad):
        return attn.attend_packed(packing.pack(x), packing), attn(x, attention_mask=real)[0][real]


@pytest.mark.parametrize("lengths", [[27, 27, 27, 9], [13], [5, 3, 40, 17, 16], [33, 1, 1]])
def test_attention_on_padded_keys_equals_the_padded_path(lengths):
    torch.manual_seed(1)
    attn = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(len(lengths), max(lengths), 32)
    packed, padded = _packed_attention(attn, lengths, x)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    with_grad, _ = _packed_attention(attn, lengths, x, grad=True)  # own keys only, as the chapters
    torch.testing.assert_close(with_grad, packed, atol=1e-5, rtol=1e-5)


def test_a_row_does_not_see_the_keys_it_reads_on_into():
    """Row 0 (27 tokens) reads keys 27..31 from row 1: masked, they get weight exactly 0, so what
    row 1 holds leaves row 0's result unchanged, bit for bit."""
    torch.manual_seed(2)
    attn = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(2, 27, 32)
    other = x.clone()
    other[1] = 100 * torch.randn(27, 32)
    with torch.no_grad():
        first, _ = _packed_attention(attn, [27, 27], x)
        second, _ = _packed_attention(attn, [27, 27], other)
    assert torch.equal(first[:27], second[:27])
    assert not torch.equal(first[27:], second[27:])


def test_the_padding_free_path_reads_padded_keys_on_unaligned_rows(monkeypatch):
    torch.manual_seed(3)
    attn = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(3, 27, 32)
    applied = []
    original = fused.padded_keys

    def spy(*args):
        result = original(*args)
        applied.append(result is not None)
        return result

    monkeypatch.setattr(fused, "padded_keys", spy)
    with torch.no_grad():
        _packed_attention(attn, [27, 27, 16], x)
    assert applied == [True, False]  # the run of two 27-token rows padded, the 16-token row not


@pytest.mark.parametrize(("lengths", "spare"), [([16, 16, 32], 0), ([16, 27], fused.KEY_BLOCK - 1)])
def test_spare_rows_are_made_only_for_rows_that_read_their_keys_on(monkeypatch, lengths, spare):
    """An aligned batch (the no-padding case) keeps the plain product: no rows to spare."""
    torch.manual_seed(4)
    attn = MultiHeadAttention(d_model=32, num_heads=4).eval()
    asked = []
    original = fused.project_qkv

    def spy(*args, **kwargs):
        asked.append(kwargs["spare_rows"])
        return original(*args, **kwargs)

    monkeypatch.setattr(fused, "project_qkv", spy)
    with torch.no_grad():
        packed, padded = _packed_attention(attn, lengths, torch.randn(len(lengths), max(lengths), 32))
    assert asked == [spare]
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


def test_bucket_rows_rounds_low_precision_batches_up_to_a_multiple_of_64():
    layer = nn.Linear(8, 8)
    x = torch.zeros(100, 8)
    with torch.no_grad():
        assert fused.bucket_rows(x.bfloat16()) == 28 and fused.bucket_rows(x.half()) == 28
        assert fused.bucket_rows(x) == 0  # float32: MKL builds no kernel per shape
        assert fused.bucket_rows(x[:64].bfloat16()) == 0  # a multiple already
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert fused.bucket_rows(x) == 28  # float32 tensors, bfloat16 matmuls
    assert fused.bucket_rows(x.bfloat16(), layer) == 0  # autograd records the layer's weights
    with torch.no_grad():
        assert fused.bucket_rows(x.bfloat16(), layer) == 28


def test_bfloat16_batches_of_different_lengths_share_matmul_shapes_and_lose_nothing(monkeypatch):
    """Under bfloat16 autocast every layer sees a row count that is a multiple of 64 (zero rows
    after the real tokens), and the real tokens' outputs are those of the same forward without
    the zero rows; the padded positions stay zeros."""
    torch.manual_seed(5)
    encoder = Encoder(num_layers=2, d_model=32, num_heads=4, d_ff=64, dropout=0.0, activation="gelu").eval()
    x = torch.randn(3, 27, 32)
    real = torch.arange(27)[None, :] < torch.tensor([[27], [20], [9]])  # 56 real tokens
    rows = []
    original = fused.project_qkv

    def spy(attn, h, **kwargs):
        rows.append(h.shape[0])
        return original(attn, h, **kwargs)

    monkeypatch.setattr(fused, "project_qkv", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bucketed = encoder(x, real, padding_free=True)
        monkeypatch.setattr(fused, "bucket_rows", lambda *args: 0)
        plain = encoder(x, real, padding_free=True)
    assert rows == [64, 64, 56, 56]  # two layers with the zero rows, then two without
    assert bucketed.shape == (3, 27, 32) and bucketed.dtype == plain.dtype
    torch.testing.assert_close(bucketed[real], plain[real], atol=2e-2, rtol=2e-2)  # bfloat16 rounding
    assert bucketed[~real].abs().max() == 0


def test_rows_after_the_real_tokens_change_no_real_token():
    """The layers carry extra rows after the packed real tokens without letting them into any
    real token's attention (float32, whatever the extra rows hold)."""
    torch.manual_seed(6)
    encoder = Encoder(num_layers=2, d_model=32, num_heads=4, d_ff=64, dropout=0.0).eval()
    packing = Packing.from_mask(torch.arange(19)[None, :] < torch.tensor([[19], [13]]))
    tokens = torch.randn(32, 32)  # the 32 real tokens, packed
    with torch.no_grad():
        alone = encoder.encode_packed(tokens, packing)
        x = torch.cat([tokens, 100 * torch.randn(13, 32)])  # 13 rows of noise after them
        for layer in encoder.layers:
            x = layer.encode_packed(x, packing)
    torch.testing.assert_close(x[:32], alone, atol=1e-5, rtol=1e-5)
