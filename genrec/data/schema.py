"""The one data schema every genrec component reads: items, users and time-ordered interactions.

On disk a prepared dataset is a directory with ``items.parquet``, ``interactions.parquet``, ``users.parquet``
and ``meta.json``. Item and user ids are strings everywhere in the public surface.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from genrec.utils import atomic_directory

logger = logging.getLogger(__name__)

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
SCHEMA_VERSION = 1


class DataError(ValueError):
    """Raised for input data that cannot be turned into the genrec schema (with the reason and location)."""


DATASET_KIND = "dataset"


def is_prepared_dataset(path: Path) -> bool:
    """A directory written by :meth:`InteractionData.save` before outputs carried a manifest."""
    return (path / "meta.json").is_file() and (path / "interactions.parquet").is_file()


@dataclass
class InteractionData:
    """A prepared dataset.

    Args:
        interactions (`pd.DataFrame`): columns ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int64), optional
            ``rating``. Kept sorted by user, then timestamp, ties in original file order (stable sort).
        items (`pd.DataFrame`): one row per catalog item: ``item_id`` (str, unique), ``title`` (str) and any other
            text/category columns the source has.
        users (`pd.DataFrame`, *optional*): ``user_id`` plus whatever user features the source has.
        name (`str`): dataset name recorded in ``meta.json``.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.interactions, self.items, self.users = _normalise(self.interactions, self.items, self.users)

    # ------------------------------------------------------------------ views
    @property
    def num_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def num_items(self) -> int:
        return len(self.items)

    def stats(self) -> dict:
        n_inter = len(self.interactions)
        per_user = self.interactions.groupby("user_id", sort=False).size()
        return {
            "name": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "interactions": n_inter,
            "density": n_inter / max(1, self.num_users * self.num_items),
            "avg_per_user": float(per_user.mean()) if n_inter else 0.0,
            "min_per_user": int(per_user.min()) if n_inter else 0,
        }

    def sequences(self) -> tuple[list[str], list[list[str]]]:
        """Per-user item sequences in time order: ``(user_ids, sequences)``, users in sorted id order."""
        grouped = self.interactions.groupby("user_id", sort=False)["item_id"].agg(list)
        return grouped.index.tolist(), grouped.tolist()

    def titles(self) -> dict[str, str]:
        return dict(zip(self.items["item_id"], self.items["title"]))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the dataset atomically: a failed write leaves no directory that :meth:`load` would accept.

        ``path`` may be a previous prepared dataset (replaced) but not a directory holding anything else, unless
        ``overwrite`` (``genrec prepare --overwrite``): user files are never deleted by default.
        """
        path = Path(path)
        with atomic_directory(path, DATASET_KIND, overwrite, is_prepared_dataset) as tmp:
            self.interactions.to_parquet(tmp / "interactions.parquet", index=False)
            self.items.to_parquet(tmp / "items.parquet", index=False)
            if self.users is not None:
                self.users.to_parquet(tmp / "users.parquet", index=False)
            meta = {**self.meta, "name": self.name, "schema_version": SCHEMA_VERSION, "stats": self.stats()}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> InteractionData:
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a prepared genrec dataset (no meta.json). "
                f"Create one with `genrec prepare NAME --out {path}`."
            )
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except ValueError as err:
            raise DataError(f"{path / 'meta.json'} is not valid JSON ({err}); prepare the dataset again") from None
        if not isinstance(meta, dict):
            raise DataError(f"{path / 'meta.json'} is not a JSON object; prepare the dataset again")
        users = _read_parquet(path / "users.parquet") if (path / "users.parquet").is_file() else None
        return cls(
            interactions=_read_parquet(path / "interactions.parquet"),
            items=_read_parquet(path / "items.parquet"),
            users=users,
            name=meta.get("name", path.name),
            meta={k: v for k, v in meta.items() if k not in ("name", "stats", "schema_version")},
        )


def _read_parquet(path: Path) -> pd.DataFrame:
    """``pd.read_parquet`` with an error that names the file (pyarrow's does not always)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the dataset directory is incomplete, prepare it again")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read as parquet ({err}); prepare the dataset again") from None


def _normalise(interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None):
    """Validate columns and types, sort interactions, and make sure every interacted item is in the catalog."""
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise DataError(f"interactions are missing column(s) {missing}; found {list(interactions.columns)}")
    if "item_id" not in items.columns:
        raise DataError(f"items are missing column 'item_id'; found {list(items.columns)}")
    if len(interactions) == 0:
        raise DataError("the dataset has no interactions")

    interactions = interactions.copy()
    interactions["user_id"] = interactions["user_id"].astype(str)
    interactions["item_id"] = interactions["item_id"].astype(str)
    interactions["timestamp"] = pd.to_numeric(interactions["timestamp"], errors="raise").astype("int64")
    # Stable sort: ties keep the original file order (BENCHMARK.md).
    interactions = interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)

    items = items.copy()
    items["item_id"] = items["item_id"].astype(str)
    if "title" not in items.columns:
        items["title"] = ""
    items["title"] = items["title"].fillna("").astype(str)
    duplicated = items["item_id"][items["item_id"].duplicated()]
    if len(duplicated):
        raise DataError(f"duplicate item ids in the item table, e.g. {duplicated.iloc[:5].tolist()}")
    unknown = pd.Index(interactions["item_id"].unique()).difference(pd.Index(items["item_id"]))
    if len(unknown):
        logger.warning("%d interacted items have no metadata row; adding them with an empty title", len(unknown))
        items = pd.concat([items, pd.DataFrame({"item_id": list(unknown), "title": ""})], ignore_index=True)
    items = items.reset_index(drop=True)

    if users is not None:
        users = users.copy()
        if "user_id" not in users.columns:
            raise DataError(f"users are missing column 'user_id'; found {list(users.columns)}")
        users["user_id"] = users["user_id"].astype(str)
        users = users.reset_index(drop=True)
    return interactions, items, users
