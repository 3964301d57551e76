"""Decoding: the item trie over identifier token ids, the trie-constrained LogitsProcessor, beam ranking, and
SETRec's set scoring."""

from genrec.decoding.logits_process import TrieConstrainedLogitsProcessor, make_prefix_allowed_tokens_fn
from genrec.decoding.ranking import rank_items
from genrec.decoding.set_scoring import SetVocabulary, score_set_items
from genrec.decoding.trie import EMPTY_BEAM_SCORE, ItemTrie

__all__ = [
    "EMPTY_BEAM_SCORE",
    "ItemTrie",
    "SetVocabulary",
    "TrieConstrainedLogitsProcessor",
    "make_prefix_allowed_tokens_fn",
    "rank_items",
    "score_set_items",
]
