"""How much a recommender's top 10 moves when the newest item joins the history (ML-100K, leave-one-out).

The validation and test histories of a user differ by one item, the validation target. A sequential recommender
should answer it: SASRec changes most of its top 10, while a prefix-trained T5 that ranks from the bag of
history items keeps nearly the same list (model_cards/RESULTS.md, "T5 recipes"). Prints, for each model: validation
and test NDCG@10, the share of the top 10 kept between the two lists, how often the newest history item itself is
in the top 10, and the share of the top 10 already in the history (seen items are not excluded)::

    python benchmarks/history_response.py --data runs/quality-cpu/data/ml-100k \\
        --bundle runs/quality-cpu/bundles/p5_sid_t5-seed0/bundle --sasrec-seed 0
"""

from __future__ import annotations

import argparse

import torch

from genrec import GenerativeRecommender, InteractionData, leave_one_out
from genrec.baselines.sasrec import SASRecConfig, SASRecRecommender
from genrec.evaluation.metrics import ndcg_at_k, target_rank


def response(recommender, split) -> dict:
    """Validation/test NDCG@10 and how the top 10 reacts to the one extra (newest) history item."""
    valid_h, test_h = split.histories("valid"), split.histories("test")
    valid, test = recommender.recommend(valid_h, k=10), recommender.recommend(test_h, k=10)  # they batch inside
    users = len(valid)
    return {
        "valid N@10": sum(ndcg_at_k(target_rank(t, y), 10) for t, y in zip(valid, split.targets("valid"))) / users,
        "test N@10": sum(ndcg_at_k(target_rank(t, y), 10) for t, y in zip(test, split.targets("test"))) / users,
        "top 10 kept": sum(len(set(a) & set(b)) for a, b in zip(valid, test)) / (10 * users),
        "newest item in top 10": sum(h[-1] in t for t, h in zip(test, test_h)) / users,
        "top 10 already seen": sum(len(set(t) & set(h)) for t, h in zip(test, test_h)) / (10 * users),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Prepared dataset directory (genrec prepare).")
    parser.add_argument("--bundle", action="append", default=[], help="A genrec bundle (repeatable).")
    parser.add_argument("--sasrec-seed", type=int, action="append", default=[], help="Also train SASRec (seed).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = leave_one_out(InteractionData.load(args.data))
    models = {path: GenerativeRecommender.from_pretrained(path) for path in args.bundle}
    for seed in args.sasrec_seed:
        models[f"SASRec seed {seed}"] = SASRecRecommender().fit(split, SASRecConfig(seed=seed))
    rows = {name: response(model, split) for name, model in models.items()}
    keys = list(next(iter(rows.values()))) if rows else []
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
