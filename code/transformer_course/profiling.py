"""Which operators ran: torch's profiler, asked quietly.

The fused attention function picks its kernel at run time from the device, dtype, shapes and
mask. :func:`fused_attention_kernels` asks torch's profiler which one it picked, so that the
scale appendix and the benchmarks can say which kernel they measured; :func:`operator_calls`
counts the calls of any operators, so that the appendix and the tests can show that a fused
path ran one call where the plain one runs several.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

__all__ = ["fused_attention_kernels", "operator_calls"]


def fused_attention_kernels(fn: Callable[[], object]) -> list[str]:
    """Names of the attention kernels that ``torch.nn.functional.scaled_dot_product_attention``
    picked while ``fn()`` ran, one per call, in call order.

    ``aten::_scaled_dot_product_flash_attention_for_cpu`` on CPU;
    ``aten::_scaled_dot_product_flash_attention`` (no mask, half precision),
    ``aten::_scaled_dot_product_efficient_attention`` (memory-efficient, masks and float32) or
    ``aten::_scaled_dot_product_cudnn_attention`` on CUDA; and
    ``aten::_scaled_dot_product_attention_math``, the unfused fallback that forms the whole
    (T, T) score matrix. The profiler records the chosen operator on the CPU side, so this works
    on every device. ``fn`` runs once.

    Examples:
        >>> import torch
        >>> from transformer_course.attention import MultiHeadAttention
        >>> mha = MultiHeadAttention(d_model=8, num_heads=2)
        >>> fused_attention_kernels(lambda: mha(torch.randn(1, 4, 8)))
        ['aten::_scaled_dot_product_flash_attention_for_cpu']
        >>> fused_attention_kernels(lambda: mha(torch.randn(1, 4, 8), need_weights=True))
        []
    """
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    # The public op `aten::scaled_dot_product_attention` dispatches to one `aten::_scaled_dot_...`
    # kernel; the efficient and flash kernels call `aten::_efficient_attention_forward` and
    # `aten::_flash_attention_forward` inside it, which are not listed again.
    return [e.name for e in events if e.name.startswith("aten::_scaled_dot_product_")]


def operator_calls(fn: Callable[[], object], names: Iterable[str]) -> dict[str, int]:
    """How many times ``fn()`` called each of the operators ``names`` (``"aten::addmm"``, ...);
    an operator that was not called is left out. ``fn`` runs once.

    Examples:
        >>> import torch
        >>> linear = torch.nn.Linear(4, 4)
        >>> operator_calls(lambda: [linear(torch.randn(2, 4)) for _ in range(3)], ["aten::addmm", "aten::mm"])
        {'aten::addmm': 3}
    """
    from torch.profiler import ProfilerActivity, profile

    wanted = set(names)
    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: e.count for e in prof.key_averages() if e.key in wanted}


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send the process's stderr (file descriptor 2) to /dev/null for the block.

    The profiler's C++ back end writes a time-stamped "profiler_start" / "profiler_stop" log
    line there on every run, below Python's reach; in a notebook it would become an output
    that changes on every run. Python-level warnings raised meanwhile are lost too.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
