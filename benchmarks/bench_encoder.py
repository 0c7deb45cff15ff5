"""Our encoder beside torch.nn.TransformerEncoder and Hugging Face's BertModel, in one process.

Everything is measured in this one process, so that every ratio compares implementations under
the same threads, allocator and load. Each time is the median over ``--repeats`` rounds (after
``--warmup`` untimed calls) of ``torch.utils.benchmark`` medians; the implementations of one
comparison take turns within every round, so a burst of load from another job slows all of them
alike instead of one.

1. Random weights at the size of all-MiniLM-L6-v2 (D 384, 12 heads, d_ff 1536, 6 layers, GELU,
   post-LN), B 8, T 128, float32, a quarter of every row padding: eval forward and a training
   step (forward, backward, AdamW) of our Encoder (fused attention), our explicit path
   (``return_attention=True``) and ``torch.nn.TransformerEncoder`` (its native fast path in eval
   under ``torch.inference_mode``). Ratios to torch.
2. The real all-MiniLM-L6-v2 weights, embeddings included: our ``PretrainedEncoder``, the same
   with explicit attention, our embeddings feeding a ``torch.nn.TransformerEncoder`` holding the
   same weights, and ``transformers.BertModel.from_pretrained`` of the same folder (its default
   attention implementation, sdpa), same ids and mask. Ratios to BertModel.
3. FLOPs of the forward counted analytically (``encoder.measure.forward_flops``), checked against
   ``torch.utils.flop_counter.FlopCounterMode``, and the achieved GFLOP/s of our fused forward as
   a percentage of this machine's float32 matmul throughput, timed here.
4. bfloat16 at section 1's sizes: ours and torch's encoder with bfloat16 weights and under
   bfloat16 autocast (a failure is reported as a row), beside the bfloat16 and float32 matmul speed.
5. ``torch.compile`` of our PretrainedEncoder (eval and a training step), compile time apart,
   beside eager ours and BertModel.
6. Sentence embeddings of generated sentences: ``embed_sentences`` in float32 and bfloat16
   against ``sentence_transformers.SentenceTransformer.encode``, sentences per second.
7. A length sweep T = 64 ... 4096 at a fixed number of tokens B·T: time and peak memory of one
   attention layer, explicit vs fused.
8. On CUDA only: tokens per second of a bfloat16-autocast training step and the fraction of the
   card's bfloat16 dense peak.

Times come from ``torch.utils.benchmark`` (``Timer.blocked_autorange``, several short rounds per
implementation, in turns; see :func:`encoder.measure.compare`). The targets are printed as
PASS/MISS lines below the tables, each with its measured value, and the reason where one is
missed. The whole report is printed and written to ``_build/bench/encoder.md``, and its tables as
numbers to ``_build/bench/encoder.json``.

    python benchmarks/bench_encoder.py [--threads 2] [--repeats 9] [--quick] [--device cpu]

``--quick`` shrinks every size and repeat count so the script finishes in seconds (the smoke test
uses it) and skips the compile; its numbers say nothing about speed and its targets are not judged.

This file is the entry point: its options, the re-execution in the measuring environment (malloc
tunables, OpenMP's default wait policy: ``encoder.machine.measuring_environment``), and the run
of every section into one report. The measuring, the models, the sections and the report are the
modules of ``benchmarks/encoder/`` (see its ``__init__``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

# benchmarks/encoder/, found because Python puts this script's folder on sys.path
from encoder.comparisons import pretrained_section, random_weights_section
from encoder.compiled import compile_section
from encoder.machine import (
    MALLOC_TUNABLES,
    Interference,
    bfloat16_support,
    matrix_features,
    measuring_environment,
)
from encoder.measure import training_repeats
from encoder.models import QUICK, Sizes
from encoder.report import Report, finite
from encoder.sentences import sentences_section
from encoder.sweep import sweep_section
from encoder.targets import targets
from encoder.throughput import bfloat16_section, cuda_section, throughput_section

from book_tools.recording import cpu_name
from transformer_course import runtime

# torch.nn.TransformerEncoder as users build it warns, from inside, that its nested tensors are a
# prototype; the benchmark times that path on purpose, so the warning says nothing here.
warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors", category=UserWarning)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "bench" / "encoder.md"

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each case (default 3)")
    parser.add_argument("--repeats", type=int, default=9,
                        help="rounds of blocked_autorange per eval case; training and long sweep "
                             "points use fewer (default 9)")
    parser.add_argument("--min-run-time", type=float, default=0.05,
                        help="seconds of each blocked_autorange round (default 0.05)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 2 rounds: a smoke test of every section, in seconds")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--no-hf", action="store_true",
                        help="skip the sections that need Hugging Face (2, 5 and 6)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile section")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default malloc thresholds instead of the caching ones")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the table "
                        f"(default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats, args.min_run_time = 1, 2, 0.01
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    environment = measuring_environment(dict(os.environ), args.default_malloc)
    if environment is not None and argv is None:  # run as a script: again, in that environment
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)
    torch.set_num_threads(args.threads)
    device = runtime.setup(0, device=args.device)  # seeds; float32 matmuls stay true float32 (no TF32)
    # Timing, not reproducing: the default kernels, as a user runs them (setup asks for
    # deterministic ones, slower for the embedding backward on CUDA, for instance).
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    args.bf16_support = bfloat16_support(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    features = matrix_features()

    report = Report(lines=[
        "# Encoder benchmarks",
        "",
        f"torch {torch.__version__}, device {device} ({machine}; matrix features: "
        f"{', '.join(features) or 'none named'}; torch's kernels: "
        f"{torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at the start, "
        f"malloc {'tuned' if os.environ.get('GLIBC_TUNABLES') == MALLOC_TUNABLES else 'default'}, "
        f"OpenMP wait policy {os.environ.get('OMP_WAIT_POLICY', 'default')}, "
        f"bfloat16: {args.bf16_support[1]}"
        + (", --quick (sizes reduced: not a measurement)" if args.quick else ""),
        "",
        f"Times: `torch.utils.benchmark.Timer.blocked_autorange(min_run_time={args.min_run_time})`, "
        f"{args.repeats} rounds per eval case (training: {training_repeats(args)[1]}), the "
        f"implementations of one table in turns, median of the per-round medians.",
        "",
    ], values={})
    interference = Interference()
    interference.mark("1. random weights")
    forwards = random_weights_section(report, sizes, device, args)
    if not args.no_hf:
        interference.mark("2. all-MiniLM-L6-v2")
        pretrained_section(report, sizes, device, args)
    interference.mark("3. throughput")
    throughput_section(report, sizes, device, args, forwards)
    interference.mark("4. bfloat16")
    bfloat16_section(report, sizes, device, args)
    if not args.no_hf:
        interference.mark("5. torch.compile")
        compile_section(report, sizes, device, args)
        interference.mark("6. sentence embeddings")
        sentences_section(report, sizes, device, args)
    interference.mark("7. length sweep")
    sweep_section(report, sizes, device, args)
    if device.type == "cuda":
        interference.mark("8. CUDA bfloat16")
        cuda_section(report, sizes, device, args)
    interference.mark("end")
    target_lines, target_records = targets(report, args.quick, features)
    report.lines += target_lines
    report.lines += ["", interference.summary()]
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    duration = time.perf_counter() - started
    report.lines += ["", f"{duration:.0f} s, load average {load_end:.2f} at the end"]

    text = "\n".join(report.lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    results = {
        "machine": machine,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # torch's kernels: AVX2, AVX512, ...
        "cpu_features": features,  # AMX, AVX-512 bf16, AVX-512, AVX2, ... (encoder.machine.MATRIX_FEATURES)
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),  # see measuring_environment
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "bfloat16": {"supported": args.bf16_support[0], "how": args.bf16_support[1]},
        "timing": {"method": "torch.utils.benchmark.Timer.blocked_autorange", "rounds": args.repeats,
                   "min_run_time_s": args.min_run_time},
        "load_average": {"start": load, "end": load_end},
        "other_processes_cpu_share": interference.shares(),
        "duration_s": duration,
        "tables": report.tables,
        "targets": target_records,
        "values": report.values,
        "spreads": report.spreads,  # a ratio's [lowest, highest] over the rounds of its measurement
    }
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps(finite(results), indent=1, allow_nan=False, default=str) + "\n",
                         encoding="utf-8")
    print(f"\nwritten to {args.out} and {json_path}")


if __name__ == "__main__":
    main()
