"""positional.relative_shift_matrix: PE(pos + k) = M_k PE(pos), one fixed map for every position."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from transformer_course.positional import relative_shift_matrix, sinusoidal_encoding


@given(st.integers(-300, 300), st.integers(1, 48).map(lambda half: 2 * half))
def test_shift_matrix_moves_every_position_by_k(k, d_model):
    pe = sinusoidal_encoding(700, d_model, dtype=torch.float64)  # (700, D)
    m = relative_shift_matrix(k, d_model)  # (D, D)
    start, stop = max(0, -k), min(700, 700 - k)
    shifted = pe[start:stop] @ m.T  # rows: PE(pos) -> PE(pos + k)
    torch.testing.assert_close(shifted, pe[start + k : stop + k], atol=1e-12, rtol=0)


def test_float32_and_float64_precision_on_1024_positions():
    for dtype, tolerance in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        pe = sinusoidal_encoding(1024, 64, dtype=dtype)
        assert pe.dtype == dtype
        for k in (1, 7, 100, 1000):
            m = relative_shift_matrix(k, 64, dtype=dtype)
            assert m.dtype == dtype
            assert (pe[:-k] @ m.T - pe[k:]).abs().max() < tolerance


@given(st.integers(-50, 50), st.integers(-50, 50))
def test_shifts_compose_and_invert(a, b):
    ma, mb = relative_shift_matrix(a, 16), relative_shift_matrix(b, 16)
    torch.testing.assert_close(ma @ mb, relative_shift_matrix(a + b, 16), atol=1e-12, rtol=0)
    torch.testing.assert_close(relative_shift_matrix(-a, 16), ma.T, atol=1e-15, rtol=0)
    torch.testing.assert_close(ma @ ma.T, torch.eye(16, dtype=torch.float64), atol=1e-12, rtol=0)


def test_zero_shift_is_the_identity_and_blocks_are_rotations():
    assert torch.equal(relative_shift_matrix(0, 8), torch.eye(8, dtype=torch.float64))
    m = relative_shift_matrix(5, 8)
    off_block = m.clone()
    for i in range(0, 8, 2):
        block = m[i : i + 2, i : i + 2]
        assert abs(torch.linalg.det(block).item() - 1) < 1e-12
        off_block[i : i + 2, i : i + 2] = 0
    assert torch.count_nonzero(off_block) == 0


def test_float32_default_of_the_table_is_unchanged():
    assert sinusoidal_encoding(4, 6).dtype == torch.float32
    torch.testing.assert_close(
        sinusoidal_encoding(30, 10), sinusoidal_encoding(30, 10, dtype=torch.float64).float(), atol=0, rtol=0
    )


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="even"):
        relative_shift_matrix(1, 7)
    with pytest.raises(TypeError, match="k"):
        relative_shift_matrix(1.5, 8)
    with pytest.raises(TypeError, match="k"):
        relative_shift_matrix(True, 8)
    with pytest.raises(TypeError, match="dtype"):
        relative_shift_matrix(1, 8, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype"):
        sinusoidal_encoding(4, 8, dtype=torch.int32)
    with pytest.raises((TypeError, ValueError), match="d_model"):
        relative_shift_matrix(1, 0)

