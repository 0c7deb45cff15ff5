"""tokenization: WordPiece and BPE follow one calling convention.

The same keywords (``add_special_tokens``, ``max_length``, ``skip_special_tokens``), the same
truncation rule and the same padded batch with its attention mask; only the default of
``add_special_tokens`` differs (True for WordPiece, False for BPE). Each tokenizer's own algorithm
is tested in test_wordpiece.py and test_bpe.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from transformer_course.tokenization import SPECIAL_TOKENS, BPETokenizer, WordPieceTokenizer, pad_batch

TEXTS = ["the cat sat on the mat.", "a cat.", "the mat sat on a cat on a mat on the cat."]


@pytest.fixture(scope="module", params=["wordpiece", "bpe"])
def tokenizer(request):
    if request.param == "wordpiece":
        return WordPieceTokenizer([*SPECIAL_TOKENS, "the", "a", "cat", "sat", "on", "mat", "."])
    return BPETokenizer.learn(TEXTS, vocab_size=290)


def test_both_tokenizers_take_the_same_keywords():
    def parameters(cls, method):
        return {
            name: p.kind for name, p in inspect.signature(getattr(cls, method)).parameters.items()
        }

    for method in ("encode", "tokenize", "decode", "convert_ids_to_tokens", "__call__"):
        wordpiece, bpe = parameters(WordPieceTokenizer, method), parameters(BPETokenizer, method)
        bpe.pop("num_merges", None)  # BPE's one extra: replay only the first merges
        assert wordpiece == bpe, method
    # The one documented difference: WordPiece adds [CLS]/[SEP] by default (as BERT), BPE does not.
    for method in ("encode", "__call__"):
        defaults = [inspect.signature(getattr(cls, method)).parameters["add_special_tokens"].default
                    for cls in (WordPieceTokenizer, BPETokenizer)]
        assert defaults == [True, False], method
    assert all(isinstance(cls.vocab_size, property) for cls in (WordPieceTokenizer, BPETokenizer))


@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_max_length_keeps_the_first_tokens(tokenizer, add_special_tokens):
    text = TEXTS[2]
    full = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    body = full[1:-1] if add_special_tokens else full
    assert len(body) > 5
    for max_length in range(2, len(full) + 3):
        ids = tokenizer.encode(text, add_special_tokens=add_special_tokens, max_length=max_length)
        assert len(ids) == min(max_length, len(full))
        if add_special_tokens:
            assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
            assert ids[1:-1] == body[: len(ids) - 2]
        else:
            assert ids == body[: len(ids)]


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("max_length", [None, 4])
def test_call_pads_a_batch_with_its_attention_mask(tokenizer, add_special_tokens, max_length):
    batch = tokenizer(TEXTS, add_special_tokens=add_special_tokens, max_length=max_length)
    rows = [tokenizer.encode(t, add_special_tokens=add_special_tokens, max_length=max_length) for t in TEXTS]
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert set(batch) == {"input_ids", "attention_mask"}
    assert ids.dtype == mask.dtype == torch.long and ids.shape == mask.shape == (3, max(map(len, rows)))
    assert mask.sum(dim=1).tolist() == [len(r) for r in rows]
    for row, expected in zip(ids.tolist(), rows, strict=True):
        assert row == expected + [tokenizer.pad_id] * (len(row) - len(expected))
    assert tokenizer(TEXTS[1])["input_ids"].tolist() == [tokenizer.encode(TEXTS[1])]  # a batch of one


def test_decode_and_tokens_agree_on_special_tokens(tokenizer):
    with_specials = tokenizer.encode(TEXTS[0], add_special_tokens=True)
    without = tokenizer.encode(TEXTS[0], add_special_tokens=False)
    assert with_specials == [tokenizer.cls_id, *without, tokenizer.sep_id]
    tokens = tokenizer.convert_ids_to_tokens(with_specials)
    assert (tokens[0], tokens[-1]) == ("[CLS]", "[SEP]") and tokens[1:-1] == tokenizer.tokenize(TEXTS[0])
    assert tokenizer.decode(with_specials, skip_special_tokens=True) == tokenizer.decode(without)
    assert "[CLS]" in tokenizer.decode(torch.tensor(with_specials))


def test_bad_keywords_raise_clear_errors(tokenizer):
    with pytest.raises(ValueError, match=r"max_length.*>= 2 \(room for \[CLS\] and \[SEP\]\)"):
        tokenizer.encode("a cat", add_special_tokens=True, max_length=1)
    with pytest.raises(ValueError, match="max_length.*>= 1"):
        tokenizer(["a cat"], add_special_tokens=False, max_length=0)
    with pytest.raises(ValueError, match="max_length"):
        tokenizer.encode("a cat", max_length=3.0)
    with pytest.raises(TypeError, match="add_special_tokens"):
        tokenizer.encode("a cat", add_special_tokens=1)
    # Keyword-only: tokenizer(texts, 8) must not quietly mean add_special_tokens=8.
    with pytest.raises(TypeError):
        tokenizer(["a cat"], 8)
    with pytest.raises(TypeError):
        tokenizer.encode("a cat", True)


def test_pad_batch_pads_to_the_longest():
    batch = pad_batch([[5], [5, 6, 7]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 0, 0], [5, 6, 7]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="sequences"):
        pad_batch([], pad_id=0)
