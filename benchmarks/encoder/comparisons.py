"""Sections 1 and 2: our encoder beside ``torch.nn.TransformerEncoder`` (random weights) and
beside ``transformers.BertModel`` (all-MiniLM-L6-v2's weights), eval forward and training step."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import torch

from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.profiling import fused_attention_kernels

from .measure import (
    compare,
    counted_flops,
    forward_flops,
    max_difference,
    training_repeats,
    training_step,
    uses_torch_fast_path,
)
from .models import EmbeddingsThenTorchEncoder, Sizes, padding_mask, random_models, torch_encoder_like
from .report import Report


def random_weights_section(
    report: Report, sizes: Sizes, device: torch.device, args
) -> Callable[[], torch.Tensor]:
    """Section 1: our Encoder, fused and explicit, beside torch.nn.TransformerEncoder.

    Returns our fused eval forward, for section 3 to time beside a matmul.
    """
    s = sizes
    theirs, fused, x, mask = random_models(s, device)
    explicit = copy.deepcopy(fused)  # its own parameters and optimizer state in training
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
        eval_times = compare(impls, args.warmup, args.repeats, args.min_run_time)
        # Without padding: no mask at all, torch's fast path and our kernel as a user calls them.
        unpadded = compare({"torch.nn.TransformerEncoder": lambda: theirs(x),
                            "ours, fused attention": lambda: fused(x)},
                           args.warmup, args.repeats, args.min_run_time)
    for model in (theirs, fused, explicit):
        model.train()
    train_times = compare({name: training_step(model, fn) for (name, fn), model in
                           zip(impls.items(), (theirs, fused, explicit), strict=True)},
                          *training_repeats(args), args.min_run_time)

    report.lines += [
        f"## 1. Encoder, random weights: D {s.d_model}, {s.num_heads} heads, d_ff {s.d_ff}, "
        f"{s.num_layers} layers, GELU, post-LN, B {s.batch}, T {s.length}, float32",
        "",
        f"A quarter of every row is padding. Eval runs under `torch.inference_mode()`; torch's fast "
        f"path (`_transformer_encoder_layer_fwd`) {'ran' if fast_path else 'did NOT run'}; our fused "
        f"attention ran `{', '.join(kernels)}`. Training step: forward, backward, AdamW.",
        "",
    ]
    report.timing_table("random_weights", [("eval forward", eval_times),
                                           ("eval forward, no padding", unpadded),
                                           ("training step", train_times)],
                        "torch.nn.TransformerEncoder", "ratio to torch")
    for case, timings in (("eval", eval_times), ("eval unpadded", unpadded), ("train", train_times)):
        report.values[f"{case} ours/torch"] = (timings["ours, fused attention"]
                                               / timings["torch.nn.TransformerEncoder"])
        report.values[f"{case} torch ms"] = timings["torch.nn.TransformerEncoder"] * 1e3
        report.values[f"{case} ours ms"] = timings["ours, fused attention"] * 1e3

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
        eval_times = compare(impls, args.warmup, args.repeats, args.min_run_time)
        bf16_times: dict[str, float | str] = {}
        if args.bf16_support[0]:
            hf16 = copy.deepcopy(hf).to(torch.bfloat16)
            fused16 = copy.deepcopy(fused).to(torch.bfloat16)
            bf16_times = compare({f"transformers.BertModel ({attn_implementation}), bfloat16 weights":
                                  lambda: hf16(input_ids=ids, attention_mask=mask)[0],
                                  "ours, fused attention, bfloat16 weights": lambda: fused16(ids, mask)},
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
    report.values["eval ours/hf"] = eval_times["ours, fused attention"] / eval_times[hf_name]
    report.values["hf eval ms"] = eval_times[hf_name] * 1e3
    report.values["train ours/hf"] = train_times["ours, fused attention"] / train_times[hf_name]
