"""genrec's SASRec trained in its different modes, over seeds, to set it beside RecBole's (``recbole_sasrec.py``).

RecBole trains SASRec on every prefix of every training sequence (``training_mode=prefix``); genrec's default
``seq2seq`` mode trains every position of 50-item windows at once, which is many times cheaper on a CPU. This script
measures what that costs in quality, and what overlapping windows (``window_stride``) win back, with everything
else at RecBole's defaults. Each (variant, seed) runs in its own process, several at a time, one torch thread each::

    python benchmarks/sasrec_modes.py --data runs/quality-cpu/data/ml-100k --device cuda --workers 11
    python benchmarks/sasrec_modes.py --data DIR --variants seq2seq,stride10 --seeds 0 --workers 2   # CPU

One JSON line per run is appended to ``--out`` (runs already there are skipped, so an interrupted run resumes); the
table of means over seeds is printed at the end. Protocol: leave-one-out test split, full ranking, seen items not
excluded (and the seen-excluded N@10 beside it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = {
    "seq2seq": {},  # genrec's default: 50-item windows, batch 128 windows
    "stride25": {"window_stride": 25},
    "stride10": {"window_stride": 10},
    "stride5": {"window_stride": 5},
    "stride2": {"window_stride": 2},
    "batch32": {"batch_size": 32},
    "batch32-stride10": {"batch_size": 32, "window_stride": 10},
    "prefix": {"training_mode": "prefix", "batch_size": 2048},  # RecBole's SASRec: every prefix, batch 2048
    "prefix-batch256": {"training_mode": "prefix", "batch_size": 256},
}


def run_one(variant: str, seed: int, data: str, device: str, max_epochs: int | None = None) -> dict:
    """Train one SASRec and score it on test; runs in a worker process."""
    import torch

    from genrec.baselines import SASRecConfig, SASRecRecommender
    from genrec.data import InteractionData, leave_one_out
    from genrec.evaluation import evaluate

    torch.set_num_threads(1)
    split = leave_one_out(InteractionData.load(data))
    cap = {"max_epochs": max_epochs} if max_epochs else {}
    config = SASRecConfig(**VARIANTS[variant], **cap, seed=seed, device=device, show_progress=False)
    started = time.perf_counter()
    model = SASRecRecommender().fit(split, config)
    train_seconds = time.perf_counter() - started
    test = evaluate(model, split, "test", progress=False)
    excluded = evaluate(model, split, "test", exclude_seen=True, progress=False)
    return {
        "variant": variant,
        "seed": seed,
        "config": VARIANTS[variant],
        "valid_ndcg@10": max(h[config.valid_metric] for h in model.history),
        **{key: test[key] for key in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")},
        "excluded_ndcg@10": excluded["ndcg@10"],
        "best_epoch": model.best_epoch,
        "epochs": len(model.history),
        "train_seconds": round(train_seconds, 1),
        "device": device,
    }


def table(runs: list[dict]) -> str:
    """Markdown table of means over seeds, one row per variant."""
    lines = [
        "| variant | valid N@10 | test N@10 | per seed | R@10 | N@10 seen excluded | epochs | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_variant: dict[str, list[dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    for variant, rows in by_variant.items():
        rows.sort(key=lambda r: r["seed"])
        ndcg = [r["ndcg@10"] for r in rows]
        spread = statistics.stdev(ndcg) if len(ndcg) > 1 else 0.0
        cells = [
            variant,
            f"{statistics.mean(r['valid_ndcg@10'] for r in rows):.4f}",
            f"{statistics.mean(ndcg):.4f} ± {spread:.4f}",
            " / ".join(f"{v:.4f}" for v in ndcg),
            f"{statistics.mean(r['recall@10'] for r in rows):.4f}",
            f"{statistics.mean(r['excluded_ndcg@10'] for r in rows):.4f}",
            "/".join(str(r["epochs"]) for r in rows),
            "/".join(f"{r['train_seconds']:.0f}" for r in rows),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Prepared dataset directory (genrec prepare ... --out DIR).")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"Comma-separated, from {', '.join(VARIANTS)} (default all)."
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds (default 0 1 2).")
    parser.add_argument("--device", default="cpu", help="torch device for training and scoring (default cpu).")
    parser.add_argument("--workers", type=int, default=2, help="Runs at a time, one torch thread each (default 2).")
    parser.add_argument("--max-epochs", type=int, help="Epoch cap, smoke runs only (default 300, early stop).")
    parser.add_argument("--out", default="runs/sasrec_modes.jsonl", help="JSON lines file the runs are appended to.")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    done = {(r["variant"], r["seed"]) for r in runs}
    jobs = [(v, s) for s in args.seeds for v in variants if (v, s) not in done]
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked workers
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = [pool.submit(run_one, v, s, args.data, args.device, args.max_epochs) for v, s in jobs]
        for future in futures:
            run = future.result()
            runs.append(run)
            with out.open("a") as handle:  # one whole line per finished run: an interrupted sweep resumes
                handle.write(json.dumps(run) + "\n")
            print(json.dumps(run), flush=True)
    print(table([r for r in runs if r["variant"] in variants and r["seed"] in args.seeds]))


if __name__ == "__main__":
    main()
