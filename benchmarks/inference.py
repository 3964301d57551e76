"""Inference throughput: the pipeline and the batch JSONL path against a bare ``model.generate`` loop.

All paths run the same bundle on the same users with the same prompts, trie LogitsProcessor, beams and batch size:

- ``generate (bare)``: prompts built beforehand; per batch only ``tokenizer(...)`` + ``model.generate(...)``.
- ``recommend_scored``: the library call (cleaning, prompts, generate, ranking into Recommendation objects).
- ``pipeline``: ``pipeline("next-item-recommendation")`` on the list of histories (DataLoader, collate, unbatching,
  output dicts).
- ``batch JSONL``: :func:`genrec.inference.recommend_jsonl` from a JSONL file to a JSONL file (parsing, chunking,
  length-sorted batches, writing and flushing). Its batches differ from the others (sorted by history length).

Each path runs ``--repeats`` times, interleaved, after one warm-up batch; the table reports the median users/s and the
overhead over bare generate (goal: at most 5%).

Train a small T5 on ML-100K with a tiny budget (sequential identifiers, a few minutes on CPU) and measure:

    python benchmarks/inference.py --train --bundle runs/bench_inference --users 256 --batch_size 32 --num_beams 20

Measure an existing bundle (e.g. on a GPU):

    python benchmarks/inference.py --bundle runs/bench_inference/bundle --device cuda --users 1024 --batch_size 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def train_bundle(output_dir: str, data: str, max_steps: int) -> Path:
    """A small T5 (2+2 layers, d_model 64) on sequential identifiers: the budget is for timing, not for quality."""
    from genrec.training import recipe_from_dict, run_recipe

    cfg = recipe_from_dict(
        dict(
            data=data,
            output_dir=output_dir,
            name="bench-inference",
            index_method="sequential",
            template_style="tiger",
            t5_num_layers=2,
            t5_num_decoder_layers=2,
            t5_d_model=64,
            t5_num_heads=4,
            t5_d_kv=16,
            t5_d_ff=256,
            tokenizer_vocab_size=500,
            max_train_examples=20000,
            max_steps=max_steps,
            eval_steps=max_steps,
            eval_max_users=50,
            test_max_users=100,
            eval_num_beams=20,
            per_device_train_batch_size=64,
            learning_rate=3e-3,
            logging_steps=20,
        )
    )
    run_recipe(cfg)
    return Path(output_dir) / "bundle"


def bare_generate(rec, prompts: list[str], batch_size: int, num_beams: int) -> None:
    """The floor: tokenise + constrained beam search, nothing else (no cleaning, ranking or output objects)."""
    from genrec.decoding import TrieConstrainedLogitsProcessor

    for start in range(0, len(prompts), batch_size):
        enc = rec.tokenizer(
            prompts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=rec.config.max_prompt_tokens,
        ).to(rec.device)
        prompt_length = 1 if rec.config.kind == "seq2seq" else enc["input_ids"].shape[1]
        with torch.inference_mode():
            rec.model.generate(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                logits_processor=[TrieConstrainedLogitsProcessor(rec.trie, prompt_length)],
                num_beams=num_beams,
                num_return_sequences=num_beams,
                max_new_tokens=rec.trie.max_length + 1,
                do_sample=False,
                length_penalty=0.0,
                early_stopping=True,
                return_dict_in_generate=True,
                output_scores=True,
                pad_token_id=rec.tokenizer.pad_token_id,
                eos_token_id=rec.tokenizer.eos_token_id,
            )


def main(args: argparse.Namespace) -> None:
    from transformers import pipeline

    import genrec  # noqa: F401  (registers the pipeline task)
    from genrec import GenerativeRecommender
    from genrec.data import leave_one_out
    from genrec.inference import recommend_jsonl
    from genrec.training import load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = train_bundle(args.bundle, args.data, args.max_steps) if args.train else Path(args.bundle)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rec = GenerativeRecommender.from_pretrained(bundle, device=device)
    split = leave_one_out(load_data(args.data))
    histories = [rec.clean_history(h)[0] for h in split.histories("test")[: args.users]]
    prompts = [rec.prompter.seqrec_prompt(h) for h in histories]
    pipe = pipeline("next-item-recommendation", model=rec, device=device)
    k, beams, bs = args.k, args.num_beams, args.batch_size
    workdir = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    source = workdir / "users.jsonl"
    source.write_text("".join(json.dumps({"user_id": f"u{i}", "history": h}) + "\n" for i, h in enumerate(histories)))

    paths = {
        "generate (bare)": lambda: bare_generate(rec, prompts, bs, beams),
        "recommend_scored": lambda: rec.recommend_scored(histories, k=k, num_beams=beams, batch_size=bs),
        "pipeline": lambda: pipe(histories, top_k=k, num_beams=beams, batch_size=bs),
        "batch JSONL": lambda: recommend_jsonl(
            rec, source, workdir / "out.jsonl", k=k, num_beams=beams, batch_size=bs, resume=False, progress=False
        ),
    }
    bare_generate(rec, prompts[:bs], bs, beams)  # warm-up (kernels, allocator)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, run in paths.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["generate (bare)"])
    machine = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"\nbundle {bundle} ({rec.config.kind}, {len(rec.index)} items, identifiers up to {rec.trie.max_length} "
        f"tokens); {len(histories)} users, k={k}, beams={beams}, batch {bs}, {args.repeats} repeats; {machine}\n"
    )
    print("| path | median s | users/s | overhead vs bare generate |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        overhead = "—" if name == "generate (bare)" else f"{100 * (median / base - 1):+.1f}%"
        print(f"| {name} | {median:.2f} | {len(histories) / median:.1f} | {overhead} |")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle directory (with --train: the run's output_dir)")
    parser.add_argument("--train", action="store_true", help="train the small ML-100K bundle first")
    parser.add_argument("--data", default="ml-100k", help="dataset name or prepared directory (default ml-100k)")
    parser.add_argument("--max_steps", type=int, default=60, help="training budget with --train (default 60)")
    parser.add_argument("--users", type=int, default=256, help="test users to recommend for (default 256)")
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--num_beams", type=int, default=20, help="beams (default 20)")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())
