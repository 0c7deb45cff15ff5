"""What the benchmark measures with: FLOPs, times taken in turns, peak memory, profiles.

FLOPs are counted analytically (:func:`forward_flops`) and by ``FlopCounterMode``; times come
from ``torch.utils.benchmark`` with the implementations of one table in turns (:func:`compare`);
peak memory is that of the tensors one call allocates (:func:`peak_bytes`); one profiled run
says where a forward's time goes (:func:`time_shares`) and whether torch's fast path ran.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

# ---------------------------------------------------------------- FLOPs


def forward_flops(batch: int, length: int, d_model: int, d_ff: int, num_layers: int) -> int:
    """FLOPs of an encoder forward, counted from its matmuls (a multiply-add is 2 FLOPs).

    Per layer, with N = B·T tokens and H heads of width Dh (H·Dh = D):

    - Q, K, V and output projections: 4 · 2·N·D·D
    - scores Q Kᵀ: 2·B·H·T·T·Dh = 2·N·T·D
    - weights · V: 2·N·T·D
    - feed-forward linear1 and linear2: 2 · 2·N·D·d_ff

    Left out, as ``FlopCounterMode`` leaves them out: bias adds, the 1/√Dh scale, masking,
    softmax, GELU, residual adds and layer norms (each O(N·D), O(N·d_ff) or O(B·H·T²), about 1 %
    at the MiniLM size), and a pretrained model's embeddings (table look-ups). Padded positions
    count: the kernels compute them.

    Examples:
        >>> forward_flops(batch=8, length=128, d_model=384, d_ff=1536, num_layers=6) / 1e9
        22.951231488
    """
    return sum(forward_flops_by_part(batch, length, d_model, d_ff, num_layers).values())


def packed_forward_flops(lengths: list[int], d_model: int, d_ff: int, num_layers: int) -> int:
    """FLOPs of the real tokens only: :func:`forward_flops` of each row at its own length, summed
    (what a padding-free forward must compute; the padded positions count for nothing).

    Examples:
        >>> packed_forward_flops([96] * 8, 384, 1536, 6) == forward_flops(8, 96, 384, 1536, 6)
        True
    """
    return sum(forward_flops(1, n, d_model, d_ff, num_layers) for n in lengths)


def forward_flops_by_part(
    batch: int, length: int, d_model: int, d_ff: int, num_layers: int
) -> dict[str, int]:
    """The terms of :func:`forward_flops`: the linear layers, and attention's two products."""
    tokens = batch * length
    projections = 4 * 2 * tokens * d_model * d_model  # Q, K, V, output: (N, D) @ (D, D), four times
    attention = 2 * (2 * tokens * length * d_model)  # Q Kᵀ and weights · V, all heads
    feed_forward = 2 * (2 * tokens * d_model * d_ff)  # (N, D) @ (D, d_ff) and back
    return {"linear layers": num_layers * (projections + feed_forward), "attention": num_layers * attention}


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------- timing and memory


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device: CUDA kernels are asynchronous, CPU ops are not."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


class Timings(dict):
    """Median seconds per call of each implementation (the mapping), with ``rounds``: each round's
    median of each, in the order of the rounds. The implementations alternate within a round, so
    one round's ratio compares calls that the same load on the machine slowed alike."""

    def __init__(self, rounds: dict[str, list[float]]) -> None:
        super().__init__({name: statistics.median(times) for name, times in rounds.items()})
        self.rounds = rounds

    def ratio_range(self, ours: str, reference: str) -> list[float]:
        """[lowest, highest] of ``ours / reference`` over the rounds."""
        ratios = [a / b for a, b in zip(self.rounds[ours], self.rounds[reference], strict=True)]
        return [min(ratios), max(ratios)]

    def without(self, *names: str) -> Timings:
        """These timings less ``names`` (timed in the same rounds for another use than a table)."""
        return Timings({name: times for name, times in self.rounds.items() if name not in names})


def compare(
    fns: dict[str, Callable[[], object]], warmup: int, rounds: int, min_run_time: float = 0.05
) -> Timings:
    """Median seconds per call of each function, measured by ``torch.utils.benchmark``, in turns.

    After ``warmup`` untimed calls of each, every round gives each function one short
    ``Timer.blocked_autorange(min_run_time=...)`` (blocks of calls, at least ``min_run_time``
    seconds in all; the Timer synchronizes CUDA and runs at this process's thread count), in an
    order that rotates from round to round. The result is the median of the per-round medians
    (:class:`Timings`, which keeps the rounds too): the implementations of one table alternate, so
    a burst of load from another job slows all of them alike and their ratios stay comparable.
    """
    from torch.utils.benchmark import Timer

    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    threads = torch.get_num_threads()  # Timer's default is 1 thread
    timers = {name: Timer("fn()", globals={"fn": fns[name]}, num_threads=threads, label=name)
              for name in names}
    medians: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(1, rounds)):
        # Rotating the order keeps "always runs just after X" from biasing one implementation.
        for name in names[r % len(names):] + names[: r % len(names)]:
            medians[name].append(timers[name].blocked_autorange(min_run_time=min_run_time).median)
    return Timings(medians)


def time_once(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    """Seconds of one call (for calls that take seconds, or whose first call is the point)."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def training_repeats(args: argparse.Namespace) -> tuple[int, int]:
    """(warmup, rounds) of a training step: a step costs several forwards, so fewer of each."""
    return min(args.warmup, 2), max(3, args.repeats // 3)


def training_step(model: nn.Module, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One forward, backward and AdamW step of ``model`` on a mean-square loss."""
    # fused: one kernel over all parameters instead of a Python loop, so that the optimizer
    # (which for a pretrained model mostly updates the 30522 x 384 token table) weighs less.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward().float().square().mean().backward()
        optimizer.step()

    return step


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes of the tensors allocated while ``fn()`` runs, above what was live before.

    On CUDA the caching allocator keeps the statistic itself (``max_memory_allocated``). On CPU
    there is no such counter, so the profiler records every allocation and free that goes
    through c10's CPU allocator (the one every tensor uses, temporaries freed inside an op
    included) and the peak is the maximum of their running sum. Unlike the process's maximum
    resident set size, this is exact to the byte, sees only tensors (not the interpreter,
    libraries or malloc's free lists) and starts from zero at every call.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = torch._C._autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())  # stable: ties keep the order they were recorded in
    live = peak = 0
    for event in events:
        if event.device_type() == cpu:
            live += event.nbytes()  # negative for a free
            peak = max(peak, live)
    return peak


def square_matmul(
    n: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> Callable[[], torch.Tensor]:
    """An n x n matmul into a reused output: what this machine's matmuls can reach in ``dtype``."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)  # reused: the matmul's speed, not the allocator's
    return lambda: torch.matmul(a, b, out=out)


# ---------------------------------------------------------------- profiles and checks


def time_shares(fn: Callable[[], object], device: torch.device) -> dict[str, float]:
    """Share of ``fn()``'s time spent in each kind of operator (one profiled run)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
    kinds = {
        "matmuls (addmm, mm, bmm)": ("aten::addmm", "aten::mm", "aten::bmm", "aten::_addmm_activation"),
        "attention kernel": ("aten::_scaled_dot_product", "aten::_flash_attention",
                             "aten::_efficient_attention"),
        "GELU": ("aten::gelu",),
        "copies (addmm's bias, head merge)": ("aten::copy_",),
        "layer norm": ("aten::native_layer_norm",),
        "adds": ("aten::add",),
    }
    shares = dict.fromkeys([*kinds, "other"], 0.0)
    total = 0.0
    for event in prof.key_averages():
        seconds = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        total += seconds
        kind = next((k for k, prefixes in kinds.items() if event.key.startswith(prefixes)), "other")
        shares[kind] += seconds
    return {kind: seconds / total for kind, seconds in shares.items()} if total else shares


def runs_operator(fn: Callable[[], object], operator: str) -> bool:
    """Whether ``fn()`` runs the aten ``operator`` (``"aten::..."``), as torch's profiler sees it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return any(e.name == operator for e in prof.events())


def uses_torch_fast_path(fn: Callable[[], object]) -> bool:
    """Whether ``fn()`` runs torch's fused encoder-layer kernel (its eval fast path)."""
    return runs_operator(fn, "aten::_transformer_encoder_layer_fwd")


def uses_nested_tensors(fn: Callable[[], object]) -> bool:
    """Whether ``fn()`` packs its input into a nested tensor (torch's encoder does, by default,
    in eval with a padding mask)."""
    return runs_operator(fn, "aten::_nested_tensor_from_mask")


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference between two outputs."""
    return (a.float() - b.float()).abs().max().item()
