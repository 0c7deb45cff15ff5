"""Bad input fails early, with a message naming the argument and what was expected vs received."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer_course import runtime
from transformer_course.attention import MultiHeadAttention, scaled_dot_product_attention
from transformer_course.decoder import Decoder, DecoderLayer
from transformer_course.embedding import InputEmbedding, TokenEmbedding
from transformer_course.encoder import Encoder, EncoderLayer, FeedForward
from transformer_course.positional import SinusoidalPositionalEncoding, sinusoidal_encoding

mha = MultiHeadAttention(8, 2)
encoder = Encoder(1, 8, 2, 16)
x = torch.randn(2, 5, 8)
decoder = Decoder(1, 8, 2, 16)
target = torch.randn(2, 3, 8)  # decoder input (B, Tq=3, D); its memory is x (B, Tk=5, D)

# (call, expected exception, regex the message must match: argument name and shapes/dtypes)
BAD_CALLS = {
    "d_model not divisible by heads": (
        lambda: MultiHeadAttention(10, 3), ValueError, r"d_model \(10\).*num_heads \(3\)"),
    "zero heads": (lambda: MultiHeadAttention(8, 0), ValueError, r"num_heads: .*got 0"),
    "d_model of wrong type": (lambda: Encoder(1, "8", 2, 16), TypeError, r"d_model: .*got str"),
    "query of rank 2": (lambda: mha(torch.randn(5, 8)), ValueError, r"query: .*\(B, T, D=8\).*\(5, 8\)"),
    "query of wrong width": (lambda: mha(torch.randn(2, 5, 6)), ValueError, r"query: .*D=8.*\(2, 5, 6\)"),
    "integer query": (lambda: mha(torch.ones(2, 5, 8, dtype=torch.long)), TypeError,
                      r"query: .*floating-point.*torch.int64"),
    "float mask": (lambda: mha(x, attention_mask=torch.ones(2, 5)), TypeError,
                   r"attention_mask: .*torch.bool.*torch.float32"),
    "non-binary integer mask": (lambda: mha(x, attention_mask=torch.full((2, 5), 2)), ValueError,
                                r"attention_mask: .*only 0 and 1"),
    "padding mask of wrong length": (
        lambda: mha(x, attention_mask=torch.ones(2, 6, dtype=torch.bool)), ValueError,
        r"attention_mask: .*\(B, Tk\) = \(2, 5\).*\(2, 6\)"),
    "4-D mask that does not broadcast": (
        lambda: mha(x, attention_mask=torch.ones(2, 3, 5, 5, dtype=torch.bool)), ValueError,
        r"attention_mask: shape \(2, 3, 5, 5\).*\(2, 2, 5, 5\)"),
    "mask of rank 5": (lambda: mha(x, attention_mask=torch.ones(1, 2, 2, 5, 5, dtype=torch.bool)),
                       ValueError, r"attention_mask: .*5 dims"),
    "key/value length mismatch": (
        lambda: mha(x, torch.randn(2, 7, 8), torch.randn(2, 6, 8)), ValueError,
        r"key and value: .*\(2, 7, 8\).*\(2, 6, 8\)"),
    "query/key batch mismatch": (lambda: mha(x, torch.randn(3, 5, 8)), ValueError,
                                 r"query and key: .*batch size"),
    "sdpa q/k width mismatch": (
        lambda: scaled_dot_product_attention(torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 5)),
        ValueError, r"q and k: .*\(3, 4\).*\(3, 5\)"),
    "sdpa 1-D query": (lambda: scaled_dot_product_attention(torch.randn(4), torch.randn(3, 4),
                                                            torch.randn(3, 4)),
                       ValueError, r"q: expected at least 2 dims.*\(4,\)"),
    "sdpa k/v length mismatch": (
        lambda: scaled_dot_product_attention(torch.randn(2, 4), torch.randn(3, 4), torch.randn(5, 4)),
        ValueError, r"k and v: .*\(3, 4\).*\(5, 4\)"),
    "sdpa mask that does not broadcast": (
        lambda: scaled_dot_product_attention(torch.randn(2, 4), torch.randn(3, 4), torch.randn(3, 4),
                                             torch.ones(2, 2, dtype=torch.bool)),
        ValueError, r"mask: shape \(2, 2\).*\(2, 3\)"),
    "ids out of range": (lambda: TokenEmbedding(10, 4)(torch.tensor([[1, 10]])), ValueError,
                         r"input_ids: .*\[0, 10\).*\[1, 10\]"),
    "negative ids": (lambda: TokenEmbedding(10, 4)(torch.tensor([[-1, 3]])), ValueError,
                     r"input_ids: .*\[0, 10\)"),
    "float ids": (lambda: TokenEmbedding(10, 4)(torch.tensor([[1.0, 2.0]])), TypeError,
                  r"input_ids: .*integer dtype.*torch.float32"),
    "sequence longer than the positional table": (
        lambda: SinusoidalPositionalEncoding(max_len=4, d_model=8)(torch.zeros(1, 5, 8)), ValueError,
        r"x: sequence length T=5 exceeds .*max_len=4"),
    "ids longer than the positional table": (
        lambda: InputEmbedding(10, 8, max_len=3)(torch.tensor([[1, 2, 3, 4]])), ValueError,
        r"T=4 exceeds .*max_len=3"),
    "empty positional table": (lambda: sinusoidal_encoding(0, 8), ValueError, r"max_len: .*got 0"),
    "unknown positional kind": (lambda: InputEmbedding(10, 8, 4, positional="rotary"), ValueError,
                                r"positional: .*'rotary'"),
    "unknown activation": (lambda: FeedForward(8, 16, activation="tanh"), ValueError,
                           r"activation: .*'tanh'"),
    "feed-forward input of wrong width": (lambda: FeedForward(8, 16)(torch.randn(2, 5)), ValueError,
                                          r"x: expected shape \(\.\.\., D=8\), got \(2, 5\)"),
    "encoder input of rank 2": (lambda: encoder(torch.randn(5, 8)), ValueError,
                                r"x: expected shape \(B, T, D=8\), got \(5, 8\)"),
    "encoder given ids instead of vectors": (
        lambda: encoder(torch.ones(2, 5, 8, dtype=torch.long)), TypeError, r"x: .*torch.int64"),
    "layer from a non-torch layer": (lambda: EncoderLayer.from_torch(nn.Linear(2, 2)), TypeError,
                                     r"torch_layer: .*got Linear"),
    "encoder from a sequence-first torch stack": (
        lambda: Encoder.from_torch(nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False)),
        ValueError, r"batch_first=True"),
    "decoder input of rank 2": (lambda: decoder(torch.randn(3, 8), x), ValueError,
                                r"x: expected shape \(B, Tq, D=8\), got \(3, 8\)"),
    "decoder memory of wrong width": (lambda: decoder(target, torch.randn(2, 5, 6)), ValueError,
                                      r"memory: expected shape \(B, Tk, D=8\), got \(2, 5, 6\)"),
    "decoder memory of another batch size": (
        lambda: decoder(target, torch.randn(3, 5, 8)), ValueError,
        r"x and memory: .*batch size B.*\(2, 3, 8\).*\(3, 5, 8\)"),
    "decoder given ids instead of vectors": (
        lambda: decoder(torch.ones(2, 3, 8, dtype=torch.long), x), TypeError,
        r"x: expected a floating-point tensor, got torch.int64"),
    "decoder memory of ids": (lambda: decoder(target, torch.ones(2, 5, 8, dtype=torch.long)), TypeError,
                              r"memory: expected a floating-point tensor, got torch.int64"),
    "decoder float memory mask": (lambda: decoder(target, x, torch.ones(2, 5)), TypeError,
                                  r"memory_mask: .*torch.bool.*torch.float32"),
    "decoder memory mask over the target length": (
        lambda: decoder(target, x, torch.ones(2, 3, dtype=torch.bool)), ValueError,
        r"memory_mask: .*\(B, Tk\) = \(2, 5\), got \(2, 3\)"),
    "decoder non-binary memory mask": (lambda: decoder(target, x, torch.full((2, 5), 2)), ValueError,
                                       r"memory_mask: .*only 0 and 1"),
    "decoder causal not a bool": (lambda: decoder(target, x, causal=1), TypeError,
                                  r"causal: expected a bool, got int"),
    "decoder input and memory of different dtypes": (
        lambda: decoder(target, x.double()), TypeError,
        r"x and memory: expected the same dtype.*torch.float32.*torch.float64"),
    "decoder layer from a non-torch layer": (lambda: DecoderLayer.from_torch(nn.Linear(2, 2)), TypeError,
                                             r"torch_layer: .*TransformerDecoderLayer, got Linear"),
    "decoder from a non-torch stack": (lambda: Decoder.from_torch(nn.Linear(2, 2)), TypeError,
                                       r"torch_decoder: .*TransformerDecoder, got Linear"),
    "decoder from a sequence-first torch stack": (
        lambda: Decoder.from_torch(nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 1)),
        ValueError, r"torch_(layer|decoder): expected batch_first=True"),
    "decoder d_model not divisible by heads": (lambda: Decoder(1, 10, 3, 16), ValueError,
                                               r"d_model \(10\).*num_heads \(3\)"),
    "attention dropout out of range": (lambda: MultiHeadAttention(8, 2, dropout=1.5), ValueError,
                                       r"dropout: .*1.5"),
    "seed of wrong type": (lambda: runtime.setup(seed="0"), TypeError, r"seed: expected an int"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_call_raises_a_clear_error(case):
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=message):
        call()

