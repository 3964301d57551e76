"""Decode a trained SETRec bundle with several CF score weights: validation NDCG@10 for each, test at the best.

``cf_score_weight`` only changes how item scores add up the per-position log-probabilities, so one trained bundle is
re-scored, not re-trained. The weight is chosen on the validation split only.

    python benchmarks/set_score_weights.py --bundle runs/quality-cpu/bundles/setrec_smollm-seed0/bundle \
        --data runs/quality-cpu/data/ml-100k --weights 0.5,1,2,4
"""

from __future__ import annotations

import argparse

import torch

from genrec.data import leave_one_out
from genrec.evaluation import evaluate
from genrec.recommenders import GenerativeRecommender
from genrec.training.recipe import load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a set bundle (decoder 'set')")
    parser.add_argument("--data", required=True, help="the prepared dataset it was trained on")
    parser.add_argument("--weights", default="0.5,1,2,4", help="CF score weights to try (comma separated)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recommender = GenerativeRecommender.from_pretrained(args.bundle)
    if recommender.config.decoder != "set":
        raise SystemExit(f"{args.bundle} is not a set bundle (decoder {recommender.config.decoder!r})")
    split = leave_one_out(load_data(args.data))
    print("| cf_score_weight | valid N@10 | valid R@10 |\n|---|---|---|")
    valid = {}
    for weight in (float(w) for w in args.weights.split(",")):
        metrics = evaluate(recommender, split, "valid", batch_size=32, progress=False, cf_score_weight=weight)
        valid[weight] = metrics["ndcg@10"]
        print(f"| {weight:g} | {metrics['ndcg@10']:.4f} | {metrics['recall@10']:.4f} |", flush=True)
    best = max(valid, key=valid.get)
    test = evaluate(recommender, split, "test", batch_size=32, progress=False, cf_score_weight=best)
    print(f"\ntest at the validation-best weight {best:g}: N@10 {test['ndcg@10']:.4f}, R@10 {test['recall@10']:.4f}")


if __name__ == "__main__":
    main()
