"""The Indexer protocol, the ItemIndex it produces, and the registry of indexing methods.

An :class:`ItemIndex` maps every catalog item to an identifier *string* (new tokens such as ``<a_12><b_3>``, or
plain text such as a number or a title). Decoding works on the tokenizer's ids of those strings, so every method is
decoded by the same trie. Indexes are data: deterministic for a seed, saved as one JSON file with a fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from genrec.utils import atomic_write_json, check_output_file

logger = logging.getLogger(__name__)

INDEX_FORMAT_VERSION = 1


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows (no signal) stay zero."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def identifier_tokens(identifier: str) -> list[tuple[str, int]]:
    """``"<a_12><b_3>"`` → ``[("a", 12), ("b", 3)]``: the (vocabulary, code) of each new token of an identifier.

    New identifier tokens are spelled ``<NAME_CODE>`` (``<a_12>`` semantic level a, ``<cf_3>`` a SETRec CF token,
    ``<s1_7>`` a set position); text outside such tokens is ignored.
    """
    return [(name, int(code)) for name, code in _IDENTIFIER_TOKEN.findall(identifier)]


_IDENTIFIER_TOKEN = re.compile(r"<([a-z]+\d*)_(\d+)>")


class ItemIndexError(ValueError):
    """Raised for an index that is inconsistent (duplicate ids/identifiers) or used with the wrong model."""


def is_index_file(path: Path) -> bool:
    """Whether ``path`` holds a saved item index (what ``ItemIndex.save`` may replace without ``overwrite``)."""
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and {"method", "item_ids", "identifiers", "fingerprint"} <= set(payload)


@dataclass
class ItemIndex:
    """Item id ↔ identifier mapping produced by an :class:`Indexer`.

    Args:
        method (`str`): registered indexer name.
        item_ids (`list[str]`): catalog item ids, in index order.
        identifiers (`list[str]`): identifier string of each item (unique).
        new_tokens (`list[str]`): tokens the identifiers need added to a tokenizer (empty for plain-text ids).
        options (`dict`): the indexer config that produced this index (JSON-serialisable).
        state (`dict`): what the method needs to add new items later without refitting (e.g. codebooks).
        stats (`dict`): diagnostics measured while fitting (codebook utilisation, collision rate, ...).
    """

    method: str
    item_ids: list[str]
    identifiers: list[str]
    new_tokens: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.item_ids) != len(self.identifiers):
            raise ItemIndexError(f"{len(self.item_ids)} item ids but {len(self.identifiers)} identifiers")
        self._by_item = {item: ident for item, ident in zip(self.item_ids, self.identifiers)}
        self._position = {item: i for i, item in enumerate(self.item_ids)}
        if len(self._by_item) != len(self.item_ids):
            raise ItemIndexError(f"duplicate item ids in the index: {_first_duplicates(self.item_ids)}")
        self._by_identifier = {ident: item for item, ident in zip(self.item_ids, self.identifiers)}
        if len(self._by_identifier) != len(self.identifiers):
            raise ItemIndexError(
                f"two items share an identifier (collision): {_first_duplicates(self.identifiers)}; "
                "identifiers must be unique for decoding to map back to one item"
            )

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._by_item

    def identifier(self, item_id: str) -> str:
        try:
            return self._by_item[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in this {self.method} index ({len(self)} items)") from None

    def position(self, item_id: str) -> int:
        """The item's place in index order (its row in the trie, the set head and ranking outputs)."""
        try:
            return self._position[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in this {self.method} index ({len(self)} items)") from None

    def item_id(self, identifier: str) -> str | None:
        """The item with this identifier, or ``None`` if the identifier names no item."""
        return self._by_identifier.get(identifier)

    @property
    def fingerprint(self) -> str:
        """Hash of method + mapping: a model trained on one index refuses to load with another."""
        h = hashlib.sha256(self.method.encode())
        for item, ident in zip(self.item_ids, self.identifiers):
            h.update(b"\x00" + item.encode() + b"\x01" + ident.encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "format_version": INDEX_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        }

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the index as one JSON file, atomically. An existing file is replaced only if it is an item index
        (or empty), unless ``overwrite`` (``genrec index --overwrite``)."""
        path = Path(path)
        check_output_file(path, "item index", is_index_file, overwrite)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ItemIndex:
        """Read an index file; every failure names the file (a truncated or foreign file is not a bare JSON error)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"item index {path} not found")
        try:
            with open(path, encoding="utf-8") as f:
                payload = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise ItemIndexError(f"{path} is not a valid item index file: not valid JSON ({err})") from None
        if not isinstance(payload, dict) or not {"method", "item_ids", "identifiers"} <= set(payload):
            raise ItemIndexError(f"{path} is not an item index file (no method/item_ids/identifiers)")
        expected = payload.pop("fingerprint", None)
        payload.pop("format_version", None)
        try:
            index = cls(**payload)
        except TypeError as err:
            raise ItemIndexError(f"{path} is not a valid item index file ({err})") from None
        except ItemIndexError as err:
            raise ItemIndexError(f"{path}: {err}") from None
        if expected is not None and expected != index.fingerprint:
            raise ItemIndexError(
                f"{path}: stored fingerprint {expected} does not match its content {index.fingerprint}"
            )
        return index

    # ------------------------------------------------------------------ cold start
    def with_items(self, item_ids, identifiers, new_tokens=None, state=None) -> ItemIndex:
        """A copy with ``item_ids`` appended under ``identifiers`` (used by indexers' ``extend``)."""
        return ItemIndex(
            method=self.method,
            item_ids=self.item_ids + [str(i) for i in item_ids],
            identifiers=self.identifiers + list(identifiers),
            new_tokens=self.new_tokens if new_tokens is None else list(new_tokens),
            options=self.options,
            state=self.state if state is None else state,
            stats=self.stats,
        )

    def add_items(self, items: pd.DataFrame, **kwargs) -> ItemIndex:
        """Return a new index that also covers ``items`` (a frame with ``item_id`` and text columns).

        Existing identifiers are unchanged; new items get unique identifiers consistent with the method.
        """
        new = items[~items["item_id"].astype(str).isin(self._by_item)]
        if len(new) < len(items):
            logger.warning(
                "%d of the items are already in the index; keeping their identifiers", len(items) - len(new)
            )
        if len(new) == 0:
            return self
        indexer = build_indexer(self.method, **self.options)
        return indexer.extend(self, new.reset_index(drop=True), **kwargs)


def _first_duplicates(values: list[str], limit: int = 5) -> list[str]:
    seen, dups = set(), []
    for v in values:
        if v in seen and v not in dups:
            dups.append(v)
            if len(dups) == limit:
                break
        seen.add(v)
    return dups


@dataclass
class IndexerConfig:
    """Options shared by every indexer. Subclasses add method-specific fields."""

    seed: int = field(default=0, metadata={"help": "Random seed; the same seed gives the same index."})


class Indexer(ABC):
    """Fits an :class:`ItemIndex` on a catalog and the training sequences (never validation/test items)."""

    name: ClassVar[str]
    config_class: ClassVar[type[IndexerConfig]] = IndexerConfig

    def __init__(self, config: IndexerConfig):
        self.config = config

    @abstractmethod
    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        """Build the index for every item of ``items`` (the whole catalog), using training interactions only."""

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, **kwargs) -> ItemIndex:
        """Add ``new_items`` to ``index`` without refitting (cold start)."""
        raise ItemIndexError(f"the {self.name} indexer cannot add items without refitting")

    def _make_index(self, item_ids, identifiers, new_tokens=(), state=None, stats=None) -> ItemIndex:
        return ItemIndex(
            method=self.name,
            item_ids=[str(i) for i in item_ids],
            identifiers=list(identifiers),
            new_tokens=list(new_tokens),
            options=dataclasses.asdict(self.config),
            state=state or {},
            stats=stats or {},
        )


INDEXERS: dict[str, type[Indexer]] = {}


def register_indexer(name: str):
    """Class decorator: make an :class:`Indexer` subclass available to :func:`build_indexer` under ``name``."""

    def decorator(cls: type[Indexer]) -> type[Indexer]:
        if name in INDEXERS:
            raise ValueError(f"indexer {name!r} is already registered")
        cls.name = name
        INDEXERS[name] = cls
        return cls

    return decorator


def build_indexer(method: str, **options: Any) -> Indexer:
    """Create the indexer registered as ``method`` with its config built from ``options``.

    Example:
        >>> indexer = build_indexer("sequential", seed=0)
        >>> index = indexer.fit(data.items, split.train)  # doctest: +SKIP
    """
    try:
        cls = INDEXERS[method]
    except KeyError:
        raise ValueError(f"unknown indexing method {method!r}; available: {sorted(INDEXERS)}") from None
    valid = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for the {method!r} indexer; valid options: {sorted(valid)}")
    return cls(cls.config_class(**options))
