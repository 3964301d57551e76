"""Title identifiers (TID) from the P5 indexing study: the item's own title, as plain text.

Titles carry language the backbone already knows, but they are long and not unique, so they are normalised
(whitespace collapsed), truncated to ``max_words`` words, and repeated titles get a deterministic suffix
(``" (2)"``, ``" (3)"``, ... in catalog order). Items without a title get ``empty_title`` (e.g. ``"item 42"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from genrec.indexing.base import Indexer, IndexerConfig, ItemIndex, register_indexer

logger = logging.getLogger(__name__)


@dataclass
class TitleIndexerConfig(IndexerConfig):
    """Args:
    max_words (`int`, *optional*, defaults to 20): keep at most this many words of a title (``None``: all).
    empty_title (`str`, defaults to ``"item {item_id}"``): identifier template for items with an empty title.
    """

    max_words: int | None = field(default=20, metadata={"help": "Keep at most this many words (None keeps all)."})
    empty_title: str = field(
        default="item {item_id}", metadata={"help": "Template for items without a title; may use {item_id}."}
    )

    def __post_init__(self):
        if self.max_words is not None and self.max_words < 1:
            raise ValueError(f"max_words must be >= 1 or None, got {self.max_words}")
        if "{item_id}" not in self.empty_title:
            raise ValueError(
                f"empty_title must contain '{{item_id}}' so fallback titles differ, got {self.empty_title!r}"
            )


@register_indexer("title")
class TitleIndexer(Indexer):
    """The item title as its identifier (no new tokens).

    Example:
        >>> index = build_indexer("title", max_words=8).fit(data.items, split.train)  # doctest: +SKIP
        >>> index.identifier("i3")  # doctest: +SKIP
        'Movie 3 Horror story'
    """

    config_class = TitleIndexerConfig

    def _base_title(self, item_id: str, title) -> str:
        words = str(title if isinstance(title, str) else "").split()
        if self.config.max_words is not None:
            words = words[: self.config.max_words]
        return " ".join(words) or self.config.empty_title.format(item_id=item_id)

    def _titles(self, items: pd.DataFrame, used: set[str]) -> tuple[list[str], int]:
        """Unique identifiers for ``items`` given the identifiers already ``used`` (updated in place).

        Returns the identifiers and how many of them needed a ``" (n)"`` suffix.
        """
        titles = items["title"] if "title" in items.columns else pd.Series([""] * len(items))
        out = []
        repeated = 0
        for item_id, title in zip(items["item_id"].astype(str), titles):
            base = self._base_title(item_id, title)
            candidate, n = base, 1
            while candidate in used:  # a suffixed title may itself be a real title: keep counting until free
                n += 1
                candidate = f"{base} ({n})"
            repeated += n > 1
            used.add(candidate)
            out.append(candidate)
        if repeated:
            logger.info("%d of %d titles repeat an earlier one; suffixed with ' (n)'", repeated, len(out))
        return out, repeated

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        identifiers, suffixed = self._titles(items, set())
        return self._make_index(items["item_id"], identifiers, stats={"suffixed_titles": suffixed})

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        identifiers, _ = self._titles(new_items, set(index.identifiers))
        return index.with_items(new_items["item_id"], identifiers)
