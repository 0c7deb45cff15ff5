"""Our encoder beside torch.nn.TransformerEncoder and Hugging Face's BertModel, in one process.

Everything is measured in this one process, so that every ratio compares implementations under
the same threads, allocator and load. Each time is the median of ``--repeats`` runs after
``--warmup`` untimed ones; the implementations of one comparison take turns within every repeat,
so a burst of load from another job slows all of them alike instead of one.

1. Random weights at the size of all-MiniLM-L6-v2 (D 384, 12 heads, d_ff 1536, 6 layers, GELU,
   post-LN), B 8, T 128, float32, a quarter of every row padding: eval forward and a training
   step (forward, backward, AdamW) of our Encoder (fused attention), our explicit path
   (``return_attention=True``) and ``torch.nn.TransformerEncoder`` (its native fast path in eval
   under ``torch.inference_mode``). Ratios to torch.
2. The real all-MiniLM-L6-v2 weights, embeddings included: our ``PretrainedEncoder``, the same
   with explicit attention, our embeddings feeding a ``torch.nn.TransformerEncoder`` holding the
   same weights, and ``transformers.BertModel.from_pretrained`` of the same folder (its default
   attention implementation, sdpa), same ids and mask. Ratios to BertModel.
3. FLOPs of the forward counted analytically (:func:`forward_flops`), checked against
   ``torch.utils.flop_counter.FlopCounterMode``, and the achieved GFLOP/s of our fused forward as
   a percentage of this machine's float32 matmul throughput, timed here.
4. A length sweep T = 64 ... 4096 at a fixed number of tokens B·T: time and peak memory of one
   attention layer, explicit vs fused.
5. On CUDA only: tokens per second of a bfloat16-autocast training step and the fraction of the
   card's bfloat16 dense peak.

The targets are printed as PASS/MISS lines below the tables, each with its measured ratio, and
the reason where one is missed. The whole report is printed and written to
``_build/bench/encoder.md``.

    python benchmarks/bench_encoder.py [--threads 2] [--repeats 15] [--quick] [--device cpu]

``--quick`` shrinks every size and repeat count so the script finishes in seconds (the smoke test
uses it); its numbers say nothing about speed and its targets are not judged.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transformer_course import runtime
from transformer_course.attention import MultiHeadAttention, to_torch_key_padding_mask
from transformer_course.encoder import Encoder
from transformer_course.profiling import fused_attention_kernels

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "bench" / "encoder.md"

# glibc returns every large freed block to the kernel at once (mmap threshold, trim threshold),
# so each new activation tensor of a CPU forward is fresh memory that page-faults and is zeroed
# by the kernel: ~15,000 faults per forward here, a tenth of its time. PyTorch's CPU tuning
# guide advises a caching allocator (jemalloc, tcmalloc); glibc's own tunables do the same with
# nothing to install. They apply to every implementation alike, so the ratios stay fair.
# mmap_threshold: blocks up to 32 MiB (glibc's maximum) come from the heap; trim_threshold: a
# freed heap top of up to 16 GiB is kept for the next allocation instead of returned.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184"

# Dense (no sparsity) bfloat16 tensor-core peaks in TFLOP/s, from the vendors' data sheets.
# Matched in order against torch.cuda.get_device_name(): longer names first ("A100" before "A10").
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
)


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the script."""

    batch: int = 8  # B of the encoder rows
    length: int = 128  # T of the encoder rows
    d_model: int = 384  # D of all-MiniLM-L6-v2
    num_heads: int = 12  # H
    d_ff: int = 1536  # feed-forward width
    num_layers: int = 6  # L
    sweep_tokens: int = 8192  # B·T of every point of the length sweep
    sweep_lengths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    matmul_n: int = 2048  # the square matmul that measures the machine's throughput
    cuda_batch: int = 64  # B of the CUDA bfloat16 training row (B 8 leaves a GPU idle)
    cuda_length: int = 512  # T of that row


QUICK = Sizes(batch=2, length=32, sweep_tokens=256, sweep_lengths=(32, 64, 128), matmul_n=512,
              cuda_batch=4, cuda_length=64)


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


def compare(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Median seconds of each function; within every repeat each runs once, in a rotating order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        # Rotating the order keeps "always runs just after X" from biasing one implementation.
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def training_repeats(args: argparse.Namespace) -> tuple[int, int]:
    """(warmup, repeats) of a training step: a step costs several forwards, so fewer of each."""
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


def square_matmul(n: int, device: torch.device) -> Callable[[], torch.Tensor]:
    """An n x n float32 matmul into a reused output: what this machine's matmuls can reach."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)  # reused: the number is the matmul's, not the allocator's
    return lambda: torch.matmul(a, b, out=out)


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


# ---------------------------------------------------------------- models


def torch_encoder_like(ours: Encoder) -> nn.TransformerEncoder:
    """A ``torch.nn.TransformerEncoder`` holding the weights of our (post- or pre-LN) ``Encoder``."""
    first = ours.layers[0]
    attn = first.self_attn
    layer = nn.TransformerEncoderLayer(
        attn.d_model, attn.num_heads, first.feed_forward.linear1.out_features,
        dropout=first.dropout1.p, activation=first.feed_forward.activation_name,
        layer_norm_eps=first.norm1.eps, batch_first=True, norm_first=first.norm_first,
    )
    # No nested tensors: the padded positions are computed, as ours and BertModel compute them.
    theirs = nn.TransformerEncoder(layer, len(ours.layers), enable_nested_tensor=False)
    theirs = theirs.to(device=attn.q_proj.weight.device)
    with torch.no_grad():
        for mine, their_layer in zip(ours.layers, theirs.layers, strict=True):
            a = mine.self_attn
            in_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])  # 3 x (D, D) -> (3D, D)
            in_b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])  # 3 x (D,) -> (3D,)
            their_layer.self_attn.in_proj_weight.copy_(in_w)
            their_layer.self_attn.in_proj_bias.copy_(in_b)
            their_layer.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
            their_layer.linear1.load_state_dict(mine.feed_forward.linear1.state_dict())
            their_layer.linear2.load_state_dict(mine.feed_forward.linear2.state_dict())
            their_layer.norm1.load_state_dict(mine.norm1.state_dict())
            their_layer.norm2.load_state_dict(mine.norm2.state_dict())
    if ours.norm is not None:
        theirs.norm = copy.deepcopy(ours.norm)
    return theirs.train(ours.training)


class EmbeddingsThenTorchEncoder(nn.Module):
    """Our BERT embeddings feeding a ``torch.nn.TransformerEncoder`` with the same weights as ours."""

    def __init__(self, embedding: nn.Module, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids)  # (B, T) -> (B, T, D)
        return self.encoder(x, src_key_padding_mask=to_torch_key_padding_mask(attention_mask))


def uses_torch_fast_path(fn: Callable[[], object]) -> bool:
    """Whether ``fn()`` runs torch's fused encoder-layer kernel (its eval fast path)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return any(e.name == "aten::_transformer_encoder_layer_fwd" for e in prof.events())


def padding_mask(batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(B, T) True = real token; the last quarter of every row is padding."""
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, length - length // 4:] = False
    return mask.to(device)


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference between two outputs."""
    return (a.float() - b.float()).abs().max().item()


# ---------------------------------------------------------------- the sections


@dataclass
class Report:
    """What the sections measured: the markdown lines and the numbers the targets need."""

    lines: list[str]
    values: dict[str, float]

    def table(self, header: list[str], rows: list[list[str]], align: str) -> None:
        """Append a markdown table (``align``: one of ``l`` or ``r`` per column)."""
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
        self.lines.extend("| " + " | ".join(row) + " |" for row in rows)
        self.lines.append("")


def random_weights_section(
    report: Report, sizes: Sizes, device: torch.device, args
) -> Callable[[], torch.Tensor]:
    """Section 1: our Encoder, fused and explicit, beside torch.nn.TransformerEncoder.

    Returns our fused eval forward, for section 3 to time beside a matmul.
    """
    s = sizes
    sync = synchronizer(device)
    layer = nn.TransformerEncoderLayer(s.d_model, s.num_heads, s.d_ff, dropout=0.0, activation="gelu",
                                       batch_first=True)
    theirs = nn.TransformerEncoder(layer, s.num_layers, enable_nested_tensor=False).to(device)
    fused = Encoder.from_torch(theirs)
    explicit = copy.deepcopy(fused)  # its own parameters and optimizer state in training
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, s.length, s.d_model, generator=gen).to(device)
    mask = padding_mask(s.batch, s.length, device)
    ignore = to_torch_key_padding_mask(mask)  # torch's sense: True = ignore
    impls = {
        "torch.nn.TransformerEncoder": lambda: theirs(x, src_key_padding_mask=ignore),
        "ours, fused attention": lambda: fused(x, mask),
        "ours, explicit attention": lambda: explicit(x, mask, return_attention=True)[0],
    }
    for model in (theirs, fused, explicit):
        model.eval()
    with torch.inference_mode():
        reference = impls["torch.nn.TransformerEncoder"]()
        valid = mask[:, :, None].expand_as(reference)  # torch's fast path zeroes padded outputs
        for name in ("ours, fused attention", "ours, explicit attention"):
            diff = max_difference(impls[name]()[valid], reference[valid])
            assert diff < 1e-3, f"{name} differs from torch by {diff}"
        fast_path = uses_torch_fast_path(impls["torch.nn.TransformerEncoder"])
        kernels = sorted(set(fused_attention_kernels(impls["ours, fused attention"])))
        eval_times = compare(impls, args.warmup, args.repeats, sync)
    for model in (theirs, fused, explicit):
        model.train()
    train_times = compare({name: training_step(model, fn) for (name, fn), model in
                           zip(impls.items(), (theirs, fused, explicit), strict=True)},
                          *training_repeats(args), sync)

    report.lines += [
        f"## 1. Encoder, random weights: D {s.d_model}, {s.num_heads} heads, d_ff {s.d_ff}, "
        f"{s.num_layers} layers, GELU, post-LN, B {s.batch}, T {s.length}, float32",
        "",
        f"A quarter of every row is padding. Eval runs under `torch.inference_mode()`; torch's fast "
        f"path (`_transformer_encoder_layer_fwd`) {'ran' if fast_path else 'did NOT run'}; our fused "
        f"attention ran `{', '.join(kernels)}`. Training step: forward, backward, AdamW.",
        "",
    ]
    rows = []
    for case, timings in (("eval forward", eval_times), ("training step", train_times)):
        reference_time = timings["torch.nn.TransformerEncoder"]
        for name, seconds in timings.items():
            rows.append([case, name, f"{seconds * 1e3:.1f}", f"{seconds / reference_time:.2f}"])
    report.table(["case", "implementation", "median ms", "ratio to torch"], rows, "llrr")
    for case, timings in (("eval", eval_times), ("train", train_times)):
        report.values[f"{case} ours/torch"] = (timings["ours, fused attention"]
                                               / timings["torch.nn.TransformerEncoder"])

    flops = forward_flops(s.batch, s.length, s.d_model, s.d_ff, s.num_layers)
    with torch.no_grad():
        # The explicit path is plain matmuls, which FlopCounterMode counts on every device; it
        # has no formula for the CPU flash-attention kernel of the fused path.
        counted = counted_flops(lambda: explicit.eval()(x, mask, return_attention=True))
    assert abs(counted - flops) <= 0.02 * flops, f"analytic {flops} vs FlopCounterMode {counted}"
    report.values["forward flops"] = flops
    report.values["counted flops"] = counted
    fused.eval()

    def fused_forward() -> torch.Tensor:
        with torch.inference_mode():
            return fused(x, mask)

    return fused_forward


def pretrained_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 2: all-MiniLM-L6-v2's real weights in ours, in torch's encoder and in BertModel."""
    from transformer_course.pretrained import find_model_dir, load_minilm

    s = sizes
    sync = synchronizer(device)
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the folder is local: never ask the hub
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import BertModel
    except ImportError:
        report.lines += ["## 2. all-MiniLM-L6-v2: skipped (transformers is not installed)", ""]
        return
    try:
        _, fused = load_minilm(device=device)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        report.lines += [f"## 2. all-MiniLM-L6-v2: skipped ({error})", ""]
        return
    # No pooler: BertModel's [CLS] pooler is not part of the encoder that ours reproduces.
    hf = BertModel.from_pretrained(str(find_model_dir()), add_pooling_layer=False).to(device).eval()
    attn_implementation = hf.config._attn_implementation
    explicit = copy.deepcopy(fused)
    torch_stack = EmbeddingsThenTorchEncoder(copy.deepcopy(fused.embedding),
                                             torch_encoder_like(fused.encoder)).to(device).eval()

    gen = torch.Generator().manual_seed(1)
    mask = padding_mask(s.batch, s.length, device).long()  # Hugging Face's 0/1 attention_mask
    ids = torch.randint(1000, fused.config.vocab_size, (s.batch, s.length), generator=gen).to(device)
    ids = ids.masked_fill(mask == 0, fused.config.pad_token_id)
    ids[:, 0] = 101  # [CLS]
    impls = {
        f"transformers.BertModel ({attn_implementation})": lambda: hf(input_ids=ids, attention_mask=mask)[0],
        "ours, fused attention": lambda: fused(ids, mask),
        "ours, explicit attention": lambda: explicit(ids, mask, return_attention=True)[0],
        "our embeddings + torch.nn.TransformerEncoder": lambda: torch_stack(ids, mask),
    }
    hf_name = next(iter(impls))
    models = (hf, fused, explicit, torch_stack)
    with torch.inference_mode():
        reference = impls[hf_name]()
        valid = mask.bool()[:, :, None].expand_as(reference)  # torch's fast path zeroes padded outputs
        for name, fn in impls.items():
            diff = max_difference(fn()[valid], reference[valid])
            assert diff < 1e-3, f"{name} differs from BertModel by {diff}: not the same weights"
        eval_times = compare(impls, args.warmup, args.repeats, sync)
    for model in models:
        model.train()  # dropout 0.1, as configured
    train_times = compare({name: training_step(model, fn) for (name, fn), model in
                           zip(impls.items(), models, strict=True)},
                          *training_repeats(args), sync)

    report.lines += [
        f"## 2. all-MiniLM-L6-v2, real weights and embeddings, B {s.batch}, T {s.length}, float32",
        "",
        f"Same ids and mask (a quarter padding) for all; outputs agree to 1e-3 on the real tokens. "
        f"BertModel is `from_pretrained` of the same folder with its default "
        f"`attn_implementation`, here `{attn_implementation}`, and no pooler. Training: dropout "
        f"0.1 as configured, where BertModel has it (our PretrainedEncoder has none inside the "
        f"feed-forward, like BertModel; torch's layer has one there).",
        "",
    ]
    rows = []
    for case, timings in (("eval forward", eval_times), ("training step", train_times)):
        reference_time = timings[hf_name]
        for name, seconds in timings.items():
            rows.append([case, name, f"{seconds * 1e3:.1f}", f"{seconds / reference_time:.2f}"])
    report.table(["case", "implementation", "median ms", "ratio to BertModel"], rows, "llrr")
    report.values["eval ours/hf"] = eval_times["ours, fused attention"] / eval_times[hf_name]
    report.values["train ours/hf"] = train_times["ours, fused attention"] / train_times[hf_name]


def throughput_section(
    report: Report, sizes: Sizes, device: torch.device, args, fused_forward: Callable[[], torch.Tensor]
) -> None:
    """Section 3: analytic FLOPs, FlopCounterMode, and our fused forward against matmul speed."""
    s = sizes
    flops = report.values["forward flops"]
    matmul = square_matmul(s.matmul_n, device)
    # Timed in turns, so that both see the same load: the ratio is what the target is about.
    times = compare({"matmul": matmul, "forward": fused_forward}, args.warmup, args.repeats,
                    synchronizer(device))
    matmul_speed = 2 * s.matmul_n**3 / times["matmul"]
    achieved = flops / times["forward"]
    report.values["fraction of matmul"] = achieved / matmul_speed
    shares = time_shares(fused_forward, device)
    report.values["matmul share"] = shares["matmuls (addmm, mm, bmm)"]
    parts = forward_flops_by_part(s.batch, s.length, s.d_model, s.d_ff, s.num_layers)
    # On the fused path the linear layers are the only matmuls; attention is the kernel's.
    linear_speed = parts["linear layers"] / max(shares["matmuls (addmm, mm, bmm)"] * times["forward"], 1e-12)
    attention_speed = parts["attention"] / max(shares["attention kernel"] * times["forward"], 1e-12)
    report.values["linear vs matmul"] = linear_speed / matmul_speed
    report.values["attention vs matmul"] = attention_speed / matmul_speed
    report.values["attention share"] = shares["attention kernel"]
    report.lines += [
        "## 3. FLOPs and throughput of our fused eval forward (section 1's sizes)",
        "",
    ]
    report.table(["quantity", "value"], [
        ["forward FLOPs, analytic (matmuls only)", f"{flops / 1e9:.3f} G"],
        ["forward FLOPs, FlopCounterMode (explicit path)", f"{report.values['counted flops'] / 1e9:.3f} G"],
        [f"float32 matmul {s.matmul_n} x {s.matmul_n}, this machine", f"{matmul_speed / 1e9:.1f} GFLOP/s"],
        ["our fused forward", f"{achieved / 1e9:.1f} GFLOP/s ({times['forward'] * 1e3:.1f} ms)"],
        ["our fused forward / matmul", f"{100 * achieved / matmul_speed:.0f} %"],
        ["its linear layers (Q, K, V, output, feed-forward)",
         f"{linear_speed / 1e9:.1f} GFLOP/s ({100 * linear_speed / matmul_speed:.0f} % of matmul)"],
        ["its attention kernel (Q Kᵀ, weights · V)",
         f"{attention_speed / 1e9:.1f} GFLOP/s ({100 * attention_speed / matmul_speed:.0f} % of matmul)"],
    ], "lr")
    report.lines += ["Where the fused forward's time goes (one profiled run):", ""]
    report.table(["operators", "share of time"],
                 [[kind, f"{100 * share:.1f} %"] for kind, share in shares.items()], "lr")


def sweep_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 4: one attention layer, explicit vs fused, from short to long at fixed B·T."""
    s = sizes
    sync = synchronizer(device)
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
            times = compare(impls, 1, repeats, sync)
        rows.append([str(length), str(batch), f"{times['explicit'] * 1e3:.1f}", f"{times['fused'] * 1e3:.1f}",
                     f"{peaks['explicit'] / 2**20:.1f}", f"{peaks['fused'] / 2**20:.1f}",
                     f"{peaks['fused'] / peaks['explicit']:.3f}"])
        report.values["sweep longest memory ratio"] = peaks["fused"] / peaks["explicit"]
        report.values["sweep longest length"] = length
    report.lines += [
        f"## 4. One attention layer (D {s.d_model}, {s.num_heads} heads), B·T = {s.sweep_tokens}, "
        f"no mask, eval, float32",
        "",
        "Peak memory: the tensors allocated during one call above what was live before "
        "(CUDA: `max_memory_allocated`; CPU: the running sum of the profiler's allocation events). "
        "The explicit path returns the weights (B, H, T, T); the fused one never forms them.",
        "",
    ]
    report.table(["T", "B", "explicit ms", "fused ms", "explicit peak MiB", "fused peak MiB",
                  "fused / explicit memory"], rows, "rrrrrrr")


def cuda_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 5 (CUDA): tokens per second of a bfloat16-autocast training step, share of the peak."""
    s = sizes
    name = torch.cuda.get_device_name(device)
    peak = next((tflops for key, tflops in BF16_PEAK_TFLOPS if key in name), None)
    rows = []
    for batch, length in ((s.batch, s.length), (s.cuda_batch, s.cuda_length)):
        model = Encoder(s.num_layers, s.d_model, s.num_heads, s.d_ff, dropout=0.0, activation="gelu")
        model = model.to(device)
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(batch, length, s.d_model, generator=gen).to(device)
        mask = padding_mask(batch, length, device)

        def forward(model=model, x=x, mask=mask) -> torch.Tensor:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(x, mask)

        kernels = sorted(set(fused_attention_kernels(forward)))
        seconds = compare({"step": training_step(model, forward)}, args.warmup, args.repeats,
                          synchronizer(device))["step"]
        # Training ≈ 3 forwards of matmuls: the backward computes two products per forward one.
        achieved = 3 * forward_flops(batch, length, s.d_model, s.d_ff, s.num_layers) / seconds
        share = "n/a (card not in the table)" if peak is None else f"{100 * achieved / (peak * 1e12):.1f} %"
        rows.append([f"{batch} x {length}", f"{seconds * 1e3:.2f}", f"{batch * length / seconds:,.0f}",
                     f"{achieved / 1e12:.1f}", share, ", ".join(kernels)])
    report.lines += [
        f"## 5. CUDA ({name}): training step under bfloat16 autocast, our fused Encoder",
        "",
        f"bfloat16 dense peak of this card: {'unknown' if peak is None else f'{peak:.0f} TFLOP/s'}. "
        "Achieved FLOP/s count 3 x the forward's matmuls.",
        "",
    ]
    report.table(["B x T", "median ms", "tokens / s", "TFLOP/s", "of bf16 peak", "attention kernel"],
                 rows, "rrrrrl")


def targets(report: Report, quick: bool) -> list[str]:
    """The PASS/MISS lines: each target, its measured value, and why where it is missed."""
    v = report.values
    nan = float("nan")
    share = v.get("matmul share", nan)
    # Ours and BertModel spend `share` of the time in the same matmuls at the same speed, so
    # 0.9 x BertModel means doing everything else in 0.1 / (1 - share) less time.
    rest_cut = 0.1 / (1 - share) if share < 1 else float("inf")
    checks = [
        ("fused encoder <= 1.0 x torch.nn.TransformerEncoder, eval", v.get("eval ours/torch"), 1.0, "<=",
         "torch's fast path is one C++ call per layer: Q, K, V in one matmul, bias and GELU fused "
         "into the first feed-forward matmul (_addmm_activation)"),
        ("fused encoder <= 1.0 x torch.nn.TransformerEncoder, training", v.get("train ours/torch"), 1.0, "<=",
         "autograd runs the same kind of kernels for both; Q, K, V as three matmuls cost ours a little"),
        ("fused encoder <= 0.9 x BertModel (same weights), eval", v.get("eval ours/hf"), 0.9, "<=",
         f"BertModel (sdpa) calls the same operators as ours (three Q, K, V addmm, one SDPA, GELU, "
         f"LayerNorm); matmuls are {100 * share:.0f} % of our forward and run at this machine's "
         f"matmul speed in both, so 0.9 x would need everything else {100 * rest_cut:.0f} % faster "
         f"than the same operators run by BertModel"),
        ("fused encoder <= 0.9 x BertModel (same weights), training", v.get("train ours/hf"), 0.9, "<=",
         "the same operators as BertModel again, forward and backward, with dropout in the same "
         "places (on CPU, drawing dropout masks costs more than the attention)"),
        ("fused forward >= 75 % of float32 matmul throughput", v.get("fraction of matmul"), 0.75, ">=",
         f"the linear layers, {100 * share:.0f} % of the time, run at "
         f"{100 * v.get('linear vs matmul', nan):.0f} % of the square matmul's speed (their "
         f"inner size D = 384 is short); the attention kernel, {100 * v.get('attention share', nan):.0f} % "
         f"of the time, at {100 * v.get('attention vs matmul', nan):.0f} % (per head, small "
         f"(T, Dh) x (Dh, T) products); GELU, layer norms, adds and addmm's bias copies do few "
         f"FLOPs per byte moved"),
        (f"fused peak memory <= 1/4 of explicit at T {int(v.get('sweep longest length', 0))}",
         v.get("sweep longest memory ratio"), 0.25, "<=",
         "at this length the (B, H, T, T) weights are still small beside the (B, T, D) activations"),
    ]
    lines = ["## Targets", ""]
    if quick:
        lines += ["(--quick: sizes reduced, targets not judged)", ""]
    for label, value, bound, op, reason in checks:
        if value is None:
            lines.append(f"- SKIP {label}: not measured")
            continue
        ok = value <= bound if op == "<=" else value >= bound
        shown = f"{100 * value:.0f} %" if "%" in label else f"{value:.2f}"
        verdict = "INFO" if quick else ("PASS" if ok else "MISS")
        lines.append(f"- {verdict} {label}: measured {shown}" + ("" if ok or quick else f" ({reason})"))
    return lines


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each case (default 3)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed runs of each eval case; training and long sweep points use fewer "
                             "(default 15)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 2 repeats: a smoke test of every section, in seconds")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers BertModel section")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default malloc thresholds instead of the caching ones")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the table "
                        f"(default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 2
    return args


class Interference:
    """How much CPU other processes took while each section ran (Linux), to judge the numbers.

    The machine's busy time comes from /proc/stat, this process's own (all its threads) from
    ``time.process_time()``; the difference is everyone else's, as a share of all CPUs over the
    section's wall time.
    """

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float | None, float]] = []

    @staticmethod
    def _machine_busy_seconds() -> float | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]  # user ... steal
        except (OSError, ValueError):
            return None
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait

    def mark(self, section: str) -> None:
        """Start ``section`` (or end the last one with ``"end"``), and say so on stderr."""
        now = time.perf_counter()
        self.marks.append((section, now, self._machine_busy_seconds(), time.process_time()))
        if section != "end":
            print(f"[{now - self.marks[0][1]:5.0f} s] {section}", file=sys.stderr, flush=True)

    def summary(self) -> str:
        """One line: the share of the CPUs that other processes used, per section."""
        parts = []
        spans = zip(self.marks[:-1], self.marks[1:], strict=True)
        for (name, t0, busy0, own0), (_, t1, busy1, own1) in spans:
            if busy0 is None or busy1 is None or t1 <= t0:
                return "CPU taken by other processes: unknown (no /proc/stat)"
            others = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * (os.cpu_count() or 1))
            parts.append(f"{name.split('.')[0]}: {100 * others:.0f} %")
        return ("Share of the CPUs taken by other processes, per section (above a few % the times "
                "above are slowed and scattered by load): " + ", ".join(parts))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if (not args.default_malloc and platform.system() == "Linux" and "GLIBC_TUNABLES" not in os.environ
            and argv is None):
        # Tunables are read when the process starts: run this same script again with them set.
        os.environ["GLIBC_TUNABLES"] = MALLOC_TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])
    torch.set_num_threads(args.threads)
    device = runtime.setup(0, device=args.device)  # seeds; float32 matmuls stay true float32 (no TF32)
    # Timing, not reproducing: the default kernels, as a user runs them (setup asks for
    # deterministic ones, slower for the embedding backward on CUDA, for instance).
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()

    report = Report(lines=[
        "# Encoder benchmarks",
        "",
        f"torch {torch.__version__}, device {device}"
        + f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name()})"
        + f", {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at the start, "
        f"malloc {'tuned' if os.environ.get('GLIBC_TUNABLES') == MALLOC_TUNABLES else 'default'}"
        + (", --quick (sizes reduced: not a measurement)" if args.quick else ""),
        "",
    ], values={})
    interference = Interference()
    interference.mark("1. random weights")
    fused_forward = random_weights_section(report, sizes, device, args)
    if not args.no_hf:
        interference.mark("2. all-MiniLM-L6-v2")
        pretrained_section(report, sizes, device, args)
    interference.mark("3. throughput")
    throughput_section(report, sizes, device, args, fused_forward)
    interference.mark("4. length sweep")
    sweep_section(report, sizes, device, args)
    if device.type == "cuda":
        interference.mark("5. CUDA bfloat16")
        cuda_section(report, sizes, device, args)
    interference.mark("end")
    report.lines += targets(report, args.quick)
    report.lines += ["", interference.summary()]
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report.lines += ["", f"{time.perf_counter() - started:.0f} s, load average {load_end:.2f} at the end"]

    text = "\n".join(report.lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
