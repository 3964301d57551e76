"""Hybrid identifiers (HID) from the P5 indexing study: the identifiers of several methods, concatenated.

The P5 study combines e.g. collaborative + independent (CID+IID: ``<c1_3><c2_0><c3_17><item_42>``) or semantic +
independent (SemID+IID). Each part is built with :func:`~genrec.indexing.build_indexer`, an item's identifier is
its part identifiers joined by ``separator``, and the new tokens are the union of the parts' new tokens. The part
indexes are kept in ``state`` so new items can be added to every part (cold start) without refitting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from genrec.indexing.base import Indexer, IndexerConfig, ItemIndex, build_indexer, register_indexer

logger = logging.getLogger(__name__)


@dataclass
class HybridIndexerConfig(IndexerConfig):
    """Args:
    parts (`list[str]`, defaults to ``["collaborative", "independent"]``): indexing methods, in identifier order.
    part_options (`dict[str, dict]`, *optional*): options per part method, e.g. ``{"collaborative": {"window": 3}}``;
        a part without its own ``seed`` uses this config's seed.
    separator (`str`, defaults to ``""``): text between part identifiers (e.g. ``" "`` for text parts).
    """

    parts: list[str] = field(
        default_factory=lambda: ["collaborative", "independent"],
        metadata={"help": "Indexing methods whose identifiers are concatenated, in order (P5: CID+IID)."},
    )
    part_options: dict[str, dict] = field(
        default_factory=dict, metadata={"help": "Options per part method, e.g. {'collaborative': {'window': 3}}."}
    )
    separator: str = field(default="", metadata={"help": "Text placed between the part identifiers."})

    def __post_init__(self):
        if isinstance(self.parts, str):
            self.parts = [p.strip() for p in self.parts.split(",") if p.strip()]
        if len(self.parts) < 2:
            raise ValueError(f"a hybrid index needs at least 2 parts, got {self.parts}")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"hybrid parts must be distinct methods, got {self.parts}")
        if "hybrid" in self.parts:
            raise ValueError("a hybrid index cannot contain another hybrid index")
        unknown = sorted(set(self.part_options) - set(self.parts))
        if unknown:
            raise ValueError(f"part_options given for {unknown}, which are not among the parts {self.parts}")


@register_indexer("hybrid")
class HybridIndexer(Indexer):
    """Concatenation of the identifiers of several indexing methods.

    Example:
        >>> indexer = build_indexer("hybrid", parts=["collaborative", "independent"],
        ...                         part_options={"collaborative": {"max_cluster_size": 50}})  # doctest: +SKIP
        >>> indexer.fit(data.items, split.train).identifier("i3")  # doctest: +SKIP
        '<c1_2><c2_7><item_3>'
    """

    config_class = HybridIndexerConfig

    def _part_indexers(self) -> list[Indexer]:
        return [
            build_indexer(part, **{"seed": self.config.seed, **self.config.part_options.get(part, {})})
            for part in self.config.parts
        ]

    def _combine(self, item_ids, part_indexes: list[ItemIndex], base: ItemIndex | None = None) -> ItemIndex:
        """The hybrid index of ``item_ids`` from the part indexes (appended to ``base`` when given)."""
        identifiers = [self.config.separator.join(p.identifier(i) for p in part_indexes) for i in item_ids]
        tokens = list(dict.fromkeys(t for p in part_indexes for t in p.new_tokens))  # union, first-seen order
        state = {"parts": [p.to_dict() for p in part_indexes]}
        if base is not None:
            return base.with_items(item_ids, identifiers, new_tokens=tokens, state=state)
        stats = {part: p.stats for part, p in zip(self.config.parts, part_indexes)}
        return self._make_index(item_ids, identifiers, new_tokens=tokens, state=state, stats=stats)

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        part_indexes = [indexer.fit(items, train_sequences) for indexer in self._part_indexers()]
        return self._combine(items["item_id"].astype(str).tolist(), part_indexes)

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        """Extend every part with ``new_items`` (``kwargs`` go to each part's ``extend``)."""
        part_indexes = []
        for indexer, payload in zip(self._part_indexers(), index.state["parts"]):
            payload = {k: v for k, v in payload.items() if k not in ("fingerprint", "format_version")}
            part_indexes.append(indexer.extend(ItemIndex(**payload), new_items, **kwargs))
        return self._combine(new_items["item_id"].astype(str).tolist(), part_indexes, base=index)
