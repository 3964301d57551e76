"""The evaluation harness with fake recommenders whose exact metrics are known in advance."""

from __future__ import annotations

import json
import math

import pytest

from genrec.data.split import LeaveOneOutSplit
from genrec.evaluation import evaluate, format_table, save_metrics

FILLERS = [f"f{i}" for i in range(40)]


def make_split(num_users: int = 10) -> LeaveOneOutSplit:
    """Every user's history starts with its own item, so a history identifies its user."""
    users = [f"u{u}" for u in range(num_users)]
    train = [[f"h{u}", "shared"] for u in range(num_users)]
    valid = [f"v{u}" for u in range(num_users)]
    test = [f"t{u}" for u in range(num_users)]
    catalog = [f"h{u}" for u in range(num_users)] + valid + test + ["shared"] + FILLERS
    return LeaveOneOutSplit(users, train, valid, test, catalog)


class Oracle:
    """Puts the true target at a chosen rank (or leaves it out), padding with catalog fillers or invalid ids."""

    def __init__(self, split: LeaveOneOutSplit, which: str, ranks: dict[int, int | None], invalid: int = 0):
        self.target = {tuple(h): t for h, t in zip(split.histories(which), split.targets(which))}
        self.user = {tuple(h): u for u, h in enumerate(split.histories(which))}
        self.ranks, self.invalid = ranks, invalid
        self.seen: list[tuple] = []
        self.options: dict = {}

    def recommend(self, histories, k, **options):
        self.options = options
        out = []
        for history in histories:
            key = tuple(history)
            self.seen.append(key)
            ranked = [f"not-an-item-{i}" for i in range(self.invalid)] + FILLERS
            rank = self.ranks.get(self.user[key], 1)
            if rank is not None:
                ranked.insert(rank - 1, self.target[key])
            out.append(ranked[:k])
        return out


def test_perfect_recommender_and_output_keys():
    split = make_split()
    metrics = evaluate(Oracle(split, "test", {}), split, progress=False)
    for k in (5, 10, 20):
        assert metrics[f"recall@{k}"] == 1.0 and metrics[f"ndcg@{k}"] == 1.0
    assert metrics["invalid_rate"] == 0.0 and metrics["num_users"] == 10
    assert {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20", "invalid_rate", "num_users"} <= set(
        metrics
    )


def test_metrics_with_targets_at_fixed_ranks():
    split = make_split()
    ranks = {u: 1 for u in range(5)} | {5: 3, 6: 3, 7: 3, 8: 15, 9: None}
    metrics = evaluate(Oracle(split, "test", ranks), split, ks=(5, 10, 20), batch_size=3, progress=False)
    assert metrics["recall@5"] == pytest.approx(0.8)
    assert metrics["recall@10"] == pytest.approx(0.8)
    assert metrics["recall@20"] == pytest.approx(0.9)
    assert metrics["ndcg@5"] == pytest.approx((5 + 3 * 0.5) / 10)
    assert metrics["ndcg@20"] == pytest.approx((5 + 3 * 0.5 + 1 / math.log2(16)) / 10)


def test_valid_and_test_histories():
    split = make_split()
    oracle = Oracle(split, "valid", {})
    assert evaluate(oracle, split, which="valid", progress=False)["recall@5"] == 1.0
    assert all(history[-1] == "shared" for history in oracle.seen)  # validation histories are training only
    oracle = Oracle(split, "test", {})
    evaluate(oracle, split, which="test", progress=False)
    assert sorted(h[-1] for h in oracle.seen) == sorted(split.valid_items)  # test history ends with the valid item


def test_invalid_rate_counts_non_catalog_ids():
    split = make_split()
    # 5 invalid ids first, target at rank 6: R@5 = 0, R@10 = 1; 5 of the 20 returned ids are invalid.
    metrics = evaluate(Oracle(split, "test", {u: 6 for u in range(10)}, invalid=5), split, progress=False)
    assert metrics["invalid_rate"] == pytest.approx(5 / 20)
    assert metrics["recall@5"] == 0.0 and metrics["recall@10"] == 1.0


def test_max_users_sampling_is_seeded():
    split = make_split()
    samples = []
    for seed in (0, 0, 1, 2, 3):
        oracle = Oracle(split, "test", {})
        metrics = evaluate(oracle, split, max_users=4, seed=seed, progress=False)
        assert metrics["num_users"] == 4 and len(oracle.seen) == 4 and len(set(oracle.seen)) == 4
        samples.append(tuple(oracle.seen))
    assert samples[0] == samples[1]  # same seed, same users
    assert len(set(samples)) > 1  # other seeds, other users
    oracle = Oracle(split, "test", {})
    assert evaluate(oracle, split, max_users=100, progress=False)["num_users"] == 10


def test_options_and_errors(tmp_path):
    split = make_split()
    oracle = Oracle(split, "test", {})
    evaluate(oracle, split, exclude_seen=True, num_beams=20, progress=False)
    assert oracle.options == {"exclude_seen": True, "num_beams": 20}
    with pytest.raises(ValueError, match="positive"):
        evaluate(oracle, split, ks=(0, 5), progress=False)

    class Short:
        def recommend(self, histories, k, **options):
            return [["f0"]] * (len(histories) - 1)

    with pytest.raises(RuntimeError, match="lists for"):
        evaluate(Short(), split, progress=False)

    metrics = evaluate(Oracle(split, "test", {}), split, ks=(1, 2), progress=False)
    save_metrics(metrics, str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text()) == metrics
    table = format_table({"oracle": metrics}, ks=(1, 2))
    assert "oracle | 1.0000 | 1.0000" in table
