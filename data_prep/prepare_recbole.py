"""Prepare a dataset in RecBole's atomic format (NAME.inter + optional NAME.item / NAME.user, tab separated).

    python data_prep/prepare_recbole.py --path path/to/ml-100k --out data/ml-100k-recbole
    python data_prep/prepare_recbole.py --path path/to/datasets --atomic-name amazon-beauty --out data/beauty

The item title is taken from the first of `title`, `movie_title`, `item_name`; other item columns are kept.
"""

from __future__ import annotations

import argparse

from genrec.data.prepare import prepare_dataset, run_prepare_script


def main(argv: list[str] | None = None) -> dict:
    def prepare(args):
        return prepare_dataset(args.path, fmt="recbole", k_core=args.k_core, atomic_name=args.atomic_name)

    return run_prepare_script(make_parser(), prepare, argv)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True, help="directory with NAME.inter (or the .inter file itself)")
    parser.add_argument("--atomic-name", default=None, help="NAME of NAME.inter when the directory holds several")
    parser.add_argument("--k-core", type=int, default=None, help="optional k-core filter (none by default)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    return parser


if __name__ == "__main__":
    main()
