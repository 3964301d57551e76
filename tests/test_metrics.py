"""Recall / NDCG with one target per user, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from genrec.evaluation import ndcg_at_k, recall_at_k, target_rank


def test_target_rank():
    assert target_rank(["a", "b", "c"], "a") == 1
    assert target_rank(["a", "b", "c"], "c") == 3
    assert target_rank(["a", "b", "b"], "b") == 2  # first occurrence counts
    assert target_rank(["a", "b"], "z") is None
    assert target_rank([], "a") is None


@pytest.mark.parametrize(
    "rank, k, recall, ndcg",
    [
        (1, 5, 1.0, 1.0),  # 1 / log2(2)
        (2, 5, 1.0, 1 / math.log2(3)),  # 0.6309...
        (3, 5, 1.0, 0.5),  # 1 / log2(4)
        (7, 10, 1.0, 1 / 3),  # 1 / log2(8)
        (5, 5, 1.0, 1 / math.log2(6)),  # the cut-off itself is included
        (6, 5, 0.0, 0.0),  # just outside the cut-off
        (None, 20, 0.0, 0.0),  # not recommended at all
    ],
)
def test_recall_and_ndcg_by_hand(rank, k, recall, ndcg):
    assert recall_at_k(rank, k) == recall
    assert ndcg_at_k(rank, k) == pytest.approx(ndcg)


def test_averaging_over_users_by_hand():
    """Three users with the target at ranks 1, 3 and missing: R@2 = 1/3, R@5 = 2/3, N@5 = (1 + 0.5) / 3."""
    ranked = [["t1", "x", "y"], ["x", "y", "t2"], ["x", "y", "z"]]
    ranks = [target_rank(r, t) for r, t in zip(ranked, ["t1", "t2", "t3"])]
    assert ranks == [1, 3, None]
    assert sum(recall_at_k(r, 2) for r in ranks) / 3 == pytest.approx(1 / 3)
    assert sum(recall_at_k(r, 5) for r in ranks) / 3 == pytest.approx(2 / 3)
    assert sum(ndcg_at_k(r, 5) for r in ranks) / 3 == pytest.approx(0.5)
    assert sum(ndcg_at_k(r, 2) for r in ranks) / 3 == pytest.approx(1 / 3)
