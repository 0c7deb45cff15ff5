"""What every recorded run of the book says about where it ran, and how a record is written.

The tools that record runs a chapter renders instead of rerunning (``recall_sweep``,
``seq2seq_variants``) share these: :func:`machine` (the processor, the kernels torch picked, the
versions and the date, so a reader knows where the digits came from) and :func:`write`.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The processor's model name (Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The ``recorded`` entry of a record: processor and cores, torch's kernels (AVX2, AVX512, ...),
    torch's and Python's versions, today's date. Every run records with one torch thread."""
    return {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, one torch thread",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def write(record: dict, out: Path) -> None:
    """Write ``record`` as indented JSON to ``out`` (its folder created) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} ({len(record['runs'])} runs)")
