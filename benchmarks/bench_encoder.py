"""Our Encoder beside torch.nn.TransformerEncoder, in one process, reported as time ratios.

Size of all-MiniLM-L6-v2 (D 384, 12 heads, d_ff 1536, 6 layers, GELU, post-LN), B 8, T 128,
float32. Each row is the median of ``--repeats`` timed runs after ``--warmup`` untimed ones.
Prints a markdown table and writes it to ``_build/bench/encoder.md``.

    python benchmarks/bench_encoder.py [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from transformer_course import runtime
from transformer_course.encoder import Encoder

D, HEADS, D_FF, LAYERS, B, T = 384, 12, 1536, 6, 8, 128


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_step(model: nn.Module, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One forward, backward and AdamW step of ``model`` on a mean-square loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward().square().mean().backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = runtime.setup(0, device="cpu")
    layer = nn.TransformerEncoderLayer(D, HEADS, D_FF, dropout=0.0, activation="gelu", batch_first=True)
    theirs = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False).to(device)
    ours = Encoder.from_torch(theirs)
    x = torch.randn(B, T, D, device=device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    mask[:, 3 * T // 4:] = False  # a quarter of every row is padding

    def ours_explicit() -> torch.Tensor:
        return ours(x, mask, return_attention=True)[0]

    cases: dict[str, dict[str, Callable[[], object]]] = {
        "eval forward": {},
        "training step": {},
    }
    theirs.eval()
    ours.eval()
    with torch.inference_mode():
        for name, fn in {
            "torch.nn.TransformerEncoder": lambda: theirs(x, src_key_padding_mask=~mask),
            "ours, fused attention": lambda: ours(x, mask),
            "ours, explicit attention": ours_explicit,
        }.items():
            cases["eval forward"][name] = median_seconds(fn, args.warmup, args.repeats)
    theirs.train()
    ours.train()
    for name, fn in {
        "torch.nn.TransformerEncoder": training_step(theirs, lambda: theirs(x, src_key_padding_mask=~mask)),
        "ours, fused attention": training_step(ours, lambda: ours(x, mask)),
        "ours, explicit attention": training_step(ours, ours_explicit),
    }.items():
        cases["training step"][name] = median_seconds(fn, args.warmup, max(3, args.repeats // 3))

    lines = [
        f"Encoder D {D}, {HEADS} heads, d_ff {D_FF}, {LAYERS} layers, B {B}, T {T}, float32, "
        f"{args.threads} threads, torch {torch.__version__}",
        "",
        "| case | implementation | median ms | ratio to torch |",
        "| --- | --- | ---: | ---: |",
    ]
    for case, timings in cases.items():
        reference = timings["torch.nn.TransformerEncoder"]
        for name, seconds in timings.items():
            lines.append(f"| {case} | {name} | {seconds * 1e3:.1f} | {seconds / reference:.2f} |")
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).resolve().parents[1] / "_build" / "bench" / "encoder.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
