"""Recommenders: the shared base and one module per decoder kind, each registered under its bundle decoder tag
(:func:`genrec.bundle.register_recommender`). Importing this package registers the built-in kinds."""

from genrec.recommenders.base import UNKNOWN_MODES, GenerativeRecommender, Recommendation
from genrec.recommenders.set import SetBundleConfig, SetRecommender
from genrec.recommenders.trie import TrieRecommender

__all__ = [
    "UNKNOWN_MODES",
    "GenerativeRecommender",
    "Recommendation",
    "SetBundleConfig",
    "SetRecommender",
    "TrieRecommender",
]
