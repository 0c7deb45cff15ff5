"""The encoder's padding-free path (``padding_free=True``): the real tokens packed into one
(N, D) matrix give what the padded path gives on them, in eval and in training, for every
padding pattern; the padded positions hold zeros; bad input gets a clear error."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_course.attention import MultiHeadAttention
from transformer_course.bert import BertStyleConfig, PretrainedEncoder
from transformer_course.encoder import Encoder
from transformer_course.packing import Packing

B, T, D, H = 4, 9, 16, 4


def _encoder(norm_first: bool = False, residual: bool = True, dropout: float = 0.0) -> Encoder:
    torch.manual_seed(0)
    return Encoder(2, D, H, 32, dropout=dropout, activation="gelu", norm_first=norm_first,
                   residual=residual).eval()


def _masks() -> dict[str, torch.Tensor]:
    """Padding patterns (True = real token), each (B, T)."""
    lengths = torch.tensor([9, 5, 7, 2])
    right = torch.arange(T)[None] < lengths[:, None]
    return {
        "none": torch.ones(B, T, dtype=torch.bool),
        "right, varied": right,
        "left, varied": right.flip(1),
        "a quarter of every row": torch.arange(T)[None].expand(B, T) < T - T // 4,
        "one real token per row": torch.arange(T)[None].expand(B, T) == 0,
        "holes": torch.rand(B, T, generator=torch.Generator().manual_seed(3)) < 0.6,
    }


@pytest.mark.parametrize("pattern", list(_masks()))
@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_free_equals_the_padded_path_on_real_tokens(pattern, norm_first):
    mask = _masks()[pattern]
    mask[:, 0] = True  # no row of padding only here (see the test below)
    encoder = _encoder(norm_first)
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        padded = encoder(x, mask)
        packed = encoder(x, mask, padding_free=True)
    assert packed.shape == padded.shape == (B, T, D)
    torch.testing.assert_close(packed[mask], padded[mask], atol=1e-5, rtol=0)
    assert torch.count_nonzero(packed[~mask]) == 0  # the padded positions are zeros


def test_integer_mask_and_no_mask():
    encoder = _encoder()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(2))
    mask = _masks()["right, varied"]
    with torch.no_grad():
        torch.testing.assert_close(encoder(x, mask.long(), padding_free=True),
                                   encoder(x, mask, padding_free=True))
        # Without a mask there is no padding to skip: the padded path's output (to rounding:
        # this path's Q, K, V matmul is one stacked product, whose sums a BLAS may order anew).
        torch.testing.assert_close(encoder(x, padding_free=True), encoder(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="return_attention=True needs the padded path"):
        encoder(x, return_attention=True, padding_free=True)


def test_rows_of_padding_only_give_zeros_and_leave_the_other_rows_alone():
    encoder = _encoder()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(4))
    mask = _masks()["right, varied"].clone()
    mask[2] = False  # row 2: padding only
    with torch.no_grad():
        packed = encoder(x, mask, padding_free=True)
        padded = encoder(x, mask)
    assert torch.isfinite(packed).all() and torch.count_nonzero(packed[2]) == 0
    torch.testing.assert_close(packed[mask], padded[mask], atol=1e-5, rtol=0)
    with torch.no_grad():  # every row padding: nothing to compute, zeros back
        nothing = encoder(x, torch.zeros(B, T, dtype=torch.bool), padding_free=True)
    assert nothing.shape == (B, T, D) and torch.count_nonzero(nothing) == 0


@pytest.mark.parametrize("norm_first", [False, True])
def test_training_gradients_equal_the_padded_path(norm_first):
    """Autograd follows the gather and the scatter: a loss on the real tokens has the same
    parameter gradients on both paths (dropout off, so that both draw nothing)."""
    ours = _encoder(norm_first).train()
    theirs = copy.deepcopy(ours)
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(5))
    mask = _masks()["holes"]
    mask[:, 0] = True
    ours(x, mask, padding_free=True)[mask].square().sum().backward()
    theirs(x, mask)[mask].square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_training_with_dropout_runs_and_differs_from_eval():
    encoder = _encoder(dropout=0.1).train()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(6))
    mask = _masks()["right, varied"]
    out = encoder(x, mask, padding_free=True)
    out[mask].sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    with torch.no_grad():
        assert not torch.allclose(out, encoder.eval()(x, mask, padding_free=True))


@pytest.mark.parametrize("pattern", ["right, varied", "a quarter of every row"])
def test_bfloat16_weights_close_to_the_padded_path(pattern):
    mask = _masks()[pattern]
    encoder = _encoder().to(torch.bfloat16)
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    with torch.no_grad():
        packed = encoder(x, mask, padding_free=True)
        padded = encoder(x, mask)
    assert packed.dtype == torch.bfloat16
    # bfloat16 keeps 8 bits: the two paths round differently (other matrix shapes), by a few ulps.
    torch.testing.assert_close(packed[mask].float(), padded[mask].float(), atol=5e-2, rtol=2e-2)


def test_autocast_close_to_float32():
    encoder = _encoder()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(8))
    mask = _masks()["left, varied"]
    with torch.no_grad():
        full = encoder(x, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = encoder(x, mask, padding_free=True)
    torch.testing.assert_close(mixed[mask].float(), full[mask], atol=5e-2, rtol=5e-2)


def test_bad_input_gets_clear_errors():
    encoder = _encoder()
    x = torch.randn(B, T, D)
    mask = _masks()["right, varied"]
    with pytest.raises(ValueError, match="padding mask of shape"):
        encoder(x, mask[:, None, None, :], padding_free=True)  # a 4-D mask
    with pytest.raises(ValueError, match="padding mask of shape"):
        encoder(x, mask[:, :5], padding_free=True)  # the wrong T
    with pytest.raises(ValueError, match="return_attention=True needs the padded path"):
        encoder(x, mask, return_attention=True, padding_free=True)
    with pytest.raises(TypeError, match="padding_free: expected a bool"):
        encoder(x, mask, padding_free="yes")
    with pytest.raises(ValueError, match="only 0 and 1"):
        encoder(x, mask.long() * 2, padding_free=True)
    with pytest.raises(TypeError, match="dtype torch.bool"):
        encoder(x, mask.float(), padding_free=True)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, D=16\)"):
        encoder(x[0], mask, padding_free=True)


def test_packing_round_trip_and_layout():
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    packing = Packing.from_mask(mask)
    assert packing.lengths == (2, 2, 0, 4, 1) and packing.shape == (5, 4)
    assert packing.index.tolist() == [1, 2, 4, 5, 12, 13, 14, 15, 16]
    # rows 0 and 1 (2 tokens each) are one run; the empty row is skipped; then 4, then 1
    assert packing.runs == ((0, 2, 2), (4, 1, 4), (8, 1, 1))
    x = torch.randn(5, 4, 3)
    packed = packing.pack(x)
    assert packed.shape == (9, 3)
    assert torch.equal(packing.unpack(packed), x * mask[:, :, None])
    even = Packing.from_mask(torch.ones(2, 3, dtype=torch.bool))
    assert even.runs == ((0, 2, 3),)  # one batch, one attention call
    assert even == Packing.unpadded(2, 3) and even.index is None  # nothing to gather or scatter
    full = torch.randn(2, 3, 4)
    assert even.pack(full).data_ptr() == full.data_ptr()  # a view: packing copies nothing
    assert torch.equal(even.unpack(even.pack(full)), full)
    with pytest.raises(ValueError, match="B: expected a positive int"):
        Packing.unpadded(0, 3)
    assert Packing.from_mask(torch.zeros(2, 3, dtype=torch.bool)).runs == ()


def test_attend_packed_equals_masked_attention():
    torch.manual_seed(9)
    mha = MultiHeadAttention(D, H).eval()
    x = torch.randn(B, T, D)
    mask = _masks()["holes"]
    mask[:, 0] = True
    packing = Packing.from_mask(mask)
    with torch.no_grad():
        packed = mha.attend_packed(packing.pack(x), packing)
        padded = mha(x, attention_mask=mask)[0]
    torch.testing.assert_close(packed, padded[mask], atol=1e-6, rtol=0)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, T), min_size=1, max_size=5), left=st.booleans(),
       norm_first=st.booleans())
def test_any_lengths_equal_the_padded_path(lengths, left, norm_first):
    encoder = _encoder(norm_first)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    if left:
        mask = mask.flip(1)
    x = torch.randn(len(lengths), T, D, generator=torch.Generator().manual_seed(sum(lengths)))
    with torch.no_grad():
        packed = encoder(x, mask, padding_free=True)
        padded = encoder(x, mask)
    torch.testing.assert_close(packed[mask], padded[mask], atol=1e-5, rtol=0)


def test_pretrained_encoder_padding_free():
    config = BertStyleConfig(vocab_size=20, max_len=16, d_model=8, num_layers=2, num_heads=2, d_ff=16)
    torch.manual_seed(10)
    model = PretrainedEncoder(config).eval()
    ids = torch.randint(5, 20, (3, 7), generator=torch.Generator().manual_seed(11))
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6])
    with torch.no_grad():
        packed = model(ids, mask, padding_free=True)
        padded = model(ids, mask)
    torch.testing.assert_close(packed[mask.bool()], padded[mask.bool()], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="return_attention=True needs the padded path"):
        model(ids, mask, return_attention=True, padding_free=True)
