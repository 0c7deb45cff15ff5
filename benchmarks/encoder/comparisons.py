"""Sections 1 and 2: our encoder beside ``torch.nn.TransformerEncoder`` (random weights) and
beside ``transformers.BertModel`` (all-MiniLM-L6-v2's weights), eval forward and training step."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import torch

from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.packing import Packing
from transformer_course.profiling import fused_attention_kernels

from .floor import BARE, EAGER_FLOOR, floor_forwards
from .measure import (
    compare,
    counted_flops,
    forward_flops,
    max_difference,
    training_repeats,
    training_step,
    uses_nested_tensors,
    uses_torch_fast_path,
)
from .models import (
    EXPLICIT,
    FUSED,
    PACKED,
    TORCH,
    TORCH_PADDED,
    EmbeddingsThenTorchEncoder,
    Sizes,
    padding_mask,
    random_models,
    torch_default_like,
    torch_encoder_like,
    varied_padding_mask,
)
from .report import Report


def random_weights_section(
    report: Report, sizes: Sizes, device: torch.device, args
) -> dict[str, object]:
    """Section 1: our Encoder (padding-free, fused, explicit) beside torch.nn.TransformerEncoder
    as users build it (nested tensors on) and with ``enable_nested_tensor=False``.

    Returns our fused and padding-free eval forwards and the padding-free batch's row lengths,
    for section 3 to time beside a matmul.
    """
    s = sizes
    theirs_padded, fused, x, mask = random_models(s, device)
    theirs = torch_default_like(theirs_padded)  # the default: nested tensors on
    packed = copy.deepcopy(fused)  # each its own parameters and optimizer state in training
    explicit = copy.deepcopy(fused)
    varied = varied_padding_mask(s.batch, s.length, device)

    def eval_impls(mask: torch.Tensor, with_explicit: bool) -> dict[str, Callable[[], torch.Tensor]]:
        ignore = to_torch_key_padding_mask(mask)  # torch's sense: True = ignore
        impls = {
            TORCH: lambda: theirs(x, src_key_padding_mask=ignore),
            TORCH_PADDED: lambda: theirs_padded(x, src_key_padding_mask=ignore),
            PACKED: lambda: packed(x, mask, padding_free=True),
            FUSED: lambda: fused(x, mask),
        }
        if with_explicit:
            impls[EXPLICIT] = lambda: explicit(x, mask, return_attention=True)[0]
        return impls

    models = (theirs, theirs_padded, fused, packed, explicit)
    for model in models:
        model.eval()
    quarter, mixed = eval_impls(mask, True), eval_impls(varied, False)
    with torch.inference_mode():
        for impls, m in ((quarter, mask), (mixed, varied)):
            reference = impls[TORCH]()
            valid = m[:, :, None].expand_as(reference)  # torch's nested path zeroes padded outputs
            for name, fn in impls.items():
                diff = max_difference(fn()[valid], reference[valid])
                assert diff < 1e-3, f"{name} differs from torch by {diff}"
        fast_path = uses_torch_fast_path(quarter[TORCH_PADDED])
        nested = uses_nested_tensors(quarter[TORCH])
        kernels = sorted(set(fused_attention_kernels(quarter[FUSED])))
        # The floors under the padding-free path (encoder.floor) take their turns in each case's
        # rounds, for the targets' reasons; they compute nothing to compare, and no table shows them.
        eval_times = compare(quarter | floor_forwards(packed, Packing.from_mask(mask)),
                             args.warmup, args.repeats, args.min_run_time)
        mixed_times = compare(mixed | floor_forwards(packed, Packing.from_mask(varied)),
                              args.warmup, args.repeats, args.min_run_time)
        # Without padding: no mask at all, torch's fast path and ours as a user calls them (the
        # padding-free path packs nothing then, but runs its fused kernels).
        floors = floor_forwards(packed, Packing.unpadded(*x.shape[:2]))
        unpadded = compare({TORCH: lambda: theirs(x), PACKED: lambda: packed(x, padding_free=True),
                            FUSED: lambda: fused(x), **floors}, args.warmup, args.repeats, args.min_run_time)
    for model in models:
        model.train()
    train_fns = {name: (model, quarter[name])
                 for name, model in ((TORCH, theirs), (PACKED, packed), (FUSED, fused), (EXPLICIT, explicit))}
    train_times = compare({name: training_step(model, fn) for name, (model, fn) in train_fns.items()},
                          *training_repeats(args), args.min_run_time)

    report.lines += [
        f"## 1. Encoder, random weights: D {s.d_model}, {s.num_heads} heads, d_ff {s.d_ff}, "
        f"{s.num_layers} layers, GELU, post-LN, B {s.batch}, T {s.length}, float32",
        "",
        f"Reference: `{TORCH}` built with its defaults, as its users run it: in eval with a "
        f"padding mask its fast path packs the real tokens into a nested tensor "
        f"({'it did' if nested else 'it did NOT, here'}) and never computes the padded positions. "
        f"The second row, `{TORCH_PADDED}`, computes them, as our padded paths do. *{PACKED}*: "
        f"`Encoder(x, mask, padding_free=True)`, the real tokens packed into one matrix, with Q, K, "
        f"V in one matmul and linear1's bias and GELU in one kernel (`transformer_course.fused`; "
        f"without a mask it packs nothing); "
        f"*{FUSED}*: the padded path with `F.scaled_dot_product_attention`. "
        f"*eval forward*: a quarter of every row is padding; *rows padded 0-50 %*: row i of "
        f"B ends in i/(B-1) of T/2 padded positions ({100 * (1 - varied.float().mean().item()):.0f} % "
        f"in all). Eval runs under `torch.inference_mode()`; torch's fast path "
        f"(`_transformer_encoder_layer_fwd`) {'ran' if fast_path else 'did NOT run'}; our fused "
        f"attention ran `{', '.join(kernels)}`. Training step (a quarter padding): forward, "
        f"backward, AdamW; torch's encoder takes no fast path in training. Timed in the same "
        f"rounds of each eval case but not shown: the floors under the padding-free path "
        f"(`encoder.floor`: its bare kernels, and the least eager code around them), which the "
        f"targets quote.",
        "",
    ]
    for case, timings in (("eval", eval_times), ("eval varied", mixed_times), ("eval unpadded", unpadded)):
        for name, key in ((BARE, "bare kernels"), (EAGER_FLOOR, "eager floor")):
            report.ratio(f"{case} {key}/torch", timings, name, TORCH)
            report.values[f"{case} {key} ms"] = timings[name] * 1e3
    eval_times, mixed_times, unpadded = (t.without(BARE, EAGER_FLOOR)
                                         for t in (eval_times, mixed_times, unpadded))
    report.timing_table("random_weights", [("eval forward", eval_times),
                                           ("eval forward, rows padded 0-50 %", mixed_times),
                                           ("eval forward, no padding", unpadded),
                                           ("training step", train_times)],
                        TORCH, "ratio to torch")
    for case, timings in (("eval", eval_times), ("eval varied", mixed_times), ("eval unpadded", unpadded),
                          ("train", train_times)):
        report.ratio(f"{case} ours/torch", timings, FUSED, TORCH)
        report.values[f"{case} torch ms"] = timings[TORCH] * 1e3
        report.values[f"{case} ours ms"] = timings[FUSED] * 1e3
        if PACKED in timings:
            report.ratio(f"{case} packed ours/torch", timings, PACKED, TORCH)
            report.values[f"{case} packed ours ms"] = timings[PACKED] * 1e3
        if TORCH_PADDED in timings:
            report.ratio(f"{case} ours/torch padded", timings, FUSED, TORCH_PADDED)
            report.values[f"{case} torch padded ms"] = timings[TORCH_PADDED] * 1e3
    report.values["torch nested"] = float(nested)
    for case, m in (("eval", mask), ("eval varied", varied)):  # what the targets' reasons quote
        lengths = m.sum(dim=1).tolist()
        report.values[f"{case} real tokens"] = sum(lengths)
        report.values[f"{case} real share"] = sum(lengths) / m.numel()
        report.values[f"{case} attention calls"] = len(Packing.from_mask(m).runs)  # per layer

    flops = forward_flops(s.batch, s.length, s.d_model, s.d_ff, s.num_layers)
    with torch.no_grad():
        # The explicit path is plain matmuls, which FlopCounterMode counts on every device; it
        # has no formula for the CPU flash-attention kernel of the fused path.
        counted = counted_flops(lambda: explicit.eval()(x, mask, return_attention=True))
    assert abs(counted - flops) <= 0.02 * flops, f"analytic {flops} vs FlopCounterMode {counted}"
    report.values["forward flops"] = flops
    report.values["counted flops"] = counted
    fused.eval()
    packed.eval()

    def fused_forward() -> torch.Tensor:
        with torch.inference_mode():
            return fused(x, mask)

    def packed_forward() -> torch.Tensor:
        with torch.inference_mode():
            return packed(x, mask, padding_free=True)

    return {"fused": fused_forward, "packed": packed_forward, "lengths": mask.sum(dim=1).tolist()}


def pretrained_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 2: all-MiniLM-L6-v2's real weights in ours, in torch's encoder and in BertModel."""
    from transformer_course.pretrained import find_model_dir, load_minilm

    s = sizes
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
    packed = copy.deepcopy(fused)
    torch_stack = EmbeddingsThenTorchEncoder(copy.deepcopy(fused.embedding),
                                             torch_encoder_like(fused.encoder)).to(device).eval()

    gen = torch.Generator().manual_seed(1)
    mask = padding_mask(s.batch, s.length, device).long()  # Hugging Face's 0/1 attention_mask
    ids = torch.randint(1000, fused.config.vocab_size, (s.batch, s.length), generator=gen).to(device)
    ids = ids.masked_fill(mask == 0, fused.config.pad_token_id)
    ids[:, 0] = 101  # [CLS]
    impls = {
        f"transformers.BertModel ({attn_implementation})": lambda: hf(input_ids=ids, attention_mask=mask)[0],
        PACKED: lambda: packed(ids, mask, padding_free=True),
        FUSED: lambda: fused(ids, mask),
        EXPLICIT: lambda: explicit(ids, mask, return_attention=True)[0],
        "our embeddings + torch.nn.TransformerEncoder": lambda: torch_stack(ids, mask),
    }
    hf_name = next(iter(impls))
    models = (hf, packed, fused, explicit, torch_stack)
    with torch.inference_mode():
        reference = impls[hf_name]()
        valid = mask.bool()[:, :, None].expand_as(reference)  # torch's fast path zeroes padded outputs
        for name, fn in impls.items():
            diff = max_difference(fn()[valid], reference[valid])
            assert diff < 1e-3, f"{name} differs from BertModel by {diff}: not the same weights"
        eval_times = compare(impls, args.warmup, args.repeats, args.min_run_time)
        bf16_times: dict[str, float | str] = {}
        if args.bf16_support[0]:
            hf16 = copy.deepcopy(hf).to(torch.bfloat16)
            fused16 = copy.deepcopy(fused).to(torch.bfloat16)
            bf16_times = compare({f"transformers.BertModel ({attn_implementation}), bfloat16 weights":
                                  lambda: hf16(input_ids=ids, attention_mask=mask)[0],
                                  f"{PACKED}, bfloat16 weights":
                                  lambda: fused16(ids, mask, padding_free=True),
                                  f"{FUSED}, bfloat16 weights": lambda: fused16(ids, mask)},
                                 args.warmup, args.repeats, args.min_run_time)
            del hf16, fused16
        else:
            bf16_times = {"bfloat16 weights": f"n/a: {args.bf16_support[1]}"}
    for model in models:
        model.train()  # dropout 0.1, as configured
    train_times = compare({name: training_step(model, fn) for (name, fn), model in
                           zip(impls.items(), models, strict=True)},
                          *training_repeats(args), args.min_run_time)

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
    report.timing_table("pretrained", [("eval forward", eval_times), ("training step", train_times)],
                        hf_name, "ratio to BertModel")
    report.lines += ["bfloat16 weights (`.to(torch.bfloat16)`), eval; ratio to BertModel with "
                     "bfloat16 weights:", ""]
    report.timing_table("pretrained_bfloat16", [("eval forward", bf16_times)], next(iter(bf16_times)),
                        "ratio to BertModel bf16")
    report.ratio("eval ours/hf", eval_times, FUSED, hf_name)
    report.ratio("eval packed ours/hf", eval_times, PACKED, hf_name)
    report.values["hf eval ms"] = eval_times[hf_name] * 1e3
    report.ratio("train ours/hf", train_times, FUSED, hf_name)
