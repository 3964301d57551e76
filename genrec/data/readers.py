"""Readers that turn public dataset formats into :class:`~genrec.data.InteractionData`.

Every reader reports a malformed row with its file and line number (:class:`~genrec.data.DataError`). Text readers
stream their files line by line (plain or gzip, detected from the content), so large review dumps are read in one
pass without loading the raw text into memory.

The MovieLens, Amazon and table readers keep only catalog items and users with at least one (surviving)
interaction, which is what the published statistics count (e.g. ML-1M: 3,706 rated of the 3,883 listed movies).
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import json
import logging
import re
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from genrec.data.schema import DataError, InteractionData

logger = logging.getLogger(__name__)

# Genre flags of ML-100K's u.item, in column order (the same list as the dataset's u.genre file).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- shared helpers
def _open_text(path: Path, encoding: str):
    """Open a plain or gzip text file; gzip is recognised by its magic bytes, not by the file name."""
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if is_gzip else open
    return opener(path, "rt", encoding=encoding, newline="\n")  # only \n ends a line; a stray \r stays in its field


def _parse_lines(path: str | Path, parse: Callable[[str], object], encoding: str = "utf-8") -> Iterator:
    """Yield ``parse(line)`` for every non-blank line of ``path``, streaming.

    This is the single place where parse failures become errors: any ``ValueError``/``KeyError``/``TypeError``/
    ``SyntaxError`` raised by ``parse`` is re-raised as a :class:`DataError` naming the file and 1-based line number.
    ``parse`` may return ``None`` to skip a line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    line_no = 0
    try:
        with _open_text(path, encoding) as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                try:
                    record = parse(line)
                except (ValueError, KeyError, TypeError, SyntaxError) as err:
                    reason = f"missing field {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
                    raise DataError(f"{path}:{line_no}: {reason} (line: {line[:120]!r})") from err
                if record is not None:
                    yield record
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}:{line_no + 1}: cannot read the file here ({type(err).__name__}: {err})") from err


def _fields(line: str, sep: str, count: int) -> list[str]:
    """Split a delimited line and check the field count (the error message is completed by :func:`_parse_lines`)."""
    parts = line.split(sep)
    if len(parts) != count:
        raise ValueError(f"expected {count} {sep!r}-separated fields, found {len(parts)}")
    return parts


def _int_id(value: str) -> str:
    """Validate an integer id and return its canonical string ("007" and "7" are the same MovieLens id)."""
    return str(int(value))


def _flatten(value) -> list[str]:
    """Metadata values are strings, lists, or lists of lists (Amazon 2014 categories): return the non-empty strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _flatten(v)]
    text = html.unescape(str(value)).strip()
    return [text] if text else []


def k_core_filter(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Keep interactions whose user and item both have at least ``k`` of them, repeated until stable.

    Each round is one vectorised counting pass (``np.bincount`` over factorised ids), so the cost is
    O(rows × rounds); rows keep their original order. Raises :class:`DataError` if nothing survives.

    Example:
        >>> df = pd.DataFrame({"user_id": list("aabbc"), "item_id": list("xyxyx"), "timestamp": range(5)})
        >>> k_core_filter(df, 2)["user_id"].tolist()  # c has one interaction
        ['a', 'a', 'b', 'b']
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    users, user_index = pd.factorize(interactions["user_id"])
    items, item_index = pd.factorize(interactions["item_id"])
    keep = np.ones(len(interactions), dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        user_counts = np.bincount(users[keep], minlength=len(user_index))
        item_counts = np.bincount(items[keep], minlength=len(item_index))
        new_keep = keep & (user_counts[users] >= k) & (item_counts[items] >= k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise DataError(
            f"no interaction survives {k}-core filtering ({len(interactions)} interactions, "
            f"{len(user_index)} users, {len(item_index)} items)"
        )
    result = interactions[keep]
    logger.info(
        "%d-core filtering (%d rounds): %d → %d interactions, %d → %d users, %d → %d items", k, rounds,
        len(interactions), len(result), len(user_index), result["user_id"].nunique(), len(item_index),
        result["item_id"].nunique(),
    )  # fmt: skip
    return result.reset_index(drop=True)


def _assemble(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    name: str,
    source: str | Path,
    k_core: int | None = None,
) -> InteractionData:
    """Shared last step of every reader: optional k-core, drop items/users without interactions, build the schema."""
    if len(interactions) == 0:
        raise DataError(f"{source}: no interactions found")
    if k_core:
        interactions = k_core_filter(interactions, k_core)
    seen_items = pd.Index(interactions["item_id"].unique())
    if items is None:
        items = pd.DataFrame({"item_id": seen_items, "title": ""})
    unused = ~items["item_id"].isin(seen_items)
    if unused.any():
        logger.info("%s: dropping %d catalog item(s) without interactions", name, int(unused.sum()))
        items = items[~unused]
    if users is not None:
        users = users[users["user_id"].isin(pd.Index(interactions["user_id"].unique()))]
    return InteractionData(interactions, items, users, name=name, meta={"source": str(source), "k_core": k_core})


def apply_k_core(data: InteractionData, k: int) -> InteractionData:
    """k-core filter an already built dataset; items and users left without interactions leave the catalog too."""
    source = data.meta.get("source", data.name)
    filtered = _assemble(data.interactions, data.items, data.users, name=data.name, source=source, k_core=k)
    filtered.meta = {**data.meta, "k_core": k}
    return filtered


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


# ---------------------------------------------------------------------------------------------- MovieLens
def _movielens_rating(sep: str) -> Callable[[str], tuple]:
    """Parser of one rating line ``user SEP item SEP rating SEP timestamp`` (ML-100K u.data, ML-1M/10M ratings.dat)."""

    def parse(line: str) -> tuple:
        user, item, rating, timestamp = _fields(line, sep, 4)
        return _int_id(user), _int_id(item), float(rating), int(timestamp)

    return parse


def _read_movielens_ratings(path: Path, sep: str) -> pd.DataFrame:
    rows = list(tqdm(_parse_lines(path, _movielens_rating(sep), "latin-1"), desc=f"read {path.name}", unit=" lines"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _ml100k_item(line: str) -> tuple:
    parts = _fields(line, "|", 5 + len(ML100K_GENRES))
    flags = parts[5:]
    if any(flag not in ("0", "1") for flag in flags):
        raise ValueError(f"genre flags must be 0/1, found {flags}")
    genres = ", ".join(genre for genre, flag in zip(ML100K_GENRES, flags) if flag == "1")
    return _int_id(parts[0]), parts[1].strip(), parts[2].strip(), genres


def _ml100k_user(line: str) -> tuple:
    user, age, gender, occupation, zip_code = _fields(line, "|", 5)
    return _int_id(user), int(age), gender, occupation, zip_code


def read_movielens_100k_raw(directory: str | Path) -> InteractionData:
    """Read the official ML-100K files: ``u.data`` (tab: user, item, rating, timestamp), ``u.item`` (``|``, latin-1:
    id, title, release date, video release date, IMDb URL, 19 genre flags → a ``genres`` text column) and, when
    present, ``u.user``.

    Example:
        >>> data = read_movielens_100k_raw("ml-100k")  # doctest: +SKIP
        >>> data.stats()["interactions"]  # doctest: +SKIP
        100000
    """
    directory = Path(directory)
    interactions = _read_movielens_ratings(directory / "u.data", "\t")
    items = pd.DataFrame(
        list(_parse_lines(directory / "u.item", _ml100k_item, "latin-1")),
        columns=["item_id", "title", "release_date", "genres"],
    )
    users = None
    if (directory / "u.user").is_file():
        rows = list(_parse_lines(directory / "u.user", _ml100k_user, "latin-1"))
        users = pd.DataFrame(rows, columns=["user_id", "age", "gender", "occupation", "zip_code"])
    return _assemble(interactions, items, users, name="ml-100k", source=directory)


def _ml1m_movie(line: str) -> tuple:
    item, title, genres = _fields(line, "::", 3)
    return _int_id(item), title.strip(), ", ".join(g for g in genres.split("|") if g)


def _ml1m_user(line: str) -> tuple:
    user, gender, age, occupation, zip_code = _fields(line, "::", 5)
    return _int_id(user), gender, int(age), int(occupation), zip_code


def read_movielens_1m(directory: str | Path) -> InteractionData:
    """Read the official ML-1M layout: ``ratings.dat``, ``movies.dat`` (``::`` separated, latin-1; title + genres)
    and, when present, ``users.dat``. ML-10M (``ratings.dat`` + ``movies.dat``, no users) reads the same way.

    Example:
        >>> data = read_movielens_1m("ml-1m")  # doctest: +SKIP
        >>> data.num_users, data.num_items  # doctest: +SKIP
        (6040, 3706)
    """
    directory = Path(directory)
    interactions = _read_movielens_ratings(directory / "ratings.dat", "::")
    items = pd.DataFrame(list(_parse_lines(directory / "movies.dat", _ml1m_movie, "latin-1")),
                         columns=["item_id", "title", "genres"])  # fmt: skip
    users = None
    if (directory / "users.dat").is_file():
        rows = list(_parse_lines(directory / "users.dat", _ml1m_user, "latin-1"))
        users = pd.DataFrame(rows, columns=["user_id", "gender", "age", "occupation", "zip_code"])
    return _assemble(interactions, items, users, name=directory.name or "ml-1m", source=directory)


# ---------------------------------------------------------------------------------------------- Amazon reviews
# Cheap pre-check of a metadata line's asin, so lines of items removed by k-core filtering are never fully parsed.
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")


def _amazon_review(line: str) -> tuple:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise TypeError(f"expected a JSON object, found {type(record).__name__}")
    rating = record.get("overall")
    return (
        record["reviewerID"],
        record["asin"],
        int(record["unixReviewTime"]),
        float("nan" if rating is None else rating),
    )


def _read_amazon_reviews(path: Path) -> pd.DataFrame:
    """Stream review lines into compact columns (interned id strings, typed arrays) instead of one dict per line."""
    users, items, times, ratings = [], [], array("q"), array("d")
    for user, item, timestamp, rating in tqdm(_parse_lines(path, _amazon_review), desc=f"read {path.name}",
                                              unit=" reviews"):  # fmt: skip
        users.append(sys.intern(str(user)))
        items.append(sys.intern(str(item)))
        times.append(timestamp)
        ratings.append(rating)
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.asarray(times, dtype=np.int64),
                         "rating": np.asarray(ratings, dtype=np.float64)})  # fmt: skip


def _amazon_meta_parser(decode: Callable[[str], object], category_field: str, keep: set[str]) -> Callable:
    def parse(line: str) -> tuple | None:
        match = _ASIN.search(line)
        if match and match.group(1) not in keep:
            return None
        record = decode(line)
        if not isinstance(record, dict):
            raise TypeError(f"expected a record with an 'asin' field, found {type(record).__name__}")
        if record["asin"] not in keep:
            return None
        return (
            record["asin"],
            " ".join(_flatten(record.get("title"))),
            ", ".join(dict.fromkeys(_flatten(record.get(category_field)))),  # unique names, first-seen order
            " ".join(_flatten(record.get("brand"))),
            " ".join(_flatten(record.get("description"))),
        )

    return parse


def _amazon_name(reviews_path: Path, version: int) -> str:
    """``reviews_Beauty_5.json.gz`` (2014) / ``Beauty_5.json.gz`` (2018) → ``amazon-beauty-<version>``."""
    stem = reviews_path.name.split(".")[0].removeprefix("reviews_").removesuffix("_5")
    return f"amazon-{stem.lower().replace('_', '-')}-{version}"


def _read_amazon(reviews_path, meta_path, version: int, k_core: int | None, drop_duplicates: bool, name: str | None):
    reviews_path = Path(reviews_path)
    interactions = _read_amazon_reviews(reviews_path)
    if drop_duplicates:
        duplicated = interactions.duplicated(["user_id", "item_id", "timestamp"])
        if duplicated.any():
            logger.info("%s: dropping %d exact duplicate review(s)", reviews_path, int(duplicated.sum()))
            interactions = interactions[~duplicated]
    if k_core and len(interactions):
        interactions = k_core_filter(interactions, k_core)
    items = None
    if meta_path is not None:
        decode, category_field = (ast.literal_eval, "categories") if version == 2014 else (json.loads, "category")
        parse = _amazon_meta_parser(decode, category_field, set(interactions["item_id"].unique()))
        rows = tqdm(_parse_lines(meta_path, parse), desc=f"read {Path(meta_path).name}", unit=" items")
        items = pd.DataFrame(list(rows), columns=["item_id", "title", "categories", "brand", "description"])
        items = items.drop_duplicates("item_id", keep="first")
    # k-core is already applied above (before the metadata pass), so _assemble does not filter again.
    data = _assemble(interactions, items, None, name=name or _amazon_name(reviews_path, version), source=reviews_path)
    data.meta["k_core"] = k_core
    return data


def read_amazon_2014(
    reviews_path: str | Path,
    meta_path: str | Path | None = None,
    k_core: int | None = 5,
    drop_duplicates: bool = True,
    name: str | None = None,
) -> InteractionData:
    """Read an Amazon 2014 (McAuley) category: ``reviews_X_5.json.gz`` + ``meta_X.json.gz``.

    Reviews are JSON lines (``reviewerID``, ``asin``, ``unixReviewTime``, ``overall``); metadata lines are Python
    literals (parsed with ``ast.literal_eval``, never ``eval``) with ``asin``, ``title``, ``categories`` (list of
    category paths), ``brand``, ``description``. Gzip or plain files.

    Args:
        k_core (`int`, *optional*, defaults to 5): users and items with at least this many interactions, repeated
            until stable (the TIGER / LC-Rec / P5 setting); ``None`` keeps everything.
        drop_duplicates (`bool`, defaults to `True`): drop exact repeats of (user, item, time); the dumps have some.
        name (`str`, *optional*): dataset name; defaults to ``amazon-<category>-2014`` from the file name.

    Example:
        >>> data = read_amazon_2014("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz")  # doctest: +SKIP
        >>> data.num_users, data.num_items  # doctest: +SKIP
        (22363, 12101)
    """
    return _read_amazon(reviews_path, meta_path, 2014, k_core, drop_duplicates, name)


def read_amazon_2018(
    reviews_path: str | Path,
    meta_path: str | Path | None = None,
    k_core: int | None = 5,
    drop_duplicates: bool = True,
    name: str | None = None,
) -> InteractionData:
    """Read an Amazon 2018 (Ni et al.) category: ``X_5.json.gz`` (or the full ``X.json.gz``) + ``meta_X.json.gz``.

    Both files are JSON lines: reviews with ``reviewerID``, ``asin``, ``unixReviewTime``, ``overall``; metadata with
    ``asin``, ``title``, ``category`` (one path), ``brand``, ``description`` (list of paragraphs). Arguments as in
    :func:`read_amazon_2014`; the default name is ``amazon-<category>-2018``.

    Example:
        >>> data = read_amazon_2018("All_Beauty_5.json.gz", "meta_All_Beauty.json.gz")  # doctest: +SKIP
    """
    return _read_amazon(reviews_path, meta_path, 2018, k_core, drop_duplicates, name)


# ---------------------------------------------------------------------------------------------- generic tables
TABLE_COLUMNS = {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}


def _read_frame(path: str | Path, sep: str | None) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """Read a CSV/TSV (optionally compressed) or parquet file as strings, plus a function giving a row's location."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSION_SUFFIXES]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        return frame.reset_index(drop=True), lambda row: f"{path} row {row + 1}"
    sep = sep or ("\t" if ext in (".tsv", ".tab", ".txt") else ",")
    try:
        # Blank lines are kept as empty rows (then dropped) so that row i is line i + 2 (1-based, after the header).
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot parse as {sep!r}-separated text: {err}") from err
    lines = frame.index.to_numpy() + 2
    blank = frame.isna().all(axis=1).to_numpy()
    frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    return frame, lambda row: f"{path}:{lines[row]}"


def _select(frame: pd.DataFrame, mapping: dict[str, str], path, keep_others: bool = False) -> pd.DataFrame:
    """Rename source columns to genrec names (``mapping`` is genrec name → source column); unmapped ones dropped."""
    missing = [source for source in mapping.values() if source not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)} (map them explicitly)")
    renamed = frame.rename(columns={source: target for target, source in mapping.items()})
    return renamed if keep_others else renamed[list(mapping)]


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _to_timestamp(values: pd.Series, where: Callable[[int], str]) -> pd.Series:
    """Numbers stay numbers (seconds or any monotone unit); date strings become Unix seconds."""
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any():
        return numeric.astype("int64")
    dates = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = numeric.isna().to_numpy() & dates.isna().to_numpy()
    if bad.any():
        row = _first_bad(bad)
        raise DataError(f"{where(row)}: timestamp {values.iloc[row]!r} is neither a number nor a date")
    return (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def read_table(
    path: str | Path,
    columns: dict[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: dict[str, str] | None = None,
    sep: str | None = None,
    name: str | None = None,
) -> InteractionData:
    """Read interactions from a CSV / TSV / parquet file with a column mapping (genrec name → column in the file).

    Args:
        path (`str`): interactions file; ``.csv`` is comma-, ``.tsv``/``.txt`` tab-separated (override with ``sep``),
            ``.parquet`` is read with pyarrow; ``.gz``/``.bz2``/... compression is allowed for text.
        columns (`dict`, *optional*, defaults to ``TABLE_COLUMNS``): needs ``user_id`` and ``item_id``; ``timestamp``
            (numbers or date strings; when absent, file order is used as time) and ``rating`` are optional.
        items_path (`str`, *optional*): item table; without ``item_columns`` every column is kept and the item id
            column is the one named by ``columns["item_id"]`` (or ``item_id``).
        item_columns (`dict`, *optional*): genrec name → column of the item file, e.g.
            ``{"item_id": "movieId", "title": "title", "genres": "genres"}``; only the mapped columns are kept.
        name (`str`, *optional*): dataset name, defaults to the file's stem.

    Example:
        >>> data = read_table("ratings.csv", columns={"user_id": "userId", "item_id": "movieId",
        ...     "timestamp": "timestamp", "rating": "rating"}, items_path="movies.csv",
        ...     item_columns={"item_id": "movieId", "title": "title", "genres": "genres"})  # doctest: +SKIP
    """
    path = Path(path)
    columns = dict(TABLE_COLUMNS if columns is None else columns)
    for required in ("user_id", "item_id"):
        if not columns.get(required):
            raise DataError(f"columns must map {required!r} to a column of {path}; got {columns}")
    if not columns.get("timestamp"):
        logger.warning("%s: no timestamp column mapped; using file order as time", path)
        columns.pop("timestamp", None)
    frame, where = _read_frame(path, sep)
    interactions = _select(frame, columns, path)
    for column in ("user_id", "item_id"):
        empty = (
            interactions[column].isna().to_numpy() | (interactions[column].astype(str).str.strip() == "").to_numpy()
        )
        if empty.any():
            raise DataError(f"{where(_first_bad(empty))}: empty {column} (column {columns[column]!r})")
        interactions[column] = interactions[column].astype(str)
    if "timestamp" in interactions:
        interactions["timestamp"] = _to_timestamp(interactions["timestamp"], where)
    else:
        interactions["timestamp"] = np.arange(len(interactions), dtype=np.int64)
    if "rating" in interactions:
        ratings = pd.to_numeric(interactions["rating"], errors="coerce")
        bad = ratings.isna().to_numpy() & interactions["rating"].notna().to_numpy()
        if bad.any():
            raise DataError(
                f"{where(_first_bad(bad))}: rating {interactions['rating'].iloc[_first_bad(bad)]!r} is not a number"
            )
        interactions["rating"] = ratings

    items = None
    if items_path is not None:
        item_frame, item_where = _read_frame(items_path, sep)
        if item_columns is None:
            id_column = columns["item_id"] if columns["item_id"] in item_frame.columns else "item_id"
            items = _select(item_frame, {"item_id": id_column}, items_path, keep_others=True)
        else:
            if "item_id" not in item_columns:
                raise DataError(f"item_columns must map 'item_id' to a column of {items_path}; got {item_columns}")
            items = _select(item_frame, dict(item_columns), items_path)
        empty = items["item_id"].isna().to_numpy()
        if empty.any():
            raise DataError(f"{item_where(_first_bad(empty))}: empty item_id")
        items["item_id"] = items["item_id"].astype(str)
        text = [c for c in items.columns if c != "item_id" and not pd.api.types.is_numeric_dtype(items[c])]
        items[text] = items[text].fillna("")
    return _assemble(interactions, items, None, name=name or path.name.split(".")[0], source=path)
