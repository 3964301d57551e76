"""The one evaluation harness: every number genrec reports, baselines and generative models alike, comes from here.

Anything with ``recommend(histories: list[list[str]], k: int, **options) -> list[list[str]]`` can be evaluated.
Entries that are not catalog item ids count as invalid (``invalid_rate``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Protocol

from tqdm.auto import tqdm

from genrec.data.split import LeaveOneOutSplit
from genrec.evaluation.metrics import ndcg_at_k, recall_at_k, target_rank
from genrec.utils import atomic_write_json

logger = logging.getLogger(__name__)

DEFAULT_KS = (5, 10, 20)


class Recommender(Protocol):
    def recommend(self, histories: list[list[str]], k: int, **options) -> list[list[str]]: ...


def evaluate(
    recommender: Recommender,
    split: LeaveOneOutSplit,
    which: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 256,
    exclude_seen: bool = False,
    max_users: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **options,
) -> dict:
    """Score ``recommender`` on the ``which`` split of ``split`` with full-catalog ranking.

    Args:
        ks: cut-offs; the recommender is asked for ``max(ks)`` items per user.
        exclude_seen: passed to the recommender; when used it must be stated beside the numbers (BENCHMARK.md).
        max_users: evaluate a fixed random sample of users (seeded) instead of all; recorded in the output.
        options: extra keyword arguments for ``recommend`` (e.g. ``num_beams``).

    Returns:
        dict with ``recall@K``, ``ndcg@K`` for each K, ``invalid_rate``, ``num_users`` (and ``exclude_seen``).
    """
    if isinstance(ks, (int, str)) or any(isinstance(k, bool) or int(k) != k for k in ks):
        raise ValueError(f"ks must be a list of positive integers (cut-offs), got {ks!r}")
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] <= 0:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if max_users is not None and (isinstance(max_users, bool) or int(max_users) != max_users or max_users < 1):
        raise ValueError(f"max_users must be a positive integer (or None for every user), got {max_users!r}")
    histories, targets = split.histories(which), split.targets(which)
    users = list(range(len(targets)))
    if not users:
        raise ValueError(f"the {which!r} split has no users to evaluate")
    if max_users is not None and max_users < len(users):
        users = sorted(random.Random(seed).sample(users, max_users))
    catalog = set(split.catalog)
    if exclude_seen:
        options["exclude_seen"] = True

    sums = {f"{name}@{k}": 0.0 for name in ("recall", "ndcg") for k in ks}
    n_returned = n_invalid = 0
    bar = tqdm(total=len(users), desc=f"evaluate ({which})", unit="user", disable=not progress)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        ranked_lists = recommender.recommend([histories[u] for u in batch], k=ks[-1], **options)
        if len(ranked_lists) != len(batch):
            raise RuntimeError(f"recommend returned {len(ranked_lists)} lists for {len(batch)} histories")
        for u, ranked in zip(batch, ranked_lists):
            ranked = list(ranked)[: ks[-1]]
            n_returned += len(ranked)
            n_invalid += sum(item not in catalog for item in ranked)
            rank = target_rank(ranked, targets[u])
            for k in ks:
                sums[f"recall@{k}"] += recall_at_k(rank, k)
                sums[f"ndcg@{k}"] += ndcg_at_k(rank, k)
        bar.update(len(batch))
    bar.close()
    n = max(1, len(users))
    result = {key: value / n for key, value in sums.items()}
    result["invalid_rate"] = n_invalid / max(1, n_returned)
    result["num_users"] = len(users)
    result["split"] = which
    result["exclude_seen"] = exclude_seen
    return result


def save_metrics(metrics: dict, path: str) -> None:
    atomic_write_json(path, metrics)


def format_table(rows: dict[str, dict], ks: Sequence[int] = DEFAULT_KS) -> str:
    """A plain-text table: one row per model name, columns R@K / N@K / invalid."""
    header = ["model"] + [f"R@{k}" for k in ks] + [f"N@{k}" for k in ks] + ["invalid", "users"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for name, m in rows.items():
        cells = [name] + [f"{m[f'recall@{k}']:.4f}" for k in ks] + [f"{m[f'ndcg@{k}']:.4f}" for k in ks]
        cells += [f"{m.get('invalid_rate', 0.0):.4f}", str(m.get("num_users", ""))]
        lines.append(" | ".join(cells))
    return "\n".join(lines)
