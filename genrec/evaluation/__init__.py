"""Metrics and the shared evaluation harness."""

from genrec.evaluation.harness import DEFAULT_KS, Recommender, evaluate, format_table, save_metrics
from genrec.evaluation.metrics import ndcg_at_k, recall_at_k, target_rank

__all__ = [
    "DEFAULT_KS",
    "Recommender",
    "evaluate",
    "format_table",
    "ndcg_at_k",
    "recall_at_k",
    "save_metrics",
    "target_rank",
]
