"""Everything that needs a GPU, in one command and one report: `make gpu-check`.

Nothing of this project has run on CUDA in CI (CI has no GPU). On a machine with an NVIDIA GPU,
this runs, in order, each step with a time limit so the whole check stays within ~5 minutes:

1. the `gpu`-marked tests (CUDA parity in float32 and bfloat16, no NaN in half precision,
   fused-kernel dispatch, CUDA autocast);
2. every chapter of `_toc.yml` executed on CUDA with nbval's lax mode (outputs are not compared,
   every assert must hold): `runtime.setup()` picks CUDA when it is present;
3. `benchmarks/bench_encoder.py --device cuda` (its CUDA section: bfloat16 tokens/s and the
   share of the card's peak).

It writes `<out>/report.md` (each step: exit code, seconds, the tail of its output) and each
step's full log beside it, prints the report, and exits 0 only if every step passed. Without a
CUDA device it says so and exits 1 before running anything.

Usage: python -m book_tools.gpu_check [--out _build/gpu-check]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from book_tools.toc import ROOT, toc_chapters

NB_ENV = {"TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"}


def steps(out: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in seconds) of every step."""
    python = sys.executable
    chapters = [f"{chapter}.ipynb" for chapter in toc_chapters()]
    return [
        ("gpu tests", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], 120),
        ("chapters on CUDA (nbval-lax)",
         [python, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q", "-p", "no:cacheprovider",
          "--nbval-cell-timeout=300", *chapters], 240),
        ("benchmark, CUDA", [python, "benchmarks/bench_encoder.py", "--device", "cuda",
                             "--out", str(out / "bench.md")], 180),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "gpu-check")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); "
              "run `make gpu-check` on a machine with an NVIDIA GPU. Nothing was run.", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    lines = [f"# GPU check: {device}, torch {torch.__version__}, CUDA {torch.version.cuda}", ""]
    failed = 0
    for name, command, limit in steps(args.out):
        start = time.perf_counter()
        log = args.out / (name.split()[0] + ".log")
        try:
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit,
                                 env={**os.environ, **NB_ENV})
            code, output = run.returncode, run.stdout + run.stderr
        except subprocess.TimeoutExpired as stopped:  # its output so far may come back as bytes
            code, output = "timeout", stopped.stdout or ""
            output = output.decode(errors="replace") if isinstance(output, bytes) else output
        seconds = time.perf_counter() - start
        log.write_text(output)
        failed += code != 0
        tail = "\n".join(output.strip().splitlines()[-15:])
        verdict = "passed" if code == 0 else "FAILED"
        heading = f"## {name}: {verdict} (exit {code}, {seconds:.0f} s, limit {limit} s)"
        lines += [heading, "", "```", tail, "```", f"full log: {log}", ""]
        print(heading, flush=True)
    report = "\n".join(lines)
    (args.out / "report.md").write_text(report)
    print(report)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
