"""embed_sentences at scale: batched and sorted by length, it equals sentence-transformers' encode.

The reference is ``SentenceTransformer(...).encode`` on the same local all-MiniLM-L6-v2 folder
(sentence-transformers is a test/benchmark-only dependency; test_pretrained proves the package
never imports it). The other tests pin what batching must not change: each text's vector lands in
its input position whatever the batch size, and the progress bar is shown only when asked.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import torch

from transformer_course import bert, pretrained, runtime
from transformer_course.pretrained import embed_sentences, load_minilm

# Before sentence_transformers / transformers are imported: the reference reads the local folder only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_WORDS = (
    "the a cat dog sat on mat attention is all you need transformer encoder layer sentence vector "
    "model token position query key value softmax weights context because although however quickly "
    "café Zürich crème brûlée naïve façade São Paulo 3.5 42 1,087 2017 % $ ( ) ! ? ; : - "
    "antidisestablishmentarianism pneumonoultramicroscopic electroencephalography Xylophagous "
    "東京 北京 ñandú Ærøskøbing"
).split()


def _sentences(n: int, seed: int) -> list[str]:
    """``n`` deterministic sentences of 1 to 60 words, and four of 250 words (over 256 tokens)."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(_WORDS, k=rng.randint(1, 60))) + rng.choice([".", "!", "?", ""])
             for _ in range(n - 4)]
    texts += [" ".join(rng.choices(_WORDS, k=250)) for _ in range(4)]
    rng.shuffle(texts)
    return texts


TEXTS = _sentences(200, seed=18)

# Short and long texts, duplicates, in no particular order: the batches are sorted, the result is not.
MIXED = [
    "Hi!", TEXTS[0], "A café in Zürich.", "Hi!", max(TEXTS, key=len), "Attention is all you need.",
    "x", TEXTS[1], "A café in Zürich.", "The model reads every position at once, " * 12, "Hi!",
    *TEXTS[2:12],
]


def _min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min().item()


@pytest.fixture(scope="module")
def loaded():
    return load_minilm(device="cpu")


@pytest.fixture(scope="module")
def reference_vectors():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(pretrained.find_model_dir()), device="cpu")
    assert model.max_seq_length == bert.SENTENCE_MAX_LENGTH
    return model.encode(TEXTS, batch_size=32, normalize_embeddings=True, convert_to_tensor=True)


@pytest.fixture(scope="module")
def tiny():
    """A random 1-layer encoder and its tokenizer: fast enough for the argument and bar tests."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = bert.WordPieceTokenizer(specials + ["a", "cat", "sat", "."])
    config = bert.BertStyleConfig(vocab_size=9, max_len=16, d_model=4, num_layers=1, num_heads=2, d_ff=8)
    torch.manual_seed(0)
    return tokenizer, bert.PretrainedEncoder(config).eval()


# ----- parity with sentence-transformers ----------------------------------------------------

def test_texts_are_varied_and_some_are_truncated(loaded):
    tokenizer, _ = loaded
    lengths = [len(tokenizer.encode(t)) for t in TEXTS]
    assert min(lengths) <= 4 and sum(n > bert.SENTENCE_MAX_LENGTH for n in lengths) >= 4


def test_float32_equals_sentence_transformers(loaded, reference_vectors):
    tokenizer, model = loaded
    ours = embed_sentences(tokenizer, model, TEXTS)
    assert ours.dtype == torch.float32 and ours.shape == reference_vectors.shape
    assert _min_cosine(ours, reference_vectors) >= 0.99999


def test_bfloat16_autocast_stays_close_to_sentence_transformers(loaded, reference_vectors):
    tokenizer, model = loaded
    ours = embed_sentences(tokenizer, model, TEXTS, dtype=torch.bfloat16)
    assert ours.dtype == torch.float32  # pooled and normalized in float32
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert _min_cosine(ours, reference_vectors) >= 0.999
    assert next(model.parameters()).dtype == torch.float32  # autocast leaves the weights alone


# ----- batching keeps the input order -------------------------------------------------------

@pytest.fixture(scope="module")
def alone(loaded):
    """Each text of MIXED embedded on its own: no batch, no padding, no sorting."""
    tokenizer, model = loaded
    return torch.cat([embed_sentences(tokenizer, model, [t]) for t in MIXED])


def test_each_text_gets_the_vector_it_gets_alone(loaded, alone):
    tokenizer, model = loaded
    batched = embed_sentences(tokenizer, model, MIXED, batch_size=4)
    assert _min_cosine(batched, alone) >= 0.99999
    assert torch.equal(batched[0], batched[3]) and torch.equal(batched[0], batched[10])  # duplicates


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batch_size_does_not_change_the_vectors(loaded, alone, batch_size):
    tokenizer, model = loaded
    assert _min_cosine(embed_sentences(tokenizer, model, MIXED, batch_size=batch_size), alone) >= 0.99999


def test_one_string_is_a_batch_of_one(tiny):
    tokenizer, model = tiny
    one = embed_sentences(tokenizer, model, "a cat.")
    assert one.shape == (1, 4) and torch.equal(one, embed_sentences(tokenizer, model, ["a cat."]))


# ----- progress bar -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("progress", "n", "shown"),
    [(True, 2, True), (False, 200, False), (None, 4 * 4, False), (None, 5 * 4, True)],
)
def test_progress_bar_only_when_asked_or_long(tiny, capsys, monkeypatch, progress, n, shown):
    # What embed_sentences asks of the bar (TQDM_DISABLE, set when make test runs, may still hide
    # it: the test below shows the bar itself, in processes with and without it).
    asked = []
    bar = runtime.progress_bar

    def recording_bar(*args, enabled, **options):
        asked.append(enabled)
        return bar(*args, enabled=enabled, **options)

    monkeypatch.setattr(runtime, "progress_bar", recording_bar)
    tokenizer, model = tiny
    embed_sentences(tokenizer, model, ["a cat sat."] * n, batch_size=4, progress=progress)
    assert asked == [shown]
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_tqdm_disable_silences_even_progress_true():
    code = (
        "import torch\n"
        "from transformer_course import bert\n"
        "tok = bert.WordPieceTokenizer(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'cat'])\n"
        "config = bert.BertStyleConfig(vocab_size=7, max_len=8, d_model=4, num_layers=1, num_heads=2,\n"
        "                              d_ff=8)\n"
        "bert.embed_sentences(tok, bert.PretrainedEncoder(config).eval(), ['a cat'] * 3, progress=True)\n"
    )
    for disable, shown in (("1", False), (None, True)):
        env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
        if disable:
            env["TQDM_DISABLE"] = disable
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert ("embedding" in result.stderr) is shown, result.stderr


# ----- bad arguments ------------------------------------------------------------------------

BAD = {
    "batch_size zero": ({"batch_size": 0}, ValueError, r"batch_size: expected a positive int, got 0"),
    "batch_size float": ({"batch_size": 8.0}, TypeError, r"batch_size: expected a positive int, got float"),
    "batch_size bool": ({"batch_size": True}, TypeError, r"batch_size: expected a positive int, got bool"),
    "dtype int8": ({"dtype": torch.int8}, ValueError, r"dtype: expected None, torch.float32, .*torch.int8"),
    "dtype float64": ({"dtype": torch.float64}, ValueError, r"dtype: .*got torch.float64"),
    "dtype string": ({"dtype": "bfloat16"}, TypeError, r"dtype: expected None or a torch.dtype, got str"),
    "progress string": ({"progress": "yes"}, TypeError, r"progress: expected a bool, got str"),
    "texts not a list": ({"texts": 3}, TypeError, r"texts: expected a list of str, got int"),
    "texts with a number": ({"texts": ["a cat", 7]}, TypeError, r"texts: .*element 1 is int"),
    "texts empty": ({"texts": []}, ValueError, r"texts: expected at least one string"),
    "max_length 1": ({"max_length": 1}, ValueError, r"max_length: expected None or an int >= 2"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments_get_clear_errors(tiny, case):
    kwargs, error, message = case
    tokenizer, model = tiny
    kwargs = {"texts": ["a cat sat."], **kwargs}
    with pytest.raises(error, match=message):
        embed_sentences(tokenizer, model, **kwargs)


def test_batch_size_and_dtype_are_keyword_only(tiny):
    tokenizer, model = tiny
    with pytest.raises(TypeError):
        embed_sentences(tokenizer, model, ["a cat"], 8, 32)
