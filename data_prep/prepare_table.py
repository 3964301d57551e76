"""Prepare any interaction table (CSV, TSV or parquet) with a column mapping, plus an optional item table.

    python data_prep/prepare_table.py --interactions ratings.csv --user-col userId --item-col movieId \
        --time-col timestamp --rating-col rating --items movies.csv --item-id-col movieId --title-col title \
        --item-text-cols genres --out data/ml-latest-small

Timestamps may be numbers or date strings; without --time-col, file order is the time order.
"""

from __future__ import annotations

import argparse

from genrec.data.prepare import prepare_dataset, run_prepare_script


def main(argv: list[str] | None = None) -> dict:
    return run_prepare_script(make_parser(), _prepare, argv)


def _prepare(args):
    columns = {"user_id": args.user_col, "item_id": args.item_col, "timestamp": args.time_col}
    if args.rating_col:
        columns["rating"] = args.rating_col
    item_columns = None
    if args.items and (args.item_id_col or args.title_col or args.item_text_cols):  # else: keep every column
        item_columns = {"item_id": args.item_id_col or args.item_col}
        if args.title_col:
            item_columns["title"] = args.title_col
        item_columns.update({name: name for name in args.item_text_cols})
    return prepare_dataset(
        args.interactions,
        fmt="table",
        k_core=args.k_core,
        name=args.name,
        columns=columns,
        items_path=args.items,
        item_columns=item_columns,
        sep=args.sep,
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", required=True, help="interaction file (.csv, .tsv, .txt, .parquet)")
    parser.add_argument("--user-col", default="user_id", help="user id column")
    parser.add_argument("--item-col", default="item_id", help="item id column")
    parser.add_argument("--time-col", default=None, help="timestamp column (numbers or dates); default: file order")
    parser.add_argument("--rating-col", default=None, help="optional rating column (kept, not used for ranking)")
    parser.add_argument("--items", default=None, help="optional item table (same formats)")
    parser.add_argument("--item-id-col", default=None, help="item id column of --items (default: --item-col)")
    parser.add_argument("--title-col", default=None, help="title column of --items")
    parser.add_argument(
        "--item-text-cols", nargs="*", default=[], help="other --items columns to keep (only named ones are kept)"
    )
    parser.add_argument("--sep", default=None, help="field separator for text files (default from the extension)")
    parser.add_argument("--k-core", type=int, default=None, help="optional k-core filter")
    parser.add_argument("--name", default=None, help="dataset name (default: the file's stem)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    return parser


if __name__ == "__main__":
    main()
