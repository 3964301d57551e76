"""Decoding speed: trie-constrained beam search vs unconstrained vs transformers' ``prefix_allowed_tokens_fn``.

One TIGER-size T5 (4 + 4 layers, d_model 128, 6 heads, d_kv 64, d_ff 1024, random weights, vocabulary = the code
tokens) and one batch (64 users, encoder input 20 items x 4 code tokens, beam 20, 20 returned sequences) are decoded
for synthetic catalogs of 10k / 100k / 1M items. Codes are 3 levels x 256 drawn uniformly plus a 4th "collision"
level (the rank of the item among items with the same 3 codes), so every item is unique, as in TIGER.

Per catalog: trie build time (from a list of token-id lists, as the library gets them), the median of ``--repeats``
timed ``generate`` calls per method (methods interleaved in every repeat so machine noise hits all of them), the
ratio constrained / unconstrained measured in this run, the constraint's own share of the timed ``generate`` time
(its calls timed inside ``generate``: robust to machine noise, unlike a ratio of two noisy medians), the processor
call alone on a (1280, V) score tensor (median over 20 calls, averaged over the depths 0..4 of real prefixes), and
the invalid rate: returned rows (of 64 x 20) that are not a catalog item. With random weights the unconstrained
model almost never spells an item. The naive reference is transformers' ``PrefixConstrainedLogitsProcessor`` (what
``generate(prefix_allowed_tokens_fn=...)`` builds) calling :meth:`ItemTrie.allowed` once per row and step.

    python benchmarks/decoding.py                                   # 10k / 100k / 1M, 5 repeats
    python benchmarks/decoding.py --catalogs 10000 --repeats 3      # quick look
    python benchmarks/decoding.py --naive_max_items 100000          # skip the slow naive reference at 1M
    python benchmarks/decoding.py --threads 1 --json decoding.json  # pin threads on a shared machine
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from transformers import LogitsProcessorList, T5Config, T5ForConditionalGeneration
from transformers.generation import LogitsProcessor, PrefixConstrainedLogitsProcessor

from genrec.decoding import (
    EMPTY_BEAM_SCORE,
    ItemTrie,
    TrieConstrainedLogitsProcessor,
    make_prefix_allowed_tokens_fn,
)
from genrec.utils import atomic_write_json

PAD, EOS, NUM_SPECIAL = 0, 1, 3  # 0 pad / decoder start, 1 eos, 2 unk
CODEBOOK = 256
LEVELS = 3
VOCAB = NUM_SPECIAL + (LEVELS + 1) * CODEBOOK  # 3 levels + the collision level


def synthetic_codes(num_items: int, seed: int = 0) -> np.ndarray:
    """(num_items, 4) token ids: 3 uniform code levels + a collision suffix that makes every row unique."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, CODEBOOK, size=(num_items, LEVELS))
    order = np.lexsort(codes.T[::-1])
    sorted_codes = codes[order]
    new_group = np.r_[True, (sorted_codes[1:] != sorted_codes[:-1]).any(axis=1)]
    group_start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]
    suffix = np.empty(num_items, dtype=np.int64)
    suffix[order] = np.arange(num_items) - group_start
    if suffix.max() >= CODEBOOK:
        raise ValueError(f"{num_items} items overflow the collision level ({suffix.max() + 1} > {CODEBOOK})")
    level_tokens = NUM_SPECIAL + np.arange(LEVELS) * CODEBOOK + codes
    return np.concatenate([level_tokens, (NUM_SPECIAL + LEVELS * CODEBOOK + suffix)[:, None]], axis=1)


def tiger_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=VOCAB,
        d_model=128,
        d_kv=64,
        d_ff=1024,
        num_layers=4,
        num_decoder_layers=4,
        num_heads=6,
        decoder_start_token_id=PAD,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )
    return T5ForConditionalGeneration(config).eval()


def machine_description(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    accel = torch.cuda.get_device_name() if device.startswith("cuda") else "no GPU used"
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"{accel}"
    )


def _timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


class _TimedProcessor(LogitsProcessor):
    """Wraps a processor and accumulates the wall time of its calls inside ``generate``."""

    def __init__(self, inner: LogitsProcessor):
        self.inner = inner
        self.seconds = 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        seconds, result = _timed(lambda: self.inner(input_ids, scores))
        self.seconds += seconds
        return result


def _invalid_rate(trie: ItemTrie, out) -> float:
    items = torch.tensor([-1 if i is None else i for i in trie.decode(out.sequences[:, 1:])])
    invalid = (items < 0) | (out.sequences_scores.cpu() <= EMPTY_BEAM_SCORE)
    return invalid.float().mean().item()


def _per_step_mask_ms(processor, trie: ItemTrie, codes: np.ndarray, rows: int, device: str, repeats: int = 20):
    """Median time of one processor call on (rows, V) scores, for real prefixes of each depth 0..max_length."""
    rng = np.random.default_rng(1)
    chosen = torch.from_numpy(codes[rng.integers(0, len(codes), size=rows)])
    scores = torch.randn(rows, VOCAB, device=device)
    per_depth = []
    for depth in range(trie.max_length + 1):
        input_ids = torch.cat([torch.full((rows, 1), PAD), chosen[:, :depth]], dim=1).to(device)
        processor(input_ids, scores)  # warm-up
        times = [_timed(lambda: processor(input_ids, scores))[0] for _ in range(repeats)]
        per_depth.append(1e3 * statistics.median(times))
    return per_depth


def main(
    catalogs: list[int],
    repeats: int,
    users: int,
    history: int,
    beams: int,
    naive_max_items: int | None,
    threads: int | None,
    device: str,
    seed: int,
    json_path: str | None,
) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    print(f"machine: {machine_description(device)}", flush=True)
    model = tiger_t5(seed).to(device)
    rows = users * beams
    results = []
    for num_items in catalogs:
        codes = synthetic_codes(num_items, seed)
        sequences = codes.tolist()
        build_s, trie = _timed(lambda: ItemTrie(sequences, eos_token_id=EOS, pad_token_id=PAD))
        trie = trie.to(device)
        rng = np.random.default_rng(seed + 1)
        encoder_ids = torch.from_numpy(codes[rng.integers(0, num_items, size=(users, history))].reshape(users, -1))
        encoder_ids = encoder_ids.to(device)  # (users, history * 4)
        processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
        common = dict(
            input_ids=encoder_ids,
            attention_mask=torch.ones_like(encoder_ids),
            num_beams=beams,
            num_return_sequences=beams,
            max_new_tokens=trie.max_length + 1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        # The naive reference is exactly what generate(prefix_allowed_tokens_fn=fn) builds internally; passing the
        # processor explicitly lets the benchmark also time the constraint's own share of each generate call.
        timed = {"trie": _TimedProcessor(processor)}
        if naive_max_items is None or num_items <= naive_max_items:
            fn = make_prefix_allowed_tokens_fn(trie, prompt_length=1)
            timed["prefix_allowed_tokens_fn"] = _TimedProcessor(PrefixConstrainedLogitsProcessor(fn, beams))
        methods = {"unconstrained": {}}
        methods.update({name: {"logits_processor": LogitsProcessorList([p])} for name, p in timed.items()})
        times: dict[str, list[float]] = {name: [] for name in methods}
        outputs = {}
        print(f"catalog {num_items}: trie built in {build_s:.2f}s ({trie.num_nodes} nodes); timing ...", flush=True)
        with torch.inference_mode():
            for name, extra in methods.items():  # warm-up
                outputs[name] = model.generate(**common, **extra)
            for p in timed.values():
                p.seconds = 0.0
            for _ in range(repeats):
                for name, extra in methods.items():
                    seconds, outputs[name] = _timed(lambda: model.generate(**common, **extra))
                    times[name].append(seconds)
            mask_ms = _per_step_mask_ms(processor, trie, codes, rows, device)
            naive_mask_ms = None
            if "prefix_allowed_tokens_fn" in methods:
                naive = PrefixConstrainedLogitsProcessor(make_prefix_allowed_tokens_fn(trie, 1), num_beams=beams)
                naive_mask_ms = _per_step_mask_ms(naive, trie, codes, rows, device, repeats=3)
        median = {name: statistics.median(values) for name, values in times.items()}
        result = {
            "items": num_items,
            "build_s": build_s,
            "nodes": trie.num_nodes,
            "median_s": median,
            "all_s": times,
            "ratio_trie": median["trie"] / median["unconstrained"],
            "ratio_naive": median.get("prefix_allowed_tokens_fn", float("nan")) / median["unconstrained"],
            # the constraint's own share of the timed generate calls: a noise-robust estimate of ratio - 1
            "share_in_generate": {name: p.seconds / sum(times[name]) for name, p in timed.items()},
            "mask_ms_by_depth": mask_ms,
            "naive_mask_ms_by_depth": naive_mask_ms,
            "steps": {name: out.sequences.shape[1] - 1 for name, out in outputs.items()},
            "invalid_rate": {name: _invalid_rate(trie, out) for name, out in outputs.items()},
        }
        results.append(result)
        print(f"  medians {', '.join(f'{k} {v:.3f}s' for k, v in median.items())}", flush=True)

    print()
    print(
        f"T5 4+4 layers d_model 128, vocab {VOCAB}; {users} users x {history * 4} encoder tokens, beam {beams}, "
        f"{beams} returned; median of {repeats} generate calls; device {device}"
    )
    print()
    print(
        "| items | trie build (s) | nodes | unconstrained (s) | trie (s) | trie / unconstr. | prefix_fn (s) "
        "| prefix_fn / unconstr. | mask per step (ms) | prefix_fn per step (ms) | constraint share of generate: "
        "trie / prefix_fn | invalid: unconstr. / trie / prefix_fn |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        m, inv = r["median_s"], r["invalid_rate"]
        naive = m.get("prefix_allowed_tokens_fn")
        naive_s = "skipped" if naive is None else f"{naive:.3f}"
        naive_ratio = "" if naive is None else f"{r['ratio_naive']:.2f}"
        naive_ms = "" if r["naive_mask_ms_by_depth"] is None else f"{statistics.mean(r['naive_mask_ms_by_depth']):.1f}"
        mask = r["mask_ms_by_depth"]
        share = r["share_in_generate"]
        naive_share = f"{share['prefix_allowed_tokens_fn']:.2%}" if "prefix_allowed_tokens_fn" in share else ""
        print(
            f"| {r['items']:,} | {r['build_s']:.2f} | {r['nodes']:,} | {m['unconstrained']:.3f} | {m['trie']:.3f} "
            f"| {r['ratio_trie']:.3f} | {naive_s} | {naive_ratio} | {statistics.mean(mask):.2f} (max {max(mask):.2f}) "
            f"| {naive_ms} | {share['trie']:.2%} / {naive_share} | {inv['unconstrained']:.3f} / {inv['trie']:.3f} / "
            f"{inv.get('prefix_allowed_tokens_fn', float('nan')):.3f} |"
        )
    if json_path:
        atomic_write_json(json_path, {"machine": machine_description(device), "results": results})
    return results


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogs", default="10000,100000,1000000", help="comma-separated catalog sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed generate calls per method (median reported)")
    parser.add_argument("--users", type=int, default=64, help="batch size (users)")
    parser.add_argument("--history", type=int, default=20, help="items per user in the encoder input (4 tokens each)")
    parser.add_argument("--beams", type=int, default=20, help="num_beams = num_return_sequences")
    parser.add_argument(
        "--naive_max_items", type=int, default=None, help="skip prefix_allowed_tokens_fn above this catalog size"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


if __name__ == "__main__":
    args = make_parser().parse_args()
    main(
        catalogs=[int(x) for x in args.catalogs.split(",")],
        repeats=args.repeats,
        users=args.users,
        history=args.history,
        beams=args.beams,
        naive_max_items=args.naive_max_items,
        threads=args.threads,
        device=args.device,
        seed=args.seed,
        json_path=args.json,
    )
