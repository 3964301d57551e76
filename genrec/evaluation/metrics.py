"""Ranking metrics for one held-out target item per user (so Recall@K equals HitRate@K)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def target_rank(ranked: Sequence[str], target: str) -> int | None:
    """1-based rank of ``target`` in ``ranked`` (first occurrence), or ``None`` if absent."""
    for position, item in enumerate(ranked, start=1):
        if item == target:
            return position
    return None


def recall_at_k(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg_at_k(rank: int | None, k: int) -> float:
    """NDCG with a single relevant item: the ideal DCG is 1, so NDCG = 1 / log2(rank + 1)."""
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0
