"""Random (RID) and independent (IID) identifiers from the P5 indexing study.

RID: each item gets a distinct random number written as text; the base tokenizer splits it into sub-words, so
unrelated items share tokens by chance. IID: each item gets one new token of its own (``<item_17>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genrec.indexing.base import Indexer, IndexerConfig, ItemIndex, register_indexer


@dataclass
class RandomIndexerConfig(IndexerConfig):
    """Args:
    low (`int`, defaults to 1000): smallest number used.
    high (`int`, *optional*): one past the largest number; defaults to ``low + 10 * num_items``.
    """

    low: int = field(default=1000, metadata={"help": "Smallest random number used as an identifier."})
    high: int | None = field(
        default=None, metadata={"help": "One past the largest number (default low + 10 * items)."}
    )


@register_indexer("random")
class RandomIndexer(Indexer):
    config_class = RandomIndexerConfig

    def _high(self, n_items: int) -> int:
        high = self.config.high or self.config.low + 10 * n_items
        if high - self.config.low < n_items:
            raise ValueError(f"range [{self.config.low}, {high}) has fewer numbers than the {n_items} items")
        return high

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        rng = np.random.default_rng(self.config.seed)
        n = len(items)
        numbers = rng.choice(np.arange(self.config.low, self._high(n)), size=n, replace=False)
        return self._make_index(items["item_id"], [str(x) for x in numbers], state={"high": self._high(n)})

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        rng = np.random.default_rng(self.config.seed + len(index))
        used = {int(x) for x in index.identifiers}
        high = max(index.state["high"], self.config.low + 10 * (len(index) + len(new_items)))
        free = np.setdiff1d(np.arange(self.config.low, high), np.fromiter(used, dtype=np.int64))
        numbers = rng.choice(free, size=len(new_items), replace=False)
        return index.with_items(
            new_items["item_id"], [str(x) for x in numbers], state={**index.state, "high": int(high)}
        )


@dataclass
class IndependentIndexerConfig(IndexerConfig):
    """Args:
    token_prefix (`str`, defaults to ``"item_"``): new tokens are ``<{token_prefix}{n}>``.
    """

    token_prefix: str = field(default="item_", metadata={"help": "New tokens are <{token_prefix}{n}>."})


@register_indexer("independent")
class IndependentIndexer(Indexer):
    config_class = IndependentIndexerConfig

    def _token(self, n: int) -> str:
        return f"<{self.config.token_prefix}{n}>"

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        tokens = [self._token(n) for n in range(len(items))]
        return self._make_index(items["item_id"], tokens, new_tokens=tokens)

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        tokens = [self._token(n) for n in range(len(index), len(index) + len(new_items))]
        return index.with_items(new_items["item_id"], tokens, new_tokens=index.new_tokens + tokens)
