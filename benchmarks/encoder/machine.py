"""The machine the benchmark runs on: the environment it measures in (malloc, OpenMP), its CPU's
flags (its name comes from `book_tools.recording.cpu_name`), whether bfloat16 runs natively, and
how much of the CPUs other processes took while each section ran."""

from __future__ import annotations

import os
import platform
import sys
import time

import torch

from .measure import compare, square_matmul

# glibc returns every large freed block to the kernel at once (mmap threshold, trim threshold),
# so each new activation tensor of a CPU forward is fresh memory that page-faults and is zeroed
# by the kernel: ~15,000 faults per forward here, a tenth of its time. PyTorch's CPU tuning
# guide advises a caching allocator (jemalloc, tcmalloc); glibc's own tunables do the same with
# nothing to install. They apply to every implementation alike, so the ratios stay fair.
# mmap_threshold: blocks up to 32 MiB (glibc's maximum) come from the heap; trim_threshold: a
# freed heap top of up to 16 GiB is kept for the next allocation instead of returned.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184"


def measuring_environment(environ: dict[str, str], default_malloc: bool) -> dict[str, str] | None:
    """The environment the benchmark measures in, or None when ``environ`` is it already.

    On Linux, glibc's caching malloc tunables (above; a user's own GLIBC_TUNABLES are kept, and
    ``default_malloc`` keeps glibc's defaults). And OpenMP's default wait policy, as torch's users
    run it: OMP_WAIT_POLICY is dropped. `make` sets it to PASSIVE for the notebooks (their threads
    sleep at once when they wait, so that a kernel and pytest can share two cores); under it each
    of the many short parallel loops of torch's nested-tensor path pays a thread wake-up: section
    1's forward with a quarter padding took torch.nn.TransformerEncoder 109 ms instead of 72 on
    the development machine (ours 68 instead of 60). Both settings are read when a process
    starts, so the script runs itself again in this environment.
    """
    wanted = {name: value for name, value in environ.items() if name != "OMP_WAIT_POLICY"}
    if not default_malloc and platform.system() == "Linux":
        wanted.setdefault("GLIBC_TUNABLES", MALLOC_TUNABLES)
    return None if wanted == dict(environ) else wanted


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# The CPU flags that decide how fast matrix products run, strongest first: (flag, what it is).
MATRIX_FEATURES = (
    ("amx_bf16", "AMX bf16 (matrix tiles)"),
    ("avx512_bf16", "AVX-512 bf16 (dot products)"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
    ("fma", "FMA"),
)


def matrix_features(flags: set[str] | None = None) -> list[str]:
    """The matrix features this CPU has, by :data:`MATRIX_FEATURES`' names (Linux; [] elsewhere).

    Examples:
        >>> matrix_features({"avx2", "fma", "avx512f", "avx512_bf16"})
        ['AVX-512 bf16 (dot products)', 'AVX-512', 'AVX2', 'FMA']
    """
    flags = cpu_flags() if flags is None else flags
    return [name for flag, name in MATRIX_FEATURES if flag in flags]


def bfloat16_engine(features: list[str]) -> str:
    """What runs a bfloat16 matmul on this CPU, in a few words (for the targets' reasons)."""
    if "AMX bf16 (matrix tiles)" in features:
        return "AMX tiles"
    if "AVX-512 bf16 (dot products)" in features:
        return "AVX-512 bf16 dot products (no AMX)"
    return "no bfloat16 instructions (no AMX, no AVX-512 bf16): converted to float32"


def float32_engine(features: list[str]) -> str:
    """What runs a float32 matmul on this CPU (AMX has no float32 tiles)."""
    return "AVX-512 FMA" if "AVX-512" in features else ("AVX2 FMA" if "AVX2" in features else "scalar/SSE")


def bfloat16_support(device: torch.device) -> tuple[bool, str]:
    """Whether bfloat16 runs natively here, and how (AMX named when /proc/cpuinfo has amx_bf16)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "CUDA bfloat16" if ok else "this GPU has no bfloat16 support"
    if not torch.backends.mkldnn.is_available():
        return False, "this PyTorch has no oneDNN (mkldnn), which runs bfloat16 matmuls on the CPU"
    # Without native instructions bfloat16 is emulated, far slower than float32: a tiny matmul tells.
    times = compare({dtype: square_matmul(256, device, dtype) for dtype in (torch.float32, torch.bfloat16)},
                    1, 1, 0.02)
    slowdown = times[torch.bfloat16] / times[torch.float32]
    if slowdown > 4:
        return False, (f"a 256 x 256 bfloat16 matmul takes {slowdown:.0f} x float32's time here: "
                       f"bfloat16 is emulated on this CPU")
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True, "AMX (amx_bf16): oneDNN runs bfloat16 matmuls on the CPU's AMX tile units"
    if "avx512_bf16" in flags:
        return True, "AVX512-BF16 (avx512_bf16): bfloat16 dot products in the vector units"
    return True, "no native bfloat16 instructions named in /proc/cpuinfo: oneDNN converts to float32"


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

    def shares(self) -> dict[str, float] | None:
        """Section -> the share of all CPUs that other processes used during it; None without /proc/stat."""
        shares = {}
        spans = zip(self.marks[:-1], self.marks[1:], strict=True)
        for (name, t0, busy0, own0), (_, t1, busy1, own1) in spans:
            if busy0 is None or busy1 is None or t1 <= t0:
                return None
            shares[name] = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * (os.cpu_count() or 1))
        return shares

    def summary(self) -> str:
        """One line: the share of the CPUs that other processes used, per section."""
        shares = self.shares()
        if shares is None:
            return "CPU taken by other processes: unknown (no /proc/stat)"
        parts = [f"{name.split('.')[0]}: {100 * share:.0f} %" for name, share in shares.items()]
        return ("Share of the CPUs taken by other processes, per section (above a few % the times "
                "above are slowed and scattered by load): " + ", ".join(parts))
