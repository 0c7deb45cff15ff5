"""Section 7: one attention layer from short to long sequences at a fixed number of tokens: time
and peak memory of the explicit path and the fused one."""

from __future__ import annotations

import torch

from transformer_course.attention import MultiHeadAttention

from .measure import compare, peak_bytes
from .models import Sizes
from .report import Report


def sweep_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 7: one attention layer, explicit vs fused, from short to long at fixed B·T."""
    s = sizes
    mha = MultiHeadAttention(s.d_model, s.num_heads).to(device).eval()
    rows = []
    gen = torch.Generator().manual_seed(2)
    for length in s.sweep_lengths:
        batch = max(1, s.sweep_tokens // length)
        x = torch.randn(batch, length, s.d_model, generator=gen).to(device)
        impls = {
            "explicit": lambda x=x: mha(x, need_weights=True),
            "fused": lambda x=x: mha(x),
        }
        with torch.inference_mode():
            peaks = {name: peak_bytes(fn, device) for name, fn in impls.items()}
            weights_bytes = batch * s.num_heads * length * length * x.element_size()
            # A self-check of the measurement: the explicit path returns the (B, H, T, T) weights.
            assert peaks["explicit"] >= weights_bytes, (peaks, weights_bytes)
            # Long explicit calls take seconds: fewer repeats there keep the sweep short.
            repeats = max(2, min(args.repeats, int(args.repeats * 512 / length)))
            times = compare(impls, 1, repeats, args.min_run_time)
        rows.append([str(length), str(batch), f"{times['explicit'] * 1e3:.1f}", f"{times['fused'] * 1e3:.1f}",
                     f"{peaks['explicit'] / 2**20:.1f}", f"{peaks['fused'] / 2**20:.1f}",
                     f"{peaks['fused'] / peaks['explicit']:.3f}"])
        report.values["sweep longest memory ratio"] = peaks["fused"] / peaks["explicit"]
        report.values["sweep longest length"] = length
    report.lines += [
        f"## 7. One attention layer (D {s.d_model}, {s.num_heads} heads), B·T = {s.sweep_tokens}, "
        f"no mask, eval, float32",
        "",
        "Peak memory: the tensors allocated during one call above what was live before "
        "(CUDA: `max_memory_allocated`; CPU: the running sum of the profiler's allocation events). "
        "The explicit path returns the weights (B, H, T, T); the fused one never forms them.",
        "",
    ]
    report.table(["T", "B", "explicit ms", "fused ms", "explicit peak MiB", "fused peak MiB",
                  "fused / explicit memory"], rows, "rrrrrrr", "sweep")
