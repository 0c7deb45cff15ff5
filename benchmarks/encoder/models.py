"""The sizes of a run and the models the benchmark times: torch's encoder holding our weights,
our embeddings feeding it, section 1's random-weight pair and input, and all-MiniLM-L6-v2 loaded
in BertModel and in ours."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from torch import nn

from transformer_course.attention import to_torch_key_padding_mask
from transformer_course.encoder import Encoder

# The names of the rows, shared by the sections and read back by the appendix from the JSON.
TORCH = "torch.nn.TransformerEncoder"  # built with its defaults: nested tensors on
TORCH_PADDED = "torch.nn.TransformerEncoder, enable_nested_tensor=False"
PACKED = "ours, padding-free"
FUSED = "ours, fused attention"
EXPLICIT = "ours, explicit attention"


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run of the script."""

    batch: int = 8  # B of the encoder rows
    length: int = 128  # T of the encoder rows
    d_model: int = 384  # D of all-MiniLM-L6-v2
    num_heads: int = 12  # H
    d_ff: int = 1536  # feed-forward width
    num_layers: int = 6  # L
    sweep_tokens: int = 8192  # B·T of every point of the length sweep
    sweep_lengths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    matmul_n: int = 2048  # the square matmul that measures the machine's throughput
    cuda_batch: int = 64  # B of the CUDA bfloat16 training row (B 8 leaves a GPU idle)
    cuda_length: int = 512  # T of that row
    sentences: int = 1024  # generated sentences of the sentence-embedding section
    sentence_rounds: int = 3  # timed runs of each sentence embedder, in turns


QUICK = Sizes(batch=2, length=32, sweep_tokens=256, sweep_lengths=(32, 64, 128), matmul_n=512,
              cuda_batch=4, cuda_length=64, sentences=96, sentence_rounds=1)


def torch_encoder_like(ours: Encoder) -> nn.TransformerEncoder:
    """A ``torch.nn.TransformerEncoder`` holding the weights of our (post- or pre-LN) ``Encoder``."""
    first = ours.layers[0]
    attn = first.self_attn
    layer = nn.TransformerEncoderLayer(
        attn.d_model, attn.num_heads, first.feed_forward.linear1.out_features,
        dropout=first.dropout1.p, activation=first.feed_forward.activation_name,
        layer_norm_eps=first.norm1.eps, batch_first=True, norm_first=first.norm_first,
    )
    # No nested tensors: the padded positions are computed, as ours and BertModel compute them.
    theirs = nn.TransformerEncoder(layer, len(ours.layers), enable_nested_tensor=False)
    theirs = theirs.to(device=attn.q_proj.weight.device)
    with torch.no_grad():
        for mine, their_layer in zip(ours.layers, theirs.layers, strict=True):
            a = mine.self_attn
            in_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])  # 3 x (D, D) -> (3D, D)
            in_b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])  # 3 x (D,) -> (3D,)
            their_layer.self_attn.in_proj_weight.copy_(in_w)
            their_layer.self_attn.in_proj_bias.copy_(in_b)
            their_layer.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
            their_layer.linear1.load_state_dict(mine.feed_forward.linear1.state_dict())
            their_layer.linear2.load_state_dict(mine.feed_forward.linear2.state_dict())
            their_layer.norm1.load_state_dict(mine.norm1.state_dict())
            their_layer.norm2.load_state_dict(mine.norm2.state_dict())
    if ours.norm is not None:
        theirs.norm = copy.deepcopy(ours.norm)
    return theirs.train(ours.training)


def torch_default_like(theirs: nn.TransformerEncoder) -> nn.TransformerEncoder:
    """``theirs`` (built with ``enable_nested_tensor=False``) rebuilt as users build it, with the
    defaults: in eval with a padding mask its fast path packs the real tokens into a nested
    tensor and never computes the padded positions. Same weights, device, dtype and mode."""
    layer = copy.deepcopy(theirs.layers[0])
    default = nn.TransformerEncoder(layer, len(theirs.layers), norm=copy.deepcopy(theirs.norm))
    default.load_state_dict(theirs.state_dict())
    first = theirs.layers[0].linear1.weight
    return default.to(device=first.device, dtype=first.dtype).train(theirs.training)


class EmbeddingsThenTorchEncoder(nn.Module):
    """Our BERT embeddings feeding a ``torch.nn.TransformerEncoder`` with the same weights as ours."""

    def __init__(self, embedding: nn.Module, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids)  # (B, T) -> (B, T, D)
        return self.encoder(x, src_key_padding_mask=to_torch_key_padding_mask(attention_mask))


def padding_mask(batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(B, T) True = real token; the last quarter of every row is padding."""
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, length - length // 4:] = False
    return mask.to(device)


def varied_padding_mask(batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(B, T) True = real token; row i ends in round(i / (B - 1) · T / 2) padded positions, so
    the rows are padded from 0 to 50 % (a quarter on average), as a batch of mixed lengths is."""
    pads = torch.linspace(0, length / 2, batch).round().long() if batch > 1 else torch.zeros(1).long()
    return (torch.arange(length)[None, :] < length - pads[:, None]).to(device)


def random_models(s: Sizes, device: torch.device, seed: int = 0):
    """Section 1's models and input: torch's encoder, ours with its weights, x (B, T, D), mask (B, T)."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(s.d_model, s.num_heads, s.d_ff, dropout=0.0, activation="gelu",
                                       batch_first=True)
    theirs = nn.TransformerEncoder(layer, s.num_layers, enable_nested_tensor=False).to(device)
    ours = Encoder.from_torch(theirs)
    x = torch.randn(s.batch, s.length, s.d_model, generator=torch.Generator().manual_seed(seed)).to(device)
    return theirs, ours, x, padding_mask(s.batch, s.length, device)


def load_pretrained_pair(device: torch.device):
    """(BertModel, our PretrainedEncoder, tokenizer) of all-MiniLM-L6-v2, or a reason why not."""
    from transformer_course.pretrained import find_model_dir, load_minilm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the folder is local: never ask the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers import BertModel
    except ImportError:
        return "transformers is not installed"
    try:
        tokenizer, ours = load_minilm(device=device)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        return str(error)
    hf = BertModel.from_pretrained(str(find_model_dir()), add_pooling_layer=False).to(device).eval()
    return hf, ours, tokenizer
