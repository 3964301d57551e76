"""Readers that turn public dataset formats into :class:`~genrec.data.InteractionData`.

Every reader reports a malformed row with its file and line number (:class:`~genrec.data.DataError`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from genrec.data.schema import DataError, InteractionData

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- RecBole atomic
def _read_atomic_table(path: Path) -> pd.DataFrame:
    """Read one RecBole atomic file (``name:type`` header, tab separated) into strings, checking field counts."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file (expected a `name:type` header line)") from None
        names = [h.split(":", 1)[0] for h in header]
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise DataError(f"{path}:{line_no}: expected {len(names)} tab-separated fields, found {len(row)}")
            rows.append(row)
    return pd.DataFrame(rows, columns=names, dtype=str)


def read_recbole_atomic(directory: str | Path, name: str | None = None) -> InteractionData:
    """Read ``NAME.inter`` (+ optional ``NAME.item`` / ``NAME.user``) in RecBole's atomic format.

    The item title is taken from the first of ``title``, ``movie_title``, ``item_name`` present.
    """
    directory = Path(directory)
    name = name or directory.name
    inter_path = directory / f"{name}.inter"
    if not inter_path.is_file():
        raise DataError(f"{inter_path} not found (RecBole atomic data needs NAME.inter)")
    inter = _read_atomic_table(inter_path)
    for column in ("user_id", "item_id"):
        if column not in inter.columns:
            raise DataError(f"{inter_path}: missing column {column!r}; found {list(inter.columns)}")
    if "timestamp" not in inter.columns:
        logger.warning("%s has no timestamp column; using file order as time", inter_path)
        inter["timestamp"] = range(len(inter))
    try:
        inter["timestamp"] = pd.to_numeric(inter["timestamp"]).astype("int64")
    except ValueError as err:
        bad = pd.to_numeric(inter["timestamp"], errors="coerce").isna().to_numpy().nonzero()[0][0]
        raise DataError(f"{inter_path}:{bad + 2}: timestamp is not a number ({inter['timestamp'][bad]!r})") from err
    if "rating" in inter.columns:
        inter["rating"] = pd.to_numeric(inter["rating"], errors="coerce")

    item_path = directory / f"{name}.item"
    if item_path.is_file():
        items = _read_atomic_table(item_path)
        title_col = next((c for c in ("title", "movie_title", "item_name") if c in items.columns), None)
        items = items.rename(columns={title_col: "title"}) if title_col else items.assign(title="")
    else:
        items = pd.DataFrame({"item_id": inter["item_id"].unique(), "title": ""})
    user_path = directory / f"{name}.user"
    users = _read_atomic_table(user_path) if user_path.is_file() else None
    return InteractionData(inter, items, users, name=name)
