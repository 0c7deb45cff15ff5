"""A BERT-style encoder in this package's classes: embeddings, our encoder stack, sentence vectors.

BERT (Devlin et al., 2019) is the Transformer encoder of the 2017 paper with three changes at
the input: the position table is learned, a token-type (segment) vector is added, and the sum
is layer-normalized. Its layers are post-LN with GELU, which :class:`~transformer_course.encoder.Encoder`
builds as it is. :class:`PretrainedEncoder` puts the two together; the loader in
:mod:`~transformer_course.pretrained` fills it with the weights of all-MiniLM-L6-v2, and
:func:`embed_sentences` turns its output into one vector per sentence.

Nothing here reads files: a :class:`PretrainedEncoder` built from a :class:`BertStyleConfig`
starts from random weights.

Legend: B batch, T length, D model width, H heads, L layers, V vocabulary size, N sentences.
Masks: True / 1 = may attend.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import torch
from torch import nn

from . import _checks, runtime
from .embedding import TokenEmbedding
from .encoder import Encoder
from .positional import LearnedPositionalEncoding
from .tokenization import WordPieceTokenizer
from .tokenization.basic import check_texts, pad_batch

__all__ = [
    "BertStyleConfig", "BertStyleEmbeddings", "PretrainedEncoder", "mean_pool", "embed_sentences",
    "SENTENCE_MAX_LENGTH",
]

# sentence-transformers runs all-MiniLM-L6-v2 on at most 256 tokens (sentence_bert_config.json).
SENTENCE_MAX_LENGTH = 256

_EMBED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # embed_sentences' autocast choices
_PROGRESS_MIN_BATCHES = 4  # embed_sentences(progress=None) shows a bar above this many batches


@dataclasses.dataclass(frozen=True)
class BertStyleConfig:
    """The shape of a BERT-style encoder, read from a Hugging Face ``config.json``.

    Examples:
        >>> config = BertStyleConfig(vocab_size=10, max_len=8, d_model=4, num_heads=2)
        >>> config.d_model // config.num_heads
        2
    """

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


def _check_input_ids(config: BertStyleConfig, input_ids: object, token_type_ids: object) -> None:
    """Raise unless input_ids is (B, T) in [0, V) with T <= max_len, and token_type_ids (if given) matches."""
    _checks.token_ids(input_ids, config.vocab_size)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids: expected shape (B, T), got {tuple(input_ids.shape)}")
    if input_ids.shape[1] > config.max_len:
        raise ValueError(
            f"input_ids: length T={input_ids.shape[1]} exceeds the model's {config.max_len} "
            f"positions; truncate, e.g. tokenizer(texts, max_length={config.max_len})"
        )
    if token_type_ids is None:
        return
    _checks.token_ids(token_type_ids, config.type_vocab_size, "token_type_ids")
    if token_type_ids.shape != input_ids.shape:
        raise ValueError(
            f"token_type_ids: expected the shape of input_ids {tuple(input_ids.shape)}, "
            f"got {tuple(token_type_ids.shape)}"
        )


class BertStyleEmbeddings(nn.Module):
    """BERT's input: token + learned position + token-type (segment) vectors, then LayerNorm.

    Unlike the 2017 Transformer, BERT learns its position table and layer-normalizes the sum
    (Devlin et al., 2019, figure 2). Built from this package's
    :class:`~transformer_course.embedding.TokenEmbedding` (no √D scale) and
    :class:`~transformer_course.positional.LearnedPositionalEncoding`.

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
        self.token_embedding = TokenEmbedding(config.vocab_size, config.d_model)
        self.position_embedding = LearnedPositionalEncoding(config.max_len, config.d_model)
        self.token_type_embedding = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        _check_input_ids(self.config, input_ids, token_type_ids)
        return self.embed(input_ids, token_type_ids)

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The computation of :meth:`forward`, without checks: (B, T) -> (B, T, D)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # The table itself: the ids were checked at the door (TokenEmbedding's forward checks again).
        x = self.token_embedding.table(input_ids)  # (B, T) -> (B, T, D)
        x = self.position_embedding(x)  # (B, T, D) + (T, D) -> (B, T, D)
        x = x + self.token_type_embedding(token_type_ids)  # (B, T, D) + (B, T, D)
        return self.dropout(self.norm(x))


class PretrainedEncoder(nn.Module):
    """A BERT-style encoder: :class:`BertStyleEmbeddings` then our post-LN GELU ``Encoder``.

    Args:
        config: the sizes; :func:`~transformer_course.pretrained.load_minilm` reads them from
            ``config.json``.

    Shape:
        input_ids: (B, T) ids, T <= max_len (512); attention_mask (1 / True = may attend, 0 on
        padding): (B, T), default all ones; token_type_ids: (B, T), default all 0.
        Returns the last hidden states (B, T, D), or (hidden, weights) with
        ``return_attention=True``, weights a list of L tensors (B, H, T, T). With
        ``padding_free=True``, the encoder takes its fast path for inference: it computes the
        real tokens only, with fused kernels when no gradient is recorded (see
        :class:`~transformer_course.encoder.Encoder`), and the padded positions hold zeros.

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
        self.embedding = BertStyleEmbeddings(config)
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
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """Check every input once; return the padding mask as bool (B, 1, 1, T) for all layers, or None."""
        _check_input_ids(self.config, input_ids, token_type_ids)
        if attention_mask is None:
            return None
        mask = _checks.bool_mask(attention_mask, "attention_mask")
        if mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask: expected the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        return mask[:, None, None, :]  # (B, T) -> (B, 1, 1, T): every head, every query

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_attention: bool = False,
        padding_free: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        mask = self._check_inputs(input_ids, attention_mask, token_type_ids)
        _checks.boolean(padding_free, "padding_free")
        x = self.embedding.embed(input_ids, token_type_ids)  # (B, T) -> (B, T, D)
        if padding_free:  # the encoder's padding-free path: real tokens only, fused kernels
            real = None if mask is None else mask[:, 0, 0, :]  # (B, 1, 1, T) -> (B, T)
            return self.encoder(x, real, return_attention, padding_free=True)  # (B, T, D), 0 at the padding
        x, weights = self.encoder.encode(x, mask, need_weights=return_attention)  # (B, T, D)
        return (x, weights) if return_attention else x

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The input of the first layer and the output of each layer: L + 1 tensors (B, T, D).

        The last one is what ``forward`` returns (a post-LN stack has no final norm).

        Examples:
            >>> config = BertStyleConfig(vocab_size=10, max_len=8, d_model=4, num_layers=2, num_heads=2)
            >>> model = PretrainedEncoder(config).eval()
            >>> states = model.hidden_states(torch.tensor([[2, 5, 3]]))
            >>> len(states), torch.equal(states[-1], model(torch.tensor([[2, 5, 3]])))
            (3, True)
        """
        mask = self._check_inputs(input_ids, attention_mask, token_type_ids)
        states = [self.embedding.embed(input_ids, token_type_ids)]  # (B, T) -> (B, T, D)
        for layer in self.encoder.layers:
            states.append(layer.encode(states[-1], mask)[0])  # (B, T, D) -> (B, T, D)
        return states


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
    mask = _checks.bool_mask(attention_mask, "attention_mask")
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden (B, T, D) and attention_mask (B, T) must agree, got {tuple(hidden.shape)} "
            f"and {tuple(mask.shape)}"
        )
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, T, D) -> (B, D)
    count = weights.sum(dim=1).clamp(min=1e-9)  # (B, T, 1) -> (B, 1); an all-padding row stays 0
    return total / count


def embed_sentences(
    tokenizer: WordPieceTokenizer,
    model: PretrainedEncoder,
    texts: Sequence[str],
    max_length: int = SENTENCE_MAX_LENGTH,
    *,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """One unit-length vector per sentence, as sentence-transformers computes for all-MiniLM-L6-v2.

    Tokenize (truncating to 256 tokens, the model's sentence-transformers setting), run the
    encoder without gradients, mean-pool over real tokens, then L2-normalize: the cosine
    similarity of two sentences is the dot product of their vectors.

    Many texts are run ``batch_size`` at a time, longest first, as sentence-transformers'
    ``encode`` does (it sorts by characters, we by tokens): sorting puts texts of similar length
    in one batch, so little of each batch is padding (one batch of 1,000 sentences padded to the
    longest spends most of its time on [PAD]). The encoder takes its padding-free path (see
    :class:`~transformer_course.encoder.Encoder`), so the padding left in a batch is not
    computed either. The vectors come back in the order of ``texts``.

    Args:
        tokenizer: the model's tokenizer.
        model: the encoder.
        texts: N strings (one string: N = 1).
        max_length: truncate each text to this many tokens. Default: 256.
        batch_size: texts per forward pass. Default: 32.
        dtype: run the encoder under ``torch.autocast`` to this dtype (``torch.bfloat16``, or
            ``torch.float16``); None or ``torch.float32``: full precision. The vectors are float32
            either way. Default: None.
        progress: show a tqdm progress bar over the batches; None: only when there are more
            than 4 batches. ``TQDM_DISABLE=1`` turns it off in any case. Default: None.

    Shape:
        Returns (N, D) float32 on the model's device, each row of norm 1, row i for ``texts[i]``.

    Examples:
        >>> specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        >>> tokenizer = WordPieceTokenizer(specials + ["a", "cat", "sat", "."])
        >>> config = BertStyleConfig(vocab_size=9, max_len=8, d_model=4, num_layers=1, num_heads=2, d_ff=8)
        >>> model = PretrainedEncoder(config).eval()
        >>> vectors = embed_sentences(tokenizer, model, ["A cat sat.", "A cat."])
        >>> tuple(vectors.shape), torch.allclose(vectors.norm(dim=-1), torch.ones(2))
        ((2, 4), True)

        Batched and sorted by length, each text still gets its own vector in its own place:

        >>> texts = ["A cat.", "A cat sat a cat.", "Cat."]
        >>> alone = torch.cat([embed_sentences(tokenizer, model, [t]) for t in texts])
        >>> torch.allclose(embed_sentences(tokenizer, model, texts, batch_size=2), alone, atol=1e-6)
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a PretrainedEncoder, got {type(model).__name__}")
    texts = check_texts(texts)
    _checks.positive_int(batch_size, "batch_size")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected None or a torch.dtype, got {type(dtype).__name__}")
    if dtype is not None and dtype not in _EMBED_DTYPES:
        raise ValueError(
            f"dtype: expected None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}"
        )
    ids = [tokenizer.encode(text, max_length=max_length) for text in texts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first; stable for ties
    starts = range(0, len(order), batch_size)
    device = next(model.parameters()).device
    vectors = torch.empty(len(ids), model.config.d_model, device=device)  # (N, D), filled in input order
    if progress is not None:
        _checks.boolean(progress, "progress")
    show_bar = len(starts) > _PROGRESS_MIN_BATCHES if progress is None else progress
    with torch.no_grad(), runtime.progress_bar(len(ids), "embedding", enabled=show_bar, unit="text") as bar:
        for start in starts:
            rows = order[start : start + batch_size]
            batch = pad_batch([ids[i] for i in rows], tokenizer.pad_id)
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            with runtime.autocast(device, dtype):
                # Padding-free: only the real tokens are computed (mean_pool reads no other).
                hidden = model(input_ids, attention_mask, padding_free=True)  # (B, T) -> (B, T, D)
            pooled = mean_pool(hidden.float(), attention_mask)  # (B, T, D) -> (B, D), in float32
            vectors[rows] = torch.nn.functional.normalize(pooled, p=2, dim=-1)  # rows scaled to norm 1
            bar.update(len(rows))
    return vectors
