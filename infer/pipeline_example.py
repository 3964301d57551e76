"""Recommend with the transformers pipeline from a genrec bundle.

    python infer/pipeline_example.py --model runs/tiger_t5/bundle --history 50 172 133 --k 5

Any bundle works (T5 trained from scratch, a causal LM, a LoRA adapter over a base model).
"""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> None:
    from transformers import pipeline

    import genrec  # noqa: F401  (registers "next-item-recommendation")

    recommend = pipeline("next-item-recommendation", model=args.model, device=args.device)
    # one history → a ranked list; a dict with user_id → {"user_id", "items"}; a list of either → a list
    for rank, item in enumerate(recommend(args.history, top_k=args.k, exclude_seen=args.exclude_seen), start=1):
        print(f"{rank:2d}. {item['item_id']:>8}  {item['score']:8.3f}  {item['identifier']}  {item['title']}")
    batch = [{"user_id": "a", "history": args.history}, {"user_id": "b", "history": args.history[-1:]}]
    for out in recommend(batch, top_k=3, batch_size=2):
        print(out["user_id"], [item["item_id"] for item in out["items"]])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="genrec bundle directory")
    parser.add_argument("--history", nargs="+", required=True, help="item ids, oldest first")
    parser.add_argument("--k", type=int, default=10, help="items to recommend (default 10)")
    parser.add_argument("--exclude_seen", action="store_true", help="do not recommend history items")
    parser.add_argument("--device", default=None, help="cpu, cuda, 0, ... (default: GPU 0 if any)")
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())
