"""Batch next-item recommendation: JSONL of user histories in, JSONL of ranked items out.

Input lines look like ``{"user_id": "u1", "history": ["50", "172", "133"]}`` (oldest first); output lines like
``{"user_id": "u1", "line": 1, "items": [{"item_id": ..., "score": ..., "title": ..., "identifier": ...}]}``,
in input order. Re-running the same command resumes exactly after the last input line written (the job's
fingerprint - input content, model, k, beams, options - is kept in OUTPUT.progress.json; a rerun with a different
one is refused: --no_resume starts over). An output file genrec did not write is never replaced without --overwrite.

One process (CPU or one GPU):

    python infer/batch_recommend.py --model runs/tiger_t5/bundle --input users.jsonl --output recs.jsonl --k 10

Several GPUs (each process takes every n-th line, then the main process merges the shards into recs.jsonl):

    accelerate launch --multi_gpu --num_processes 2 infer/batch_recommend.py \
        --model runs/tiger_t5/bundle --input users.jsonl --output recs.jsonl --k 10 --batch_size 64

The same on CPU processes (gloo), as the test suite runs it:

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 infer/batch_recommend.py ...

Independent jobs (e.g. on several machines), then a merge step:

    python infer/batch_recommend.py --model B --input users.jsonl --output recs.jsonl --shard 0/2
    python infer/batch_recommend.py --model B --input users.jsonl --output recs.jsonl --shard 1/2
    python infer/batch_recommend.py --output recs.jsonl --merge 2

Skip malformed lines instead of stopping (they are logged with their line numbers):

    python infer/batch_recommend.py --model B --input users.jsonl --output recs.jsonl --on_error skip
"""

from __future__ import annotations

import argparse
import logging
import sys

from genrec.inference import merge_shards, recommend_command


def main(args: argparse.Namespace) -> None:
    if args.merge:
        count = merge_shards(args.output, args.merge, remove=args.remove_shards, overwrite=args.overwrite)
        print(f"merged {args.merge} shards into {args.output}: {count} users")
        return
    if not (args.model and args.input):
        raise SystemExit("--model and --input are required (unless --merge)")
    stats = recommend_command(
        args.model,
        args.input,
        args.output,
        k=args.k,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        exclude_seen=args.exclude_seen,
        on_error=args.on_error,
        unknown=args.unknown,
        resume=not args.no_resume,
        index=args.index,
        shard=args.shard,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {stats.written} users ({stats.users_per_second:.1f} users/s); {stats.resumed} lines already done, "
        f"{stats.errors} lines skipped, {stats.unknown_dropped} unknown history items dropped"
    )


def _shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like I/N (e.g. 0/4), got {value!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {value!r}")
    return index, count


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="genrec bundle directory")
    parser.add_argument("--input", help="JSONL with user_id and history per line")
    parser.add_argument("--output", required=True, help="JSONL to write (resumed when rerun with the same job)")
    parser.add_argument("--k", type=_positive, default=10, help="items per user (default 10; capped at the catalog)")
    parser.add_argument("--num_beams", type=_positive, default=None, help="beams, >= k (default: the bundle's)")
    parser.add_argument("--batch_size", type=_positive, default=32, help="histories per generate call (default 32)")
    parser.add_argument("--exclude_seen", action="store_true", help="drop history items from the recommendations")
    parser.add_argument(
        "--on_error", choices=["fail", "skip"], default="fail", help="on a malformed or rejected line (default fail)"
    )
    parser.add_argument(
        "--unknown", choices=["drop", "error"], default="drop", help="history items not in the index (default drop)"
    )
    parser.add_argument("--no_resume", action="store_true", help="start the output over instead of resuming it")
    parser.add_argument("--overwrite", action="store_true", help="replace an output file genrec did not write")
    parser.add_argument("--index", default=None, help="item index file to check the bundle against")
    parser.add_argument("--dtype", default=None, help="weights dtype, e.g. bfloat16 (default float32)")
    parser.add_argument(
        "--shard", type=_shard, default=None, help="I/N: handle every N-th line from I, write OUTPUT.shard-I-of-N"
    )
    parser.add_argument(
        "--merge", type=_positive, default=None, metavar="N", help="only merge N shard files into OUTPUT"
    )
    parser.add_argument("--remove_shards", action="store_true", help="with --merge: delete the shard files after")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main(make_parser().parse_args())
    except (ValueError, KeyError, OSError) as err:  # a clear one-line message, as `genrec recommend` gives
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        logging.getLogger("batch_recommend").error("%s", message)
        sys.exit(2)
