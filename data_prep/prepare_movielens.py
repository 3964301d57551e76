"""Prepare MovieLens ML-100K or ML-1M as a genrec dataset (items with titles + genres, time-ordered ratings).

    python data_prep/prepare_movielens.py --dataset ml-100k --out data/ml-100k
    python data_prep/prepare_movielens.py --dataset ml-1m --out data/ml-1m
    python data_prep/prepare_movielens.py --path ~/Downloads/ml-1m --out data/ml-1m   # an unzipped official archive

Named datasets are downloaded from GroupLens into $GENREC_CACHE (default ~/.cache/genrec); when that fails, ML-100K
falls back to the copy inside the `recbole==1.2.1` wheel on PyPI. ML-1M needs the GroupLens download (or --path).
"""

from __future__ import annotations

import argparse

from genrec.data.prepare import prepare_dataset, run_prepare_script


def main(argv: list[str] | None = None) -> dict:
    def prepare(args):
        return prepare_dataset(args.path or args.dataset, k_core=args.k_core)

    return run_prepare_script(make_parser(), prepare, argv)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset", choices=["ml-100k", "ml-1m"], help="download (or use the cached copy of) this set"
    )
    source.add_argument("--path", help="directory with the official files (u.data/u.item or ratings.dat/movies.dat)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--k-core", type=int, default=None, help="optional k-core filter (none by default)")
    return parser


if __name__ == "__main__":
    main()
