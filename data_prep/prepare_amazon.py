"""Prepare an Amazon reviews category (2014 McAuley or 2018 Ni et al.) with 5-core filtering.

    # local files (the usual way; get them from the dataset pages)
    python data_prep/prepare_amazon.py --version 2014 --reviews reviews_Beauty_5.json.gz \
        --meta meta_Beauty.json.gz --out data/amazon-beauty-2014
    python data_prep/prepare_amazon.py --version 2018 --reviews All_Beauty_5.json.gz \
        --meta meta_All_Beauty.json.gz --out data/amazon-all-beauty-2018
    # download into $GENREC_CACHE (needs internet)
    python data_prep/prepare_amazon.py --version 2014 --category Beauty --out data/amazon-beauty-2014

Users and items with fewer than --k-core reviews are removed, repeatedly, until none is left (TIGER / LC-Rec / P5).
"""

from __future__ import annotations

import argparse

from genrec.data.prepare import prepare_dataset, run_prepare_script


def main(argv: list[str] | None = None) -> dict:
    def prepare(args):
        if args.category:
            return prepare_dataset(f"amazon-{args.category}-{args.version}", k_core=args.k_core)
        return prepare_dataset(args.reviews, fmt=f"amazon-{args.version}", k_core=args.k_core, meta_path=args.meta)

    return run_prepare_script(make_parser(), prepare, argv)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", type=int, choices=[2014, 2018], required=True, help="dataset release")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--reviews", help="reviews file (.json or .json.gz) or a directory holding reviews + meta")
    source.add_argument("--category", help="category to download, e.g. Beauty (2014) or All_Beauty (2018)")
    parser.add_argument("--meta", default=None, help="metadata file; default: meta_<category>.json(.gz) beside it")
    parser.add_argument("--k-core", type=int, default=5, help="k-core threshold (0 disables filtering)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    return parser


if __name__ == "__main__":
    main()
