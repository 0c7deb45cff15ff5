"""Section 5: ``torch.compile`` of our PretrainedEncoder, eval and a training step, beside eager
ours and BertModel, with the compile time apart."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from .measure import compare, max_difference, synchronizer, time_once, training_repeats, training_step
from .models import Sizes, load_pretrained_pair, padding_mask
from .report import Report, first_line


def compile_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 5: ``torch.compile`` of our PretrainedEncoder beside eager ours and BertModel."""
    s = sizes
    heading = (f"## 5. torch.compile of our encoder: all-MiniLM-L6-v2, B {s.batch}, T {s.length}, "
               f"float32, a quarter padding")
    reason = ("--quick: compiling takes 15-30 s on 2 cores, more than the whole smoke test"
              if args.quick else "--no-compile" if args.no_compile else None)
    loaded = None if reason else load_pretrained_pair(device)
    if isinstance(loaded, str):
        reason = loaded
    if reason:
        report.lines += [heading, "", f"Skipped ({reason}).", ""]
        report.tables["compile"] = [{"case": "all", "implementation": "ours, compiled", "ms": None,
                                     "note": f"skipped: {reason}"}]
        return
    hf, ours, _ = loaded
    gen = torch.Generator().manual_seed(1)
    mask = padding_mask(s.batch, s.length, device).long()
    ids = torch.randint(1000, ours.config.vocab_size, (s.batch, s.length), generator=gen).to(device)
    ids = ids.masked_fill(mask == 0, ours.config.pad_token_id)
    ids[:, 0] = 101  # [CLS]
    hf_name = f"transformers.BertModel ({hf.config._attn_implementation}), eager"
    sync = synchronizer(device)
    compile_seconds: dict[str, float | str] = {}

    def compiled_or_failure(model: nn.Module, case: str, first_call: Callable[[Callable], object]):
        """torch.compile(model), its first call timed (the compile); the failure's text if it fails."""
        compiled = torch.compile(model)
        try:
            compile_seconds[case] = time_once(lambda: first_call(compiled), sync)
        except Exception as error:  # noqa: BLE001 - no C++ compiler, an unsupported operator, ...
            compile_seconds[case] = f"fails: {type(error).__name__}: {first_line(error)}"
            return None
        return compiled

    compiled_eval = copy.deepcopy(ours).eval()
    with torch.inference_mode():
        eval_impls: dict[str, Callable[[], torch.Tensor]] = {
            hf_name: lambda: hf(input_ids=ids, attention_mask=mask)[0],
            "ours, fused attention, eager": lambda: ours(ids, mask),
        }
        compiled = compiled_or_failure(compiled_eval, "eval forward", lambda m: m(ids, mask))
        if compiled is not None:
            eval_impls["ours, fused attention, compiled"] = lambda: compiled(ids, mask)
            valid = mask.bool()[:, :, None].expand(-1, -1, ours.config.d_model)
            diff = max_difference(compiled(ids, mask)[valid], ours(ids, mask)[valid])
            assert diff < 1e-3, f"compiled differs from eager by {diff}"
        eval_times: dict[str, float | str] = compare(eval_impls, args.warmup, args.repeats, args.min_run_time)
    if compiled is None:
        eval_times["ours, fused attention, compiled"] = compile_seconds["eval forward"]

    train_models = {hf_name: hf, "ours, fused attention, eager": ours,
                    "ours, fused attention, compiled": copy.deepcopy(ours)}
    for model in train_models.values():
        model.train()  # dropout 0.1, as configured
    steps = {hf_name: training_step(hf, lambda: hf(input_ids=ids, attention_mask=mask)[0]),
             "ours, fused attention, eager": training_step(ours, lambda: ours(ids, mask))}
    compiled_train = compiled_or_failure(train_models["ours, fused attention, compiled"], "training step",
                                         lambda m: m(ids, mask).square().mean().backward())
    if compiled_train is not None:
        steps["ours, fused attention, compiled"] = training_step(
            train_models["ours, fused attention, compiled"], lambda: compiled_train(ids, mask))
    train_times: dict[str, float | str] = compare(steps, *training_repeats(args), args.min_run_time)
    if compiled_train is None:
        train_times["ours, fused attention, compiled"] = compile_seconds["training step"]

    report.lines += [
        heading,
        "",
        "`torch.compile(model)` (default inductor backend), the compiled model checked equal to the "
        "eager one to 1e-3. Compile time = the first call, timed alone: " + ", ".join(
            f"{case} {value:.1f} s" if isinstance(value, float) else f"{case} {value}"
            for case, value in compile_seconds.items()) + ". Ratio: to BertModel, eager.",
        "",
    ]
    report.timing_table("compile", [("eval forward", eval_times), ("training step", train_times)],
                        hf_name, "ratio to BertModel")
    report.tables["compile_seconds"] = [
        {"case": case, "seconds": value if isinstance(value, float) else None,
         "note": None if isinstance(value, float) else value} for case, value in compile_seconds.items()]
    report.ratio("compile eval ours/hf", eval_times, "ours, fused attention, eager", hf_name)
    if isinstance(eval_times["ours, fused attention, compiled"], float):
        report.ratio("compiled eval ours/hf", eval_times, "ours, fused attention, compiled", hf_name)
    if isinstance(compile_seconds.get("eval forward"), float):
        report.values["compile seconds"] = compile_seconds["eval forward"]
