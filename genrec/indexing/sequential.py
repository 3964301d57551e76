"""Sequential identifiers (SID) from the P5 indexing study.

Items are numbered consecutively in the order they first appear in the training sequences (users in the given
order, each user's items in time order), and the number is written as plain text. Items consumed together early
by the same users get neighbouring numbers, so they share leading sub-word tokens of the base tokenizer. OpenP5
starts the numbering at 1001; that is the default here.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genrec.data.schema import DataError
from genrec.indexing.base import Indexer, IndexerConfig, ItemIndex, register_indexer

logger = logging.getLogger(__name__)


def flatten_sequences(item_ids, train_sequences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``train_sequences`` as catalog positions without a Python loop per interaction.

    Returns ``(codes, lengths)``: ``codes`` (int64, one entry per interaction, sequences concatenated) holds each
    item's position in ``item_ids``; ``lengths`` holds each sequence's length. Shared by the sequence-based indexers.

    Raises:
        DataError: if a sequence names an item that is not in the catalog.
    """
    lengths = np.fromiter(map(len, train_sequences), dtype=np.int64, count=len(train_sequences))
    total = int(lengths.sum())
    flat = np.fromiter(itertools.chain.from_iterable(train_sequences), dtype=object, count=total)
    catalog = pd.Index(pd.Series(item_ids, dtype=object).astype(str))
    codes = catalog.get_indexer(flat)
    if total and codes.min() < 0:  # maybe ids that are not strings (e.g. ints): compare as text before failing
        codes = catalog.get_indexer(flat.astype(str))
    if total and codes.min() < 0:
        unknown = pd.unique(flat[codes < 0])[:5].tolist()
        raise DataError(
            f"{int((codes < 0).sum())} training interaction(s) name items that are not in the catalog, e.g. {unknown}"
        )
    return codes.astype(np.int64), lengths


@dataclass
class SequentialIndexerConfig(IndexerConfig):
    """Args:
    start (`int`, defaults to 1001): number given to the first item (OpenP5 starts at 1001).
    """

    start: int = field(default=1001, metadata={"help": "Number of the first item (OpenP5 uses 1001)."})

    def __post_init__(self):
        if self.start < 0:
            raise ValueError(f"start must be >= 0, got {self.start}")


@register_indexer("sequential")
class SequentialIndexer(Indexer):
    """Consecutive numbers in order of first appearance in the training sequences.

    Items that never appear in training (cold items, or items seen only in validation/test) get the next numbers
    in catalog order, so the numbering never depends on held-out interactions.

    Example:
        >>> index = build_indexer("sequential").fit(data.items, split.train)  # doctest: +SKIP
        >>> index.identifier(split.train[0][0])  # doctest: +SKIP
        '1001'
    """

    config_class = SequentialIndexerConfig

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        item_ids = items["item_id"].astype(str).to_numpy()
        codes, _ = flatten_sequences(item_ids, train_sequences)
        first_seen = pd.unique(codes)  # order of first appearance
        unseen = np.setdiff1d(np.arange(len(item_ids)), first_seen, assume_unique=True)  # sorted = catalog order
        order = np.concatenate([first_seen, unseen]).astype(np.int64)
        numbers = np.empty(len(item_ids), dtype=np.int64)
        numbers[order] = np.arange(self.config.start, self.config.start + len(item_ids))
        if len(unseen):
            logger.info(
                "%d of %d items never appear in training; numbered after the seen ones", len(unseen), len(numbers)
            )
        return self._make_index(
            item_ids,
            [str(n) for n in numbers],
            state={"next": self.config.start + len(item_ids)},
            stats={"items_seen_in_training": len(first_seen), "items_unseen": len(unseen)},
        )

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        """New items get the next free numbers, in the order given."""
        start = index.state.get("next")
        if start is None:  # an index saved without state: continue after the largest number
            start = max(int(x) for x in index.identifiers) + 1
        numbers = range(start, start + len(new_items))
        return index.with_items(
            new_items["item_id"], [str(n) for n in numbers], state={**index.state, "next": start + len(new_items)}
        )
