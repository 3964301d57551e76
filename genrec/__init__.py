"""genrec: generative recommendation with custom item tokens.

Importing genrec registers the built-in indexers and the ``"next-item-recommendation"`` transformers pipeline.
"""

__version__ = "0.1.0"

from genrec import pipeline as _pipeline  # noqa: F401  (registers the transformers task on import)
from genrec.data import InteractionData, leave_one_out
from genrec.evaluation import evaluate
from genrec.indexing import ItemIndex, build_indexer
from genrec.recommender import GenerativeRecommender

__all__ = ["GenerativeRecommender", "InteractionData", "ItemIndex", "build_indexer", "evaluate", "leave_one_out"]
