"""Tokenization: from raw text to the ids an encoder reads, in two families of sub-word tokenizers.

- :mod:`.basic`: BERT's basic tokenization (words, punctuation, CJK ideographs, accents) and the
  pieces both tokenizers share: the special tokens and :func:`pad_batch`;
- :mod:`.wordpiece`: :class:`WordPieceTokenizer`, the tokenizer of a real BERT model, giving
  exactly the ids of the reference tokenizer of Hugging Face ``transformers``;
- :mod:`.bpe`: :class:`BPETokenizer`, byte-pair encoding learned here from raw text.

Both follow one calling convention: ``encode(text, add_special_tokens=..., max_length=None)``,
``tokenize(text)``, ``decode(ids, skip_special_tokens=False)``, ``convert_ids_to_tokens(ids)``,
``tokenizer(texts, add_special_tokens=..., max_length=None)`` for a padded batch with its
attention mask, and ``vocab_size``. Only the default of ``add_special_tokens`` differs: True for
WordPiece (its model was trained with ``[CLS]`` and ``[SEP]``), False for BPE.

Examples:
    >>> from transformer_course import tokenization
    >>> tok = tokenization.BPETokenizer.learn(["low lower lowest"], vocab_size=275)
    >>> tok.decode(tok.encode("slow", add_special_tokens=True))
    '[CLS]slow[SEP]'
"""

from .basic import SPECIAL_TOKENS, basic_tokenize, is_cjk, is_punctuation, pad_batch
from .bpe import BPETokenizer, Merge, bpe_pretokenize
from .wordpiece import WordPieceTokenizer

__all__ = [
    "SPECIAL_TOKENS", "basic_tokenize", "is_cjk", "is_punctuation", "pad_batch",
    "WordPieceTokenizer", "BPETokenizer", "Merge", "bpe_pretokenize",
]
