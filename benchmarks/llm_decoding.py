"""Batched constrained decoding of a causal LLM recommender: users/s batched vs one user at a time, and trie-
constrained vs unconstrained beam search, on real ML-100K test histories.

The bundle is a trained genrec recommender (e.g. ``runs/lcrec_smollm/bundle``, SmolLM2-135M with LoRA); its
weights do not change the cost of decoding, only the validity of unconstrained output. Every method decodes the
same ``--users`` test histories with ``--beams`` beams (= returned sequences), each history encoded once and its
KV cache repeated for the beams (:meth:`TrieRecommender.prefill`). Methods:

- ``constrained, batched``: ``recommend_scored(..., batch_size=B)`` (left padding, trie processor): what
  ``genrec evaluate`` and ``genrec recommend`` run;
- ``constrained, 1 user/call``: the same with ``batch_size=1``;
- ``unconstrained, batched``: the same batches through ``model.generate`` with no logits processor, for the cost of
  the constraint; its rows are checked against the catalog trie (invalid rate).

The table reports seconds per user (median of ``--repeats`` passes, methods interleaved), users/s, the batched /
one-at-a-time speed-up and constrained / unconstrained ratio measured in this run, and the invalid rate.

    python benchmarks/llm_decoding.py --bundle runs/lcrec_smollm/bundle --data runs/ml-100k
    python benchmarks/llm_decoding.py --bundle DIR --data DIR --users 64 --batch-size 16 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from genrec.data import InteractionData, leave_one_out
from genrec.recommenders import GenerativeRecommender
from genrec.utils import atomic_write_json


def unconstrained_invalid(recommender, histories, num_beams: int, batch_size: int) -> tuple[float, float]:
    """(seconds, invalid rate) of plain beam search over the same batches: rows that spell no catalog item."""
    start, invalid, rows = time.perf_counter(), 0, 0
    model, tokenizer, trie = recommender.model, recommender.tokenizer, recommender.trie
    histories = recommender.clean_histories(histories)  # the prompt's last max_history items, as recommend does
    for begin in range(0, len(histories), batch_size):
        encoded = recommender.encode(histories[begin : begin + batch_size])
        input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                cache=recommender.prefill(input_ids, attention_mask, num_beams),
                num_beams=num_beams,
                num_return_sequences=num_beams,
                max_new_tokens=trie.max_length,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        items = trie.decode_tensor(out[:, input_ids.shape[1] :])
        invalid += int((items < 0).sum())
        rows += items.numel()
    return time.perf_counter() - start, invalid / max(1, rows)


def main(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    recommender = GenerativeRecommender.from_pretrained(args.bundle)
    split = leave_one_out(InteractionData.load(args.data))
    histories = [list(h) for h in split.histories("test")[: args.users]]
    users = len(histories)
    recommender.recommend(histories[:2], k=10, num_beams=args.beams, batch_size=2)  # warm-up

    def constrained(batch_size):
        start = time.perf_counter()
        recs = recommender.recommend_scored(histories, k=10, num_beams=args.beams, batch_size=batch_size)
        assert all(r.item_id in recommender.index.item_ids for rs in recs for r in rs)
        return time.perf_counter() - start, 0.0

    methods = {
        f"constrained, batched ({args.batch_size}/call)": lambda: constrained(args.batch_size),
        "constrained, 1 user/call": lambda: constrained(1),
        f"unconstrained, batched ({args.batch_size}/call)": lambda: unconstrained_invalid(
            recommender, histories, args.beams, args.batch_size
        ),
    }
    times = {name: [] for name in methods}
    invalid = {}
    for _ in range(args.repeats):
        for name, run in methods.items():
            seconds, invalid[name] = run()
            times[name].append(seconds)
    rows = {
        name: {
            "seconds_per_user": statistics.median(values) / users,
            "users_per_second": users / statistics.median(values),
            "invalid_rate": invalid[name],
        }
        for name, values in times.items()
    }
    names = list(methods)
    result = {
        "bundle": str(args.bundle),
        "base_model": recommender.config.base_model,
        "users": users,
        "beams": args.beams,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "methods": rows,
        "batched_speedup": rows[names[1]]["seconds_per_user"] / rows[names[0]]["seconds_per_user"],
        "constrained_over_unconstrained": rows[names[0]]["seconds_per_user"] / rows[names[2]]["seconds_per_user"],
    }
    print(
        f"{result['base_model']} | {users} ML-100K test users, {args.beams} beams, {result['threads']} threads, "
        f"median of {args.repeats}"
    )
    print("| method | s/user | users/s | invalid rate |\n|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['seconds_per_user']:.3f} | {row['users_per_second']:.2f} | {row['invalid_rate']:.3f} |"
        )
    print(
        f"batched / one at a time: {result['batched_speedup']:.2f}x faster; "
        f"constrained / unconstrained time: {result['constrained_over_unconstrained']:.2f}"
    )
    if args.json:
        atomic_write_json(args.json, result)
    return result


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a trained causal genrec bundle")
    parser.add_argument("--data", required=True, help="the prepared dataset directory it was trained on")
    parser.add_argument("--users", type=int, default=64, help="test users decoded per method")
    parser.add_argument("--beams", type=int, default=20, help="num_beams = returned sequences")
    parser.add_argument("--batch-size", type=int, default=16, help="users per generate call when batched")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per method (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())
