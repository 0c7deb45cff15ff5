"""Sections 3, 4 and 8: FLOPs and matmul throughput, bfloat16 (weights and autocast), and on
CUDA the bfloat16 training step's share of the card's peak."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from transformer_course import fused
from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.encoder import Encoder
from transformer_course.profiling import fused_attention_kernels

from .measure import (
    compare,
    forward_flops,
    forward_flops_by_part,
    max_difference,
    packed_forward_flops,
    square_matmul,
    time_shares,
    training_step,
    uses_torch_fast_path,
)
from .models import (
    FUSED,
    PACKED,
    TORCH,
    TORCH_PADDED,
    Sizes,
    padding_mask,
    random_models,
    torch_default_like,
    varied_padding_mask,
)
from .report import Report, first_line

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


def throughput_section(report: Report, sizes: Sizes, device: torch.device, args, forwards: dict) -> None:
    """Section 3: analytic FLOPs, FlopCounterMode, and our fused and padding-free forwards
    against matmul speed (``forwards``: section 1's return)."""
    s = sizes
    flops = report.values["forward flops"]
    fused_forward = forwards["fused"]
    real_flops = packed_forward_flops(forwards["lengths"], s.d_model, s.d_ff, s.num_layers)
    matmul = square_matmul(s.matmul_n, device)
    # Timed in turns, so that all see the same load: the ratios are what the targets are about.
    times = compare({"matmul": matmul, "forward": fused_forward, "padding-free": forwards["packed"]},
                    args.warmup, args.repeats, args.min_run_time)
    matmul_speed = 2 * s.matmul_n**3 / times["matmul"]
    achieved = flops / times["forward"]
    achieved_real = real_flops / times["padding-free"]
    report.values["fraction of matmul"] = achieved / matmul_speed
    report.values["packed fraction of matmul"] = achieved_real / matmul_speed
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
    report.values["matmul GFLOP/s"] = matmul_speed / 1e9
    report.table(["quantity", "value"], [
        ["forward FLOPs, analytic (matmuls only)", f"{flops / 1e9:.3f} G"],
        ["forward FLOPs, FlopCounterMode (explicit path)", f"{report.values['counted flops'] / 1e9:.3f} G"],
        [f"float32 matmul {s.matmul_n} x {s.matmul_n}, this machine", f"{matmul_speed / 1e9:.1f} GFLOP/s"],
        ["our fused forward", f"{achieved / 1e9:.1f} GFLOP/s ({times['forward'] * 1e3:.1f} ms)"],
        ["our fused forward / matmul", f"{100 * achieved / matmul_speed:.0f} %"],
        ["real tokens' FLOPs (a quarter of every row is padding)", f"{real_flops / 1e9:.3f} G"],
        ["our padding-free forward, real tokens' FLOPs only",
         f"{achieved_real / 1e9:.1f} GFLOP/s ({times['padding-free'] * 1e3:.1f} ms)"],
        ["our padding-free forward / matmul", f"{100 * achieved_real / matmul_speed:.0f} %"],
        ["its linear layers (Q, K, V, output, feed-forward)",
         f"{linear_speed / 1e9:.1f} GFLOP/s ({100 * linear_speed / matmul_speed:.0f} % of matmul)"],
        ["its attention kernel (Q Kᵀ, weights · V)",
         f"{attention_speed / 1e9:.1f} GFLOP/s ({100 * attention_speed / matmul_speed:.0f} % of matmul)"],
    ], "lr", "throughput")
    report.lines += ["Where the fused forward's time goes (one profiled run):", ""]
    report.table(["operators", "share of time"],
                 [[kind, f"{100 * share:.1f} %"] for kind, share in shares.items()], "lr", "time_shares")
    if device.type == "cpu":
        padded_keys_table(report, s, args)


def padded_keys_table(report: Report, sizes: Sizes, args, rows: int = 26, length: int = 27) -> None:
    """The CPU attention kernel on ``rows`` rows of ``length`` keys, as a batch of length-sorted
    sentences gives it, on each row's own keys and on keys read on to the next multiple of
    ``fused.KEY_BLOCK`` under a mask (``fused.padded_keys``, which the padding-free path takes)."""
    H, D = sizes.num_heads, sizes.d_model
    qkv = torch.randn(rows * length + fused.KEY_BLOCK - 1, 3 * D)  # packed rows, then spare rows
    q, k, v = qkv[: rows * length].split(D, dim=-1)
    own = [t.view(rows, length, H, D // H).transpose(1, 2) for t in (q, k, v)]  # (r, H, n, D_h)
    keys, values, mask = fused.padded_keys(k, v, 0, rows, length, H)
    attend = torch.nn.functional.scaled_dot_product_attention
    with torch.inference_mode():
        assert max_difference(attend(*own), attend(own[0], keys, values, attn_mask=mask)) < 1e-5
        times = compare({"own keys": lambda: attend(*own),
                         "padded keys": lambda: attend(own[0], keys, values, attn_mask=mask)},
                        args.warmup, args.repeats, args.min_run_time)
    report.ratio("padded keys / own keys", times, "padded keys", "own keys")
    padded, ratio = keys.shape[2], report.values["padded keys / own keys"]
    report.values["padded keys length"], report.values["padded keys padded length"] = length, padded
    report.lines += [
        f"The attention kernel on {rows} rows of {length} keys ({H} heads of {D // H}), on each "
        f"row's own keys and read on to {padded} keys, masked (`fused.padded_keys`, which the "
        f"padding-free path takes on the CPU for every row length that is not a multiple of "
        f"{fused.KEY_BLOCK}):",
        "",
    ]
    report.table(["keys per row", "median us", "ratio"], [
        [f"{length}, own keys", f"{1e6 * times['own keys']:.0f}", "1.00"],
        [f"{padded}, the last {padded - length} masked", f"{1e6 * times['padded keys']:.0f}", f"{ratio:.2f}"],
    ], "lrr", "padded_keys", [
        {"keys": name, "keys per row": n, "masked keys": n - length, "us": 1e6 * times[name], "ratio": r}
        for name, n, r in (("own keys", length, 1.0), ("padded keys", padded, ratio))])


def autocast_call(fn: Callable[[], torch.Tensor], device: torch.device) -> Callable[[], torch.Tensor]:
    """``fn`` run under ``torch.autocast(device.type, dtype=torch.bfloat16)``."""

    def run() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn()

    return run


def bfloat16_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 4: bfloat16 weights and bfloat16 autocast, ours and torch's, beside matmul speed."""
    s = sizes
    supported, how = args.bf16_support
    where = "CPU" if device.type == "cpu" else device.type.upper()
    report.lines += [f"## 4. bfloat16 on the {where}: section 1's encoder (random weights, B {s.batch}, "
                     f"T {s.length}, a quarter padding), eval forward", ""]
    if not supported:
        report.lines += [f"Not measured: {how}.", ""]
        report.tables["bfloat16"] = [{"implementation": "all", "ms": None, "note": f"n/a: {how}"}]
        return
    theirs_padded, ours, x, mask = random_models(s, device)
    theirs = torch_default_like(theirs_padded)  # as users build it: nested tensors on
    for model in (theirs, theirs_padded, ours):
        model.eval()
    ignore = to_torch_key_padding_mask(mask)
    theirs_padded16 = copy.deepcopy(theirs_padded).to(torch.bfloat16)
    theirs16 = torch_default_like(theirs_padded16)
    ours16 = copy.deepcopy(ours).to(torch.bfloat16)
    x16 = x.to(torch.bfloat16)
    torch16 = f"{TORCH}, bfloat16 weights"
    ours16_name = f"{FUSED}, bfloat16 weights"
    packed16_name = f"{PACKED}, bfloat16 weights"
    impls: dict[str, Callable[[], torch.Tensor]] = {
        torch16: lambda: theirs16(x16, src_key_padding_mask=ignore),
        f"{TORCH_PADDED}, bfloat16 weights": lambda: theirs_padded16(x16, src_key_padding_mask=ignore),
        "torch.nn.TransformerEncoder, float32 weights, autocast": autocast_call(
            lambda: theirs(x, src_key_padding_mask=ignore), device),
        packed16_name: lambda: ours16(x16, mask, padding_free=True),
        ours16_name: lambda: ours16(x16, mask),
        "ours, fused attention, float32 weights, autocast": autocast_call(lambda: ours(x, mask), device),
        "ours, fused attention, float32 (for scale)": lambda: ours(x, mask),
    }
    failures: dict[str, str] = {}
    diffs: dict[str, float] = {}
    with torch.inference_mode():
        reference = ours(x, mask)
        valid = mask[:, :, None].expand_as(reference)  # torch's fast path zeroes padded outputs
        for name, fn in list(impls.items()):
            try:
                out = fn()
            except Exception as error:  # noqa: BLE001 - torch's autocast fast path: a dtype mismatch
                failures[name] = f"fails: {type(error).__name__}: {first_line(error)}"
                del impls[name]
                continue
            diffs[name] = max_difference(out[valid], reference[valid])
        fast = {name: uses_torch_fast_path(fn) for name, fn in impls.items() if name.startswith("torch")}
        matmuls = {"matmul float32": square_matmul(s.matmul_n, device),
                   "matmul bfloat16": square_matmul(s.matmul_n, device, torch.bfloat16)}
        # The forwards and both matmuls in turns: the shares below compare numbers taken alike.
        times = compare({**impls, **matmuls}, args.warmup, args.repeats, args.min_run_time)
        shares = time_shares(impls[ours16_name], device) if ours16_name in impls else {}
        # The other padding patterns, bfloat16 weights: torch as users run it and ours.
        varied = varied_padding_mask(s.batch, s.length, device)
        varied_ignore = to_torch_key_padding_mask(varied)
        cases = [
            ("eval forward, rows padded 0-50 %", compare({
                torch16: lambda: theirs16(x16, src_key_padding_mask=varied_ignore),
                packed16_name: lambda: ours16(x16, varied, padding_free=True),
                ours16_name: lambda: ours16(x16, varied)}, args.warmup, args.repeats, args.min_run_time)),
            ("eval forward, no padding", compare({
                torch16: lambda: theirs16(x16), packed16_name: lambda: ours16(x16, padding_free=True),
                ours16_name: lambda: ours16(x16)}, args.warmup, args.repeats, args.min_run_time)),
        ]
    flops = forward_flops(s.batch, s.length, s.d_model, s.d_ff, s.num_layers)
    real_flops = packed_forward_flops(mask.sum(dim=1).tolist(), s.d_model, s.d_ff, s.num_layers)
    speed32 = 2 * s.matmul_n**3 / times["matmul float32"]
    speed16 = 2 * s.matmul_n**3 / times["matmul bfloat16"]
    reference_time = times.get(torch16)
    rows, data = [], []
    for name in [*impls, *failures]:
        if name in failures:
            rows.append([name, failures[name], "", ""])
            data.append({"implementation": name, "ms": None, "ratio": None, "max_abs_diff": None,
                         "note": failures[name]})
            continue
        seconds = times[name]
        ratio = seconds / reference_time if reference_time else None
        path = "" if name not in fast else (" (fast path)" if fast[name] else " (no fast path)")
        rows.append([name + path, f"{seconds * 1e3:.1f}", "" if ratio is None else f"{ratio:.2f}",
                     f"{diffs[name]:.3f}"])
        data.append({"implementation": name, "ms": seconds * 1e3, "ratio": ratio,
                     "max_abs_diff": diffs[name], "fast_path": fast.get(name)})
    report.lines += [
        f"bfloat16 here: {how}. *bfloat16 weights*: the model and input `.to(torch.bfloat16)`; "
        f"*autocast*: float32 weights under `torch.autocast(\"{device.type}\", dtype=torch.bfloat16)`. "
        "Ratio: to torch.nn.TransformerEncoder with bfloat16 weights; max |diff|: to our float32 "
        "output, real tokens only.",
        "",
    ]
    report.table(["implementation", "median ms", "ratio to torch bf16", "max abs diff"], rows, "lrrr",
                 "bfloat16", data)
    rows = [[f"float32 matmul {s.matmul_n} x {s.matmul_n}", f"{speed32 / 1e9:.1f} GFLOP/s", ""],
            [f"bfloat16 matmul {s.matmul_n} x {s.matmul_n}", f"{speed16 / 1e9:.1f} GFLOP/s",
             f"{speed16 / speed32:.1f} x float32"]]
    for name in impls:
        if "float32 (for scale)" in name:
            continue
        # The padding-free paths (ours, torch's nested tensors) are counted for the real tokens only.
        real = name in (packed16_name, torch16, "torch.nn.TransformerEncoder, float32 weights, autocast")
        achieved = (real_flops if real else flops) / times[name]
        rows.append([name, f"{achieved / 1e9:.1f} GFLOP/s",
                     f"{100 * achieved / speed16:.0f} % of bf16 matmul"])
    report.lines += ["Throughput (the forward's matmul FLOPs, section 3; for the padding-free rows, "
                     "ours and torch's nested tensors, the real tokens' FLOPs only):", ""]
    report.table(["quantity", "value", "share"], rows, "lrr", "bfloat16_throughput")
    report.lines += ["The other padding patterns, bfloat16 weights (ratio to torch's default encoder):", ""]
    report.timing_table("bfloat16_cases", cases, torch16, "ratio to torch bf16")
    for case, key in zip(cases, ("bf16 varied", "bf16 unpadded"), strict=True):
        timings = case[1]
        if packed16_name in timings:
            report.ratio(f"{key} packed ours/torch", timings, packed16_name, torch16)
            report.values[f"{key} packed ours ms"] = timings[packed16_name] * 1e3
        report.values[f"{key} torch ms"] = timings[torch16] * 1e3
        report.ratio(f"{key} ours/torch", timings, ours16_name, torch16)
    report.values["bf16 matmul GFLOP/s"] = speed16 / 1e9
    report.values["bf16 matmul share"] = shares.get("matmuls (addmm, mm, bmm)", float("nan"))
    report.values["bf16 attention share"] = shares.get("attention kernel", float("nan"))
    if packed16_name in impls and reference_time:
        report.ratio("bf16 packed ours/torch", times, packed16_name, torch16)
        report.values["bf16 packed fraction of matmul"] = real_flops / times[packed16_name] / speed16
    padded16 = f"{TORCH_PADDED}, bfloat16 weights"
    if ours16_name in impls and padded16 in impls:
        report.ratio("bf16 ours/torch padded", times, ours16_name, padded16)
    if ours16_name in impls and reference_time:
        report.ratio("bf16 ours/torch", times, ours16_name, torch16)
        report.values["bf16 fraction of matmul"] = flops / times[ours16_name] / speed16
        report.values["bf16 torch fast path"] = float(fast.get(torch16, False))


def cuda_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 8 (CUDA): tokens per second of a bfloat16-autocast training step, share of the peak."""
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
                          args.min_run_time)["step"]
        # Training ≈ 3 forwards of matmuls: the backward computes two products per forward one.
        achieved = 3 * forward_flops(batch, length, s.d_model, s.d_ff, s.num_layers) / seconds
        share = "n/a (card not in the table)" if peak is None else f"{100 * achieved / (peak * 1e12):.1f} %"
        rows.append([f"{batch} x {length}", f"{seconds * 1e3:.2f}", f"{batch * length / seconds:,.0f}",
                     f"{achieved / 1e12:.1f}", share, ", ".join(kernels)])
    report.lines += [
        f"## 8. CUDA ({name}): training step under bfloat16 autocast, our fused Encoder",
        "",
        f"bfloat16 dense peak of this card: {'unknown' if peak is None else f'{peak:.0f} TFLOP/s'}. "
        "Achieved FLOP/s count 3 x the forward's matmuls.",
        "",
    ]
    report.table(["B x T", "median ms", "tokens / s", "TFLOP/s", "of bf16 peak", "attention kernel"],
                 rows, "rrrrrl", "cuda_bfloat16")
