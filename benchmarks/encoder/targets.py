"""The benchmark's targets: one PASS, MISS, INFO or SKIP line each below the tables, with the
measured value and, where one is missed, the reason in measured numbers."""

from __future__ import annotations

from .machine import bfloat16_engine, float32_engine
from .report import Report


def floor_clause(v: dict[str, float], case: str, bound: float) -> str:
    """The floors of ``case`` (``encoder.floor``, timed in the same rounds as torch and our
    padding-free path) and what they leave of ``bound`` x torch, in measured numbers."""
    nan = float("nan")
    ours_ms = v.get(f"{case} packed ours ms", nan)
    bare_ms, floor_ms = v.get(f"{case} bare kernels ms", nan), v.get(f"{case} eager floor ms", nan)
    floor_ratio = v.get(f"{case} eager floor/torch", nan)
    if floor_ratio != floor_ratio:  # not timed (NaN)
        return "the floors were not timed"
    clause = (f"timed in the same rounds, the bare kernels (each layer's matmuls without their bias, "
              f"and attention) took {bare_ms:.1f} ms ({v.get(f'{case} bare kernels/torch', nan):.2f} x "
              f"torch), and with the least eager PyTorch runs around them (each bias, GELU, residual "
              f"add and layer norm one operator) {floor_ms:.1f} ms ({floor_ratio:.2f} x torch)")
    if floor_ratio > bound:
        return (f"{clause}: no eager code reaches {bound:.2f} x torch on this CPU; only matmul kernels "
                f"that add the bias, GELU, residual and norm as they write their result could")
    return (f"{clause}; ours spends {ours_ms - floor_ms:.1f} ms above that floor (module calls, "
            f"packing, copies)")


def unpadded_reason(torch_ms: float, ours_ms: float, matmuls: str, share: float, floor: str = "") -> str:
    """Why ours is not ahead of torch's fast path on a batch without padding, in measured numbers
    (``floor``: the floors' clause, where they were timed)."""
    return (f"without padding neither has anything to skip, and both run the same work in the same "
            f"kernels: the {matmuls} ({100 * share:.0f} % of our forward), Q, K, V in one matmul, bias "
            f"and GELU in linear1, one attention kernel per layer; torch {torch_ms:.1f} ms (one C++ call "
            f"per layer), ours {ours_ms:.1f} ms" + (f"; {floor}" if floor else ""))


def packing_reason(v: dict[str, float], case: str, units: str) -> str:
    """Why ours is not at 0.80 x torch's nested path on the padded batch of ``case`` ("eval": a
    quarter of every row padded, "eval varied": rows padded 0-50 %), in that case's measured
    numbers: the times, and the floors under them (:func:`floor_clause`)."""
    nan = float("nan")
    torch_ms, ours_ms = v.get(f"{case} torch ms", nan), v.get(f"{case} packed ours ms", nan)
    padded_ms = v.get(f"{case} torch padded ms", nan)
    per_token = torch_ms / (v.get(f"{case} real share", nan) * padded_ms)
    return (f"both skip the padding (torch's nested tensors, our packing) and run the same fused "
            f"kernels (Q, K, V in one matmul, bias and GELU in linear1), so the real tokens' matmuls "
            f"on {units} decide: torch's nested path took {torch_ms:.1f} ms (its padded fast path "
            f"{padded_ms:.1f} ms; per real token {per_token:.2f} x that path's time, so it keeps all "
            f"that skipping the padding saves), ours {ours_ms:.1f} ms, and 0.80 x torch is "
            f"{0.8 * torch_ms:.1f} ms; {floor_clause(v, case, 0.8)}")


def shown_value(value: float, bound: float | None, percent: bool) -> str:
    """A target's measured value as its line shows it: a percentage to whole percents, or a ratio
    to two decimals, with more digits (up to two more) where fewer would print the bound itself
    (0.804 against <= 0.80 is a MISS, not "0.80"; 74.97 % against >= 75 % not "75 %").

    Examples:
        >>> shown_value(0.8041, 0.8, False), shown_value(0.8341, 0.8, False)
        ('0.804', '0.83')
        >>> shown_value(0.7497, 0.75, True), shown_value(0.72, 0.75, True)
        ('74.97 %', '72 %')
    """
    scale, digits, unit = (100, 0, " %") if percent else (1, 2, "")
    for extra in range(3):
        shown = f"{scale * value:.{digits + extra}f}"
        if bound is None or value == bound or shown != f"{scale * bound:.{digits + extra}f}":
            break
    return shown + unit


def targets(report: Report, quick: bool, features: list[str]) -> tuple[list[str], list[dict[str, object]]]:
    """The PASS/MISS lines (each target, its measured value, the range of a ratio over the rounds of
    its measurement, and why where it is missed), and as data; ``features``: the CPU's matrix
    features (`machine.matrix_features`), named in the reasons."""
    v = report.values
    nan = float("nan")
    share = v.get("matmul share", nan)
    # Ours and BertModel spend `share` of the time in the same matmuls at the same speed, so
    # 0.9 x BertModel means doing everything else in 0.1 / (1 - share) less time.
    rest_cut = 0.1 / (1 - share) if share < 1 else float("inf")
    # Best of ours against BertModel: eager or compiled, both timed in turns with BertModel in
    # section 5; without section 5, section 2's eager ratio. Or section 2's padding-free one.
    if "compile eval ours/hf" in v:
        candidates = {"compile eval ours/hf": "eager", "compiled eval ours/hf": "compiled"}
    else:
        candidates = {"eval ours/hf": "eager, section 2 (compile not measured)"}
    candidates["eval packed ours/hf"] = "eager, padding-free, section 2"
    best = min((key for key in candidates if key in v), key=v.__getitem__, default="eval ours/hf")
    which = candidates[best]
    bf16_share = v.get("bf16 matmul share", nan)
    fp32_units, bf16_units = float32_engine(features), bfloat16_engine(features)
    quarter_reason = packing_reason(v, "eval", fp32_units)
    varied_reason = packing_reason(v, "eval varied", fp32_units)
    if v.get("eval varied attention calls", 1) > v.get("eval attention calls", 1):
        varied_reason += (
            f". This batch holds {v['eval varied real tokens']:.0f} real tokens (a quarter padding: "
            f"{v.get('eval real tokens', nan):.0f}) in rows of different lengths, and ours runs "
            f"attention once per run of rows of one length: "
            f"{v['eval varied attention calls']:.0f} calls per layer against "
            f"{v.get('eval attention calls', nan):.0f} for a quarter padding; it took "
            f"{v.get('eval varied packed ours ms', nan):.1f} ms against "
            f"{v.get('eval packed ours ms', nan):.1f} ms")
    bf16_reason = (
        f"bfloat16 matmuls run on this CPU's {bf16_units} in oneDNN for torch and ours (our "
        f"padding-free path calls oneDNN's linear layer, which adds the bias and applies GELU as it "
        f"writes the product, on weights laid out once for it); at {100 * bf16_share:.0f} % of our "
        f"bfloat16 forward the matmuls are not the whole difference: the rest (layer norms, adds, "
        f"conversions, our gather and scatter) is")
    checks = [
        # --- eval, float32, against torch as its users run it
        ("padding-free encoder <= 0.80 x torch.nn.TransformerEncoder (defaults: nested tensors), "
         "float32 eval, a quarter of every row padded", "eval packed ours/torch", 0.80, "<=",
         quarter_reason),
        ("padding-free encoder <= 0.80 x torch.nn.TransformerEncoder (defaults), float32 eval, rows "
         "padded 0-50 %", "eval varied packed ours/torch", 0.80, "<=", varied_reason),
        ("padding-free encoder (nothing to pack: its fused kernels) <= 1.00 x "
         "torch.nn.TransformerEncoder, float32 eval, no padding",
         "eval unpadded packed ours/torch", 1.0, "<=",
         unpadded_reason(v.get("eval unpadded torch ms", nan), v.get("eval unpadded packed ours ms", nan),
                         f"float32 matmuls on {fp32_units}", share,
                         floor_clause(v, "eval unpadded", 1.0))),
        ("fused encoder (padded path) <= 1.0 x torch.nn.TransformerEncoder with enable_nested_tensor"
         "=False, float32 eval, a quarter padding", "eval ours/torch padded", 1.0, "<=",
         "torch's fast path is one C++ call per layer: Q, K, V in one matmul, bias and GELU fused "
         "into the first feed-forward matmul (_addmm_activation)"),
        # --- training, float32
        ("padding-free encoder, training step <= 1.00 x torch.nn.TransformerEncoder, float32, a "
         "quarter padding", "train packed ours/torch", 1.0, "<=",
         f"torch takes no fast path in training and computes the padding; ours packs it away "
         f"(padded path: {v.get('train ours/torch', nan):.2f} x torch): the backward's matmuls on "
         f"{fp32_units} and AdamW dominate both"),
        ("fused encoder (padded path), training step <= 1.0 x torch.nn.TransformerEncoder",
         "train ours/torch", 1.0, "<=",
         "autograd runs the same kind of kernels for both; Q, K, V as three matmuls cost ours a little"),
        # --- against BertModel, same weights
        (f"best of ours (eager or compiled) <= 0.9 x BertModel (same weights), float32 eval [{which}]",
         best, 0.9, "<=",
         f"BertModel (sdpa) calls the same operators as ours (three Q, K, V addmm, one SDPA, GELU, "
         f"LayerNorm); matmuls are {100 * share:.0f} % of our forward and run at this machine's "
         f"matmul speed ({fp32_units}) in both, so 0.9 x would need everything else "
         f"{100 * rest_cut:.0f} % faster than the same operators run by BertModel; compiling fuses "
         f"only the non-matmul rest"),
        ("fused encoder <= 0.9 x BertModel (same weights), training", "train ours/hf", 0.9, "<=",
         "the same operators as BertModel again, forward and backward, with dropout in the same "
         "places (on CPU, drawing dropout masks costs more than the attention)"),
        # --- throughput, float32
        ("fused forward >= 75 % of float32 matmul throughput", "fraction of matmul", 0.75, ">=",
         f"the linear layers, {100 * share:.0f} % of the time, run at "
         f"{100 * v.get('linear vs matmul', nan):.0f} % of the square matmul's speed on {fp32_units} "
         f"(their inner size D = 384 is short); the attention kernel, "
         f"{100 * v.get('attention share', nan):.0f} % of the time, at "
         f"{100 * v.get('attention vs matmul', nan):.0f} % (per head, small (T, Dh) x (Dh, T) "
         f"products); GELU, layer norms, adds and addmm's bias copies do few FLOPs per byte moved"),
        ("padding-free forward, real tokens' FLOPs only, % of float32 matmul throughput",
         "packed fraction of matmul", None, "info", ""),
        # --- bfloat16 weights, eval
        ("padding-free encoder, bfloat16 weights <= 0.80 x torch.nn.TransformerEncoder (defaults), "
         "bfloat16 weights, eval, a quarter of every row padded", "bf16 packed ours/torch", 0.80,
         "<=", bf16_reason),
        ("padding-free encoder, bfloat16 weights <= 0.80 x torch.nn.TransformerEncoder (defaults), "
         "bfloat16 weights, eval, rows padded 0-50 %", "bf16 varied packed ours/torch", 0.80,
         "<=", bf16_reason),
        ("padding-free encoder (nothing to pack: its fused kernels), bfloat16 weights <= 1.00 x "
         "torch.nn.TransformerEncoder, bfloat16 weights, eval, no padding",
         "bf16 unpadded packed ours/torch", 1.0, "<=",
         unpadded_reason(v.get("bf16 unpadded torch ms", nan), v.get("bf16 unpadded packed ours ms", nan),
                         f"bfloat16 matmuls on {bf16_units} (ours through oneDNN's linear layer, "
                         f"the bias inside each product)", bf16_share)),
        ("fused encoder (padded path), bfloat16 weights <= 0.75 x torch.nn.TransformerEncoder with "
         "enable_nested_tensor=False, bfloat16 weights, eval", "bf16 ours/torch padded", 0.75, "<=",
         f"torch's bfloat16 encoder {'took' if v.get('bf16 torch fast path') else 'did not take'} its "
         f"fused fast path; {bf16_reason}"),
        ("fused forward, bfloat16 weights >= 50 % of bfloat16 matmul throughput",
         "bf16 fraction of matmul", 0.50, ">=",
         f"the {v.get('bf16 matmul GFLOP/s', nan):.0f} GFLOP/s bfloat16 square matmul ({bf16_units}) "
         f"is {v.get('bf16 matmul GFLOP/s', nan) / v.get('matmul GFLOP/s', nan):.1f} x float32's, but "
         f"matmuls are only {100 * bf16_share:.0f} % of our bfloat16 forward and the attention kernel "
         f"{100 * v.get('bf16 attention share', nan):.0f} %: layer norms, GELU, adds and conversions "
         f"did not speed up with the matmuls"),
        ("padding-free forward, bfloat16 weights, real tokens' FLOPs only, % of bfloat16 matmul "
         "throughput", "bf16 packed fraction of matmul", None, "info", ""),
        # --- sentence embeddings
        ("sentence embeddings, ours float32 >= 1.2 x sentence-transformers' sentences/s",
         "sentences fp32 ratio", 1.2, ">=",
         f"sentence-transformers runs BertModel (sdpa) on length-sorted batches of 32 that are only "
         f"{100 * v.get('sentences theirs padding share', nan):.0f} % padding, so skipping the padding "
         f"is worth at most {1 / (1 - v.get('sentences theirs padding share', nan)):.2f} x; per token "
         f"ours runs the same float32 matmuls on {fp32_units} as BertModel (our padded forward: "
         f"{v.get('eval ours/hf', nan):.2f} x BertModel's time, section 2)"),
        ("sentence embeddings, ours bfloat16 >= 2.0 x sentence-transformers' (float32) sentences/s",
         "sentences bf16 ratio", 2.0, ">=",
         f"bfloat16 speeds up the matmuls only ({bf16_units}): our bfloat16 forward reaches "
         f"{100 * v.get('bf16 fraction of matmul', nan):.0f} % of the bfloat16 matmul (section 4); "
         f"short sentences are small matmuls, the rest per-token work"),
        ("sentence embeddings, ours bfloat16, one pass over new sentences (kernels for new shapes "
         "built on the way), x sentence-transformers' sentences/s", "sentences bf16 first pass ratio",
         None, "info", ""),
        (f"fused peak memory <= 1/4 of explicit at T {int(v.get('sweep longest length', 0))}",
         "sweep longest memory ratio", 0.25, "<=",
         "at this length the (B, H, T, T) weights are still small beside the (B, T, D) activations"),
    ]
    lines = ["## Targets", ""]
    if quick:
        lines += ["(--quick: sizes reduced, targets not judged)", ""]
    lines += ["Rounds: the lowest and highest value of a ratio in single rounds of its measurement "
              "(each round times every implementation once, in turns). Where they straddle the bound, "
              "the machine's scatter alone can turn the verdict: another run may give the other one.", ""]
    records: list[dict[str, object]] = []
    for label, key, bound, op, reason in checks:
        value = v.get(key)
        if value is None or value != value:  # not measured (or NaN)
            lines.append(f"- SKIP {label}: not measured")
            records.append({"target": label, "value": None, "shown": "not measured", "bound": bound,
                            "op": op, "verdict": "SKIP"})
            continue
        ok = op == "info" or (value <= bound if op == "<=" else value >= bound)
        shown = shown_value(value, bound, "throughput" in label)
        rounds = report.spreads.get(key)
        straddles = rounds is not None and bound is not None and rounds[0] <= bound <= rounds[1]
        if rounds is not None:
            shown += f" [rounds {rounds[0]:.2f}-{rounds[1]:.2f}"
            shown += ", straddling the bound]" if straddles else "]"
        verdict = "INFO" if quick or op == "info" else ("PASS" if ok else "MISS")
        lines.append(f"- {verdict} {label}: measured {shown}" + ("" if ok or quick else f" ({reason})"))
        records.append({"target": label, "value": value, "shown": shown, "bound": bound, "op": op,
                        "verdict": verdict, "rounds": rounds, "straddles": straddles,
                        "reason": None if ok or quick else reason})
    return lines, records
