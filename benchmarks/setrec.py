"""SETRec benchmark: set decoding vs the same set tokens decoded as an ordered sequence with the trie vs SASRec, all in
the shared harness, plus inference speed of set decoding vs trie beam search on the same backbone and catalog.

What runs (one process, one machine; all numbers from this single run):
1. One `set` index (1 CF + 3 semantic tokens per item) fitted on the training split, shared by both generative models.
2. SETRec (`mode="set"`) with a small T5 from scratch for each training ``--cf-weights`` value; the CF position's
   loss weight is chosen by validation NDCG@10 (harness, ``--eval-users`` sampled validation users), then the
   decoding weight of the CF token (``--cf-score-weights``) by NDCG@10 on the full validation split. Never on test.
3. The same T5 size trained on the same index and prompts with the ordinary recipe (`mode="prefix"`), decoded with
   trie-constrained beam search (20 beams).
4. SASRec (genrec.baselines, early stopping on validation NDCG@10).
5. Speed: users/s of set decoding vs trie beam search (20 beams) with the SETRec model's own backbone, the same
   catalog, users and batch size (one warm-up batch first, then ``--speed-users`` test users timed).

    python benchmarks/setrec.py                                  # ML-100K, CPU budget (see --help)
    python benchmarks/setrec.py --max-steps 100 --cf-weights 1 --sasrec-epochs 5 --test-users 200   # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import torch

from genrec.baselines import fit_baseline
from genrec.bundle import BundleConfig
from genrec.data import leave_one_out
from genrec.evaluation import evaluate, format_table
from genrec.indexing import build_indexer
from genrec.models import SEQ2SEQ
from genrec.recommenders import TrieRecommender
from genrec.training import Recipe, load_data, recipe_from_dict, run_recipe
from genrec.utils import atomic_write_json

logger = logging.getLogger("benchmarks.setrec")

INDEX_OPTIONS = {
    "num_cf_clusters": 64,
    "cf_dim": 32,
    "num_semantic": 3,
    "semantic_codebook_size": 64,
    "semantic_dim": 48,
}


def recipe(args, output: Path, index_file: Path, **overrides) -> Recipe:
    """The shared small-T5 recipe: only ``mode`` and the set weights differ between runs."""
    values = dict(
        data=args.data,
        output_dir=str(output),
        index_method="set",
        index_file=str(index_file),
        backbone="t5-scratch",
        t5_num_layers=args.layers,
        t5_num_decoder_layers=args.layers,
        t5_d_model=args.d_model,
        t5_num_heads=4,
        t5_d_kv=args.d_model // 4,
        t5_d_ff=4 * args.d_model,
        t5_dropout=0.1,
        tokenizer_vocab_size=500,
        template_style="tiger",
        max_history=args.max_history,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=0.05,
        logging_steps=max(1, args.max_steps // 5),
        eval_steps=args.eval_steps,
        eval_max_users=args.eval_users,
        eval_num_beams=20,
        early_stopping_patience=3,
        save_total_limit=2,
        test_max_users=args.test_users,
        seed=args.seed,
    )
    values.update(overrides)
    return recipe_from_dict(dict(**values))


def users_per_second(recommender, histories, batch_size: int, **options) -> float:
    recommender.recommend(histories[:batch_size], k=10, batch_size=batch_size, **options)  # warm-up
    start = time.perf_counter()
    recommender.recommend(histories, k=10, batch_size=batch_size, **options)
    return len(histories) / (time.perf_counter() - start)


def main(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.data)
    split = leave_one_out(data)
    start = time.time()
    index = build_indexer("set", seed=args.seed, **INDEX_OPTIONS).fit(data.items, split.train)
    index_file = index.save(out / "set_index.json")
    print(
        f"set index: {len(index)} items, positions {index.state['positions']} sizes "
        f"{index.state['position_sizes']}, {time.time() - start:.0f}s"
    )

    # SETRec: training CF weight by (sampled) validation NDCG@10, then decoding CF weight on the full validation split
    runs = {}
    for weight in args.cf_weights:
        cfg = recipe(
            args,
            out / f"set_cf{weight:g}",
            index_file,
            mode="set",
            set_cf_weight=weight,
            name=f"setrec_cf{weight:g}",
        )
        recommender, metrics = run_recipe(cfg)
        runs[weight] = (recommender, metrics)
        print(
            f"SETRec cf_weight={weight:g}: best sampled valid NDCG@10 {metrics['best_valid_ndcg10']:.4f}, "
            f"{metrics['steps']} steps, {metrics['train_seconds']:.0f}s"
        )
    best_weight = max(runs, key=lambda w: runs[w][1]["best_valid_ndcg10"] or 0.0)
    setrec, set_metrics = runs[best_weight]
    valid_grid = {
        w: evaluate(setrec, split, "valid", batch_size=64, progress=False, cf_score_weight=w)
        for w in args.cf_score_weights
    }
    best_score_weight = max(valid_grid, key=lambda w: valid_grid[w]["ndcg@10"])
    set_test = evaluate(
        setrec,
        split,
        "test",
        max_users=args.test_users,
        batch_size=64,
        progress=False,
        cf_score_weight=best_score_weight,
    )

    # The same tokens as an ordered sequence, trie-constrained beam search
    trie_test = trie_metrics = trie_rec = None
    if not args.skip_trie:
        trie_rec, trie_metrics = run_recipe(recipe(args, out / "trie", index_file, mode="prefix", name="set_trie"))
        trie_test = trie_metrics

    sasrec_test = None
    if not args.skip_sasrec:
        start = time.time()
        sasrec = fit_baseline("sasrec", split, max_epochs=args.sasrec_epochs, seed=args.seed, show_progress=False)
        sasrec_seconds = time.time() - start
        sasrec_test = evaluate(sasrec, split, "test", max_users=args.test_users, progress=False)

    # Speed: same backbone (the SETRec model's), same catalog, users and batch size
    histories = split.histories("test")[: args.speed_users]
    same_backbone_trie = TrieRecommender(
        setrec.model.backbone,
        setrec.tokenizer,
        index,
        BundleConfig(
            kind=SEQ2SEQ,
            index_fingerprint=index.fingerprint,
            template_style="tiger",
            max_history=args.max_history,
            num_beams=20,
        ),
    )
    speed = {
        "set decoding (1 forward pass, all items scored)": users_per_second(setrec, histories, args.speed_batch),
        "trie beam search, 20 beams (same backbone)": users_per_second(
            same_backbone_trie, histories, args.speed_batch, num_beams=20
        ),
    }
    if trie_rec is not None:
        speed["trie beam search, 20 beams (trie-trained model)"] = users_per_second(
            trie_rec, histories, args.speed_batch, num_beams=20
        )

    rows = {f"SETRec (set decoding, cf_weight={best_weight:g}, cf_score_weight={best_score_weight:g})": set_test}
    if trie_test:
        rows["same set tokens, ordered + trie beam search (20)"] = trie_test
    if sasrec_test:
        rows["SASRec"] = sasrec_test
    threads = torch.get_num_threads()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}, no GPU"
    print(f"\n## Quality on {data.name} (test, leave-one-out, full ranking, seen items not excluded)\n")
    print(format_table(rows))
    print("\n## SETRec validation grid (NDCG@10 / R@10)\n")
    print("| training cf_weight | decoding cf_score_weight | valid N@10 | valid R@10 | users |\n|---|---|---|---|---|")
    for w, m in valid_grid.items():
        print(f"| {best_weight:g} | {w:g} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['num_users']} |")
    for w, (_, m) in runs.items():
        print(f"| {w:g} | 1 (during training) | {m['best_valid_ndcg10']:.4f} (sampled {args.eval_users}) | | |")
    print(f"\n## Inference speed ({len(histories)} test users, batch {args.speed_batch}, k=10; {machine})\n")
    print("| decoder | users/s | ratio vs trie (same backbone) |\n|---|---|---|")
    base = speed["trie beam search, 20 beams (same backbone)"]
    for name, value in speed.items():
        print(f"| {name} | {value:.1f} | {value / base:.1f}x |")
    print("\n## Training\n")
    print("| model | steps | train s | train examples | parameters |\n|---|---|---|---|---|")
    for name, m in (("SETRec", set_metrics), ("trie", trie_metrics)):
        if m:
            print(f"| {name} | {m['steps']} | {m['train_seconds']} | {m['train_examples']} | {m['parameters']} |")
    if sasrec_test:
        print(f"| SASRec | ≤{args.sasrec_epochs} epochs | {sasrec_seconds:.0f} | | |")
    result = {
        "quality": rows,
        "valid_grid": {str(k): v for k, v in valid_grid.items()},
        "speed_users_per_s": speed,
        "machine": machine,
        "args": vars(args),
    }
    atomic_write_json(out / "results.json", json.loads(json.dumps(result, default=str)))
    return result


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="ml-100k", help="Dataset name or prepared directory.")
    p.add_argument("--output", default="runs/bench_setrec", help="Where runs, bundles and results.json go.")
    p.add_argument("--layers", type=int, default=2, help="T5 encoder and decoder layers.")
    p.add_argument("--d-model", type=int, default=64, help="T5 hidden size (4 heads of d_model/4, d_ff 4*d_model).")
    p.add_argument("--max-history", type=int, default=10, help="History items in a prompt.")
    p.add_argument("--max-steps", type=int, default=600, help="Training steps per generative model.")
    p.add_argument("--batch-size", type=int, default=64, help="Training batch size.")
    p.add_argument("--learning-rate", type=float, default=2e-3, help="Peak learning rate.")
    p.add_argument("--eval-steps", type=int, default=200, help="Validate (harness NDCG@10) every N steps.")
    p.add_argument("--eval-users", type=int, default=200, help="Validation users sampled during training.")
    p.add_argument("--test-users", type=int, default=None, help="Test users (default: all).")
    p.add_argument("--cf-weights", type=float, nargs="+", default=[1.0, 2.0], help="Training CF loss weights tried.")
    p.add_argument(
        "--cf-score-weights",
        type=float,
        nargs="+",
        default=[0.5, 1.0, 2.0],
        help="Decoding CF score weights tried on the validation split.",
    )
    p.add_argument("--sasrec-epochs", type=int, default=100, help="SASRec epoch limit (early stopping inside).")
    p.add_argument("--speed-users", type=int, default=256, help="Test users timed for the speed table.")
    p.add_argument("--speed-batch", type=int, default=32, help="Batch size for the speed table.")
    p.add_argument("--skip-trie", action="store_true", help="Skip the trie-decoded model.")
    p.add_argument("--skip-sasrec", action="store_true", help="Skip SASRec.")
    p.add_argument("--threads", type=int, default=None, help="torch threads.")
    p.add_argument("--seed", type=int, default=42, help="Seed.")
    return p


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(make_parser().parse_args())
