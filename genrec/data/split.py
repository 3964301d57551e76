"""Leave-one-out split (BENCHMARK.md). The harness owns this; nothing else in genrec splits data.

Per user (interactions already in time order): last item = test, second-last = validation, the rest = training.
Users with fewer than 3 interactions cannot be split; they are dropped and counted, never silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from genrec.data.schema import DataError, InteractionData

logger = logging.getLogger(__name__)

SPLITS = ("valid", "test")


@dataclass(frozen=True)
class Example:
    """One supervised next-item example."""

    user_id: str
    history: list[str]
    target: str


@dataclass
class LeaveOneOutSplit:
    """Per-user training sequences plus one validation and one test item each.

    Args:
        user_ids (`list[str]`): users kept (≥ 3 interactions).
        train (`list[list[str]]`): each user's training sequence (all but the last two items).
        valid_items (`list[str]`): each user's second-last item.
        test_items (`list[str]`): each user's last item.
        catalog (`list[str]`): every item id of the dataset (full-catalog ranking).
        dropped_users (`int`): users with fewer than 3 interactions.
    """

    user_ids: list[str]
    train: list[list[str]]
    valid_items: list[str]
    test_items: list[str]
    catalog: list[str]
    dropped_users: int = 0

    def histories(self, which: str) -> list[list[str]]:
        """Histories given to a model for ``which`` split; for test the validation item is part of the history."""
        _check_split(which)
        if which == "valid":
            return [list(seq) for seq in self.train]
        return [seq + [v] for seq, v in zip(self.train, self.valid_items)]

    def targets(self, which: str) -> list[str]:
        _check_split(which)
        return list(self.valid_items if which == "valid" else self.test_items)

    def train_examples(self, max_history: int = 50, last_targets: int | None = None) -> Iterator[Example]:
        """Every prefix of every training sequence: history (most recent ``max_history`` items) → next item; with
        ``last_targets``, only the last ``last_targets`` targets of each sequence (the ones nearest in time to the
        held-out items)."""
        if last_targets is not None and last_targets < 1:
            raise ValueError(f"last_targets must be ≥ 1 or None, got {last_targets}")
        for user, seq in zip(self.user_ids, self.train):
            first = 1 if last_targets is None else max(1, len(seq) - last_targets)
            for i in range(first, len(seq)):
                yield Example(user, seq[max(0, i - max_history) : i], seq[i])

    def train_item_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for seq in self.train:
            for item in seq:
                counts[item] = counts.get(item, 0) + 1
        return counts


def _check_split(which: str) -> None:
    if which not in SPLITS:
        raise ValueError(f"unknown split {which!r}; expected one of {SPLITS}")


def leave_one_out(data: InteractionData) -> LeaveOneOutSplit:
    """Split ``data`` leave-one-out. Raises :class:`DataError` if no user has enough interactions."""
    users, sequences = data.sequences()
    kept_users, train, valid, test = [], [], [], []
    dropped = 0
    for user, seq in zip(users, sequences):
        if len(seq) < 3:
            dropped += 1
            continue
        kept_users.append(user)
        train.append(seq[:-2])
        valid.append(seq[-2])
        test.append(seq[-1])
    if dropped:
        logger.warning("dropped %d user(s) with fewer than 3 interactions (cannot be split leave-one-out)", dropped)
    if not kept_users:
        raise DataError("no user has the 3 interactions a leave-one-out split needs")
    return LeaveOneOutSplit(kept_users, train, valid, test, data.items["item_id"].tolist(), dropped)
