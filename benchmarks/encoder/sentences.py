"""Section 6: sentences per second of ``embed_sentences`` (float32 and bfloat16) against
sentence-transformers, on generated sentences."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn

from .measure import Timings, synchronizer, time_once
from .models import Sizes, load_pretrained_pair
from .report import Report, first_line

# A fixed vocabulary for the sentence-embedding benchmark's generated sentences.
SENTENCE_WORDS = tuple("""
the a an this that every some many few our their its my your one two three new old small large
fast slow early late quiet bright dark warm cold simple careful curious patient model encoder layer
attention head token sentence word vector matrix weight gradient loss batch student teacher book
chapter page river city garden window kitchen morning evening summer winter train station market
music picture story question answer idea reason result number table chair door letter friend
reads writes learns computes finds keeps shows builds moves follows opens closes carries turns
watches measures compares predicts remembers explains and but while because after before when
with without under over near inside across through about into from of to in on at by for
""".split())


FIRST_PASS_SEED = 19  # the other sentences, for the first-pass table


def generated_sentences(count: int, seed: int = 18) -> list[str]:
    """``count`` sentences of 4 to 40 words drawn from :data:`SENTENCE_WORDS` by ``random.Random(seed)``.

    Deterministic for a given Python (``random``'s generator and ``choice`` are stable), and of
    varied lengths, so that batching and length sorting matter as they do for real text.
    """
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(SENTENCE_WORDS) for _ in range(rng.randint(4, 40))]
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def sentences_section(report: Report, sizes: Sizes, device: torch.device, args) -> None:
    """Section 6: sentences per second, ours (float32, bfloat16 autocast) vs sentence-transformers."""
    import inspect

    from transformer_course.pretrained import embed_sentences, find_model_dir

    count, batch_size = sizes.sentences, 32
    texts = generated_sentences(count)
    heading = (f"## 6. Sentence embeddings: {count} generated sentences (4-40 words from a fixed "
               f"vocabulary, `random.Random(18)`), batch size {batch_size}")
    loaded = load_pretrained_pair(device)
    if isinstance(loaded, str):
        report.lines += [heading, "", f"Skipped ({loaded}).", ""]
        report.tables["sentences"] = [{"implementation": "all", "sentences_per_s": None,
                                       "note": f"skipped: {loaded}"}]
        return
    _, model, tokenizer = loaded
    del loaded
    sync = synchronizer(device)
    params = inspect.signature(embed_sentences).parameters
    impls: dict[str, Callable[[list[str]], torch.Tensor]] = {}  # texts -> (N, D)
    notes: dict[str, str] = {}
    theirs_name = "sentence-transformers SentenceTransformer.encode"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        notes[theirs_name] = f"n/a: sentence_transformers is not installed ({first_line(error)})"
    else:
        st = SentenceTransformer(str(find_model_dir()), device=str(device))
        impls[theirs_name] = lambda texts: st.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                                                       show_progress_bar=False)
    extra = {"progress": False} if "progress" in params else {}
    if "batch_size" in params:
        impls["ours, embed_sentences, float32"] = lambda texts: embed_sentences(
            tokenizer, model, texts, batch_size=batch_size, **extra)
        if "dtype" in params and args.bf16_support[0]:
            impls["ours, embed_sentences, bfloat16 autocast"] = lambda texts: embed_sentences(
                tokenizer, model, texts, batch_size=batch_size, dtype=torch.bfloat16, **extra)
        else:
            notes["ours, embed_sentences, bfloat16 autocast"] = (
                f"n/a: {args.bf16_support[1]}" if "dtype" in params else "n/a: embed_sentences has no dtype")
    else:
        notes["ours, embed_sentences"] = "n/a: embed_sentences has no batch_size yet"
    warm = texts[: 2 * batch_size]
    with torch.inference_mode():
        for fn in impls.values():  # one untimed call of each on a few batches
            fn(warm)
        seconds: dict[str, list[float]] = {name: [] for name in impls}
        outputs: dict[str, torch.Tensor] = {}
        names = list(impls)

        def embed(name: str) -> None:  # the timed call keeps its vectors for the min cosine below
            outputs[name] = impls[name](texts)

        for r in range(sizes.sentence_rounds):  # one timed run of each per round, in turns
            for name in names[r % len(names):] + names[: r % len(names)]:
                seconds[name].append(time_once(lambda name=name: embed(name), sync))
        # Then one pass of each over as many sentences none of them has seen, as when embedding
        # a new corpus: batches of new lengths, so any kernel built per shape is built on the way.
        fresh = generated_sentences(count, seed=FIRST_PASS_SEED)
        first_pass = {name: time_once(lambda name=name: impls[name](fresh), sync) for name in names}
    medians = Timings(seconds)  # median seconds of each, and its rounds
    theirs_speed = count / medians[theirs_name] if theirs_name in medians else None
    rows, data = [], []
    for name in [*impls, *notes]:
        if name in notes:
            rows.append([name, notes[name], "", "", ""])
            data.append({"implementation": name, "seconds": None, "sentences_per_s": None, "ratio": None,
                         "min_cosine": None, "note": notes[name]})
            continue
        speed = count / medians[name]
        ratio = speed / theirs_speed if theirs_speed else None
        cosine = None
        if theirs_name in outputs:
            a = nn.functional.normalize(outputs[name].float().cpu(), dim=-1)
            b = nn.functional.normalize(outputs[theirs_name].float().cpu(), dim=-1)
            cosine = (a * b).sum(-1).min().item()
        rows.append([name, f"{medians[name]:.2f}", f"{speed:,.0f}", "" if ratio is None else f"{ratio:.2f}",
                     "" if cosine is None else f"{cosine:.5f}"])
        data.append({"implementation": name, "seconds": medians[name], "sentences_per_s": speed,
                     "ratio": ratio, "min_cosine": cosine})
        key = {"ours, embed_sentences, float32": "sentences fp32 ratio",
               "ours, embed_sentences, bfloat16 autocast": "sentences bf16 ratio"}.get(name)
        if key and ratio is not None:  # ours / theirs in sentences per second: theirs / ours in time
            report.ratio(key, medians, theirs_name, name)
    lengths = [len(tokenizer.encode(text, max_length=256)) for text in texts]
    real_tokens = sum(lengths)
    # sentence-transformers sorts by characters, longest first, and pads each batch to its
    # longest text: the share of its positions that are padding, which packing skips.
    by_characters = sorted(range(count), key=lambda i: -len(texts[i]))
    positions = sum(len(batch) * max(lengths[i] for i in batch)
                    for batch in (by_characters[i : i + batch_size] for i in range(0, count, batch_size)))
    report.values["sentences theirs padding share"] = 1 - real_tokens / positions
    report.lines += [
        heading,
        "",
        f"{real_tokens:,} tokens in all; in sentence-transformers' batches (sorted by characters, "
        f"each padded to its longest) {100 * (1 - real_tokens / positions):.0f} % of the positions "
        f"are padding. Median of {sizes.sentence_rounds} timed runs of each, in "
        f"turns (theirs, ours float32, ours bfloat16), after one untimed run on {len(warm)} "
        f"sentences. sentence-transformers: `SentenceTransformer(<model folder>, device=...)"
        f".encode(texts, batch_size={batch_size})`, float32; ours: `embed_sentences(tokenizer, model, "
        f"texts, batch_size={batch_size})`, and with `dtype=torch.bfloat16` (autocast). Min cosine: "
        f"the lowest cosine similarity between ours and theirs over all sentences.",
        "",
    ]
    report.table(["implementation", "median s", "sentences / s", "ratio to sentence-transformers",
                  "min cosine to theirs"], rows, "lrrrr", "sentences", data)
    theirs_first = first_pass.get(theirs_name)
    report.lines += [
        f"A first pass over {count:,} other sentences (`random.Random({FIRST_PASS_SEED})`), one run of "
        f"each, after the rounds above: most of their batches have lengths not met before, so a kernel "
        f"built for each new matrix shape (oneDNN's, which runs bfloat16 matmuls on the CPU) is "
        f"built on the way, as when a new corpus is embedded once.",
        "",
    ]
    first_rows, first_data = [], []
    for name, secs in first_pass.items():
        ratio = theirs_first / secs if theirs_first else None
        shown = "" if ratio is None else f"{ratio:.2f}"
        first_rows.append([name, f"{secs:.2f}", f"{count / secs:,.0f}", shown])
        first_data.append({"implementation": name, "seconds": secs, "sentences_per_s": count / secs,
                           "ratio": ratio})
        key = {"ours, embed_sentences, float32": "sentences fp32 first pass ratio",
               "ours, embed_sentences, bfloat16 autocast": "sentences bf16 first pass ratio"}.get(name)
        if key and ratio is not None:
            report.values[key] = ratio
    report.table(["implementation, first pass", "s", "sentences / s", "ratio to sentence-transformers"],
                 first_rows, "lrrr", "sentences_first_pass", first_data)
    if theirs_speed:
        report.values["sentences theirs per s"] = theirs_speed
