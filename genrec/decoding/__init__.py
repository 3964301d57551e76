"""Decoding: the item trie over identifier token ids, the trie-constrained LogitsProcessor, and beam ranking."""

from genrec.decoding.logits_process import TrieConstrainedLogitsProcessor, make_prefix_allowed_tokens_fn
from genrec.decoding.trie import EMPTY_BEAM_SCORE, ItemTrie, rank_items

__all__ = [
    "EMPTY_BEAM_SCORE",
    "ItemTrie",
    "TrieConstrainedLogitsProcessor",
    "make_prefix_allowed_tokens_fn",
    "rank_items",
]
