"""Leave-one-out split: hand-made cases and the no-leakage property (checked by position, not by item id)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import make_synthetic_data

from genrec.data import DataError, InteractionData, leave_one_out


def make_data(rows: list[tuple[str, str, int]]) -> InteractionData:
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": sorted(set(interactions["item_id"]))})
    return InteractionData(interactions, items, name="hand")


def test_hand_made_split():
    rows = [
        ("u1", "c", 3), ("u1", "a", 1), ("u1", "b", 2), ("u1", "d", 4),  # out of file order: sorted by time
        ("u2", "x", 5), ("u2", "y", 9), ("u2", "z", 9),  # tie at t=9: file order decides, z is last
        ("u3", "a", 1), ("u3", "b", 2),  # only 2 interactions: dropped and counted
        ("u4", "q", 1),
    ]  # fmt: skip
    split = leave_one_out(make_data(rows))
    assert split.user_ids == ["u1", "u2"]
    assert split.dropped_users == 2
    assert split.train == [["a", "b"], ["x"]]
    assert split.valid_items == ["c", "y"]
    assert split.test_items == ["d", "z"]
    assert split.histories("valid") == [["a", "b"], ["x"]]
    assert split.histories("test") == [["a", "b", "c"], ["x", "y"]]  # the valid item is part of the test history
    assert split.targets("test") == ["d", "z"]
    assert sorted(split.catalog) == ["a", "b", "c", "d", "q", "x", "y", "z"]  # full catalog, dropped users' items too
    examples = list(split.train_examples())
    assert [(e.user_id, e.history, e.target) for e in examples] == [("u1", ["a"], "b")]
    with pytest.raises(ValueError, match="unknown split"):
        split.histories("train")


def test_no_user_with_three_interactions():
    with pytest.raises(DataError, match="3 interactions"):
        leave_one_out(make_data([("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 1)]))


def test_history_truncation():
    rows = [("u", f"i{t}", t) for t in range(8)]
    split = leave_one_out(make_data(rows))
    examples = list(split.train_examples(max_history=2))
    assert [e.history for e in examples] == [["i0"], ["i0", "i1"], ["i1", "i2"], ["i2", "i3"], ["i3", "i4"]]
    assert [e.target for e in examples] == ["i1", "i2", "i3", "i4", "i5"]


def test_last_targets_keep_each_users_most_recent_examples():
    rows = [("u", f"i{t}", t) for t in range(8)] + [("v", f"j{t}", t) for t in range(4)]
    split = leave_one_out(make_data(rows))  # training: i0..i5 and j0, j1
    examples = list(split.train_examples(max_history=2, last_targets=2))
    assert [(e.user_id, e.history, e.target) for e in examples] == [
        ("u", ["i2", "i3"], "i4"),
        ("u", ["i3", "i4"], "i5"),
        ("v", ["j0"], "j1"),  # a user with fewer targets keeps them all
    ]
    with pytest.raises(ValueError, match="last_targets"):
        list(split.train_examples(last_targets=0))


@pytest.mark.parametrize("seed", [0, 1])
def test_no_leakage_by_position(seed):
    """No held-out position (the last two of each user) feeds training; items may legitimately repeat earlier."""
    # Few items and long sequences, so validation/test items also occur earlier in the same user's sequence.
    data = make_synthetic_data(num_users=25, num_items=6, length=12, seed=seed)
    users, sequences = data.sequences()
    full = dict(zip(users, sequences))
    split = leave_one_out(data)
    repeats = 0
    for user, train, valid, test in zip(split.user_ids, split.train, split.valid_items, split.test_items):
        seq = full[user]
        assert train == seq[:-2] and valid == seq[-2] and test == seq[-1]
        repeats += (valid in train) + (test in train)
    assert repeats > 0, "the data should contain held-out items that also occur in training positions"

    max_history = 4
    by_user: dict[str, list] = {}
    for example in split.train_examples(max_history=max_history):
        by_user.setdefault(example.user_id, []).append(example)
    for user, train in zip(split.user_ids, split.train):
        seq = full[user]
        examples = by_user.get(user, [])
        assert len(examples) == len(train) - 1
        for position, example in enumerate(examples, start=1):
            # Example k predicts position k of the full sequence from the positions before it ...
            assert position < len(seq) - 2  # ... and never a held-out position.
            assert example.target == seq[position]
            assert example.history == seq[max(0, position - max_history) : position]
    for history, train, valid in zip(split.histories("test"), split.train, split.valid_items):
        assert history == train + [valid]
    for history, train in zip(split.histories("valid"), split.train):
        assert history == train
    # Counts fitted on training data cover exactly the training positions.
    assert sum(split.train_item_counts().values()) == sum(len(t) for t in split.train)
