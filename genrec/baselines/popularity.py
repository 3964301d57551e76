"""Most-popular baseline: every user gets the items with the most training interactions.

It is the floor every sequential or generative model must clear under the shared harness; it counts only the
training part of the leave-one-out split, so neither validation nor test items leak into it.
"""

from __future__ import annotations

import logging

from genrec.data.split import LeaveOneOutSplit

logger = logging.getLogger(__name__)


class PopularityRecommender:
    """Rank the catalog by training interaction count (ties: catalog order, so the ranking is deterministic).

    Example:

    ```python
    >>> from genrec.data import leave_one_out
    >>> from genrec.baselines import PopularityRecommender
    >>> pop = PopularityRecommender().fit(leave_one_out(data))
    >>> pop.recommend([["i1", "i2"]], k=3, exclude_seen=True)
    ```
    """

    def __init__(self):
        self.ranking: list[str] = []
        self.counts: dict[str, int] = {}

    def fit(self, split: LeaveOneOutSplit) -> PopularityRecommender:
        """Count each item's occurrences in the training sequences; items never seen in training rank last."""
        if not split.catalog:
            raise ValueError("the split has an empty catalog; nothing to recommend")
        counts = split.train_item_counts()
        order = {item: position for position, item in enumerate(split.catalog)}
        self.counts = {item: counts.get(item, 0) for item in split.catalog}
        self.ranking = sorted(split.catalog, key=lambda item: (-self.counts[item], order[item]))
        logger.info("popularity: %d items, %d with training interactions", len(self.ranking), len(counts))
        return self

    def recommend(self, histories: list[list[str]], k: int, exclude_seen: bool = False, **options) -> list[list[str]]:
        """The ``k`` most popular items for each history (the history only matters with ``exclude_seen``).

        Args:
            histories (`list[list[str]]`): item ids per user, oldest first.
            k (`int`): number of items per user.
            exclude_seen (`bool`, *optional*, defaults to `False`): drop items already in the user's history.
        """
        if not self.ranking:
            raise ValueError("PopularityRecommender is not fitted; call fit(split) first")
        if k <= 0:
            raise ValueError(f"k must be a positive integer, got {k}")
        if options:
            logger.warning("PopularityRecommender ignores options %s", sorted(options))
        if not exclude_seen:
            top = self.ranking[:k]
            return [list(top) for _ in histories]
        results = []
        for history in histories:
            seen = set(history)
            ranked = []
            for item in self.ranking:
                if item not in seen:
                    ranked.append(item)
                    if len(ranked) == k:
                        break
            results.append(ranked)
        return results
