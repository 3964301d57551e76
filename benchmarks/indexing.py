"""Indexing scale benchmark: wall time and peak memory of the collaborative and semantic-rq indexers.

Synthetic catalogs (BENCHMARK.md: 100k and 1M items, 10 interactions per item, i.e. 1M items / 10M interactions):
items belong to communities of ~1000 items, item popularity is power-law (Zipf), and each user draws most items from
a home community and the rest from the whole catalog. Semantic-rq gets 32-dim synthetic content vectors (community
centre + noise) saved as an ``.npy`` aligned with the items frame.

Every (method, size) runs in its own subprocess, so peak memory is the child's peak resident set size
(``resource.getrusage``: numpy/scipy/ARPACK allocations included, unlike tracemalloc). The peak includes the
synthetic data and the Python lists of training sequences the indexer API takes; ``rss before fit`` shows that part.

    python benchmarks/indexing.py --sizes 100000 --methods collaborative,semantic-rq
    python benchmarks/indexing.py --sizes 1000000 --methods collaborative --threads 2
    python benchmarks/indexing.py --sizes 100000,1000000 --semantic-options '{"quantizer": "rqkmeans"}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COMMUNITY_SIZE = 1000


def synthetic_catalog(num_items: int, num_interactions: int, seed: int = 0, mean_length: int = 20):
    """Item ids, training sequences and 32-dim content vectors, generated with vectorised numpy.

    Returns ``(item_ids, sequences, embeddings)``; sequences reference the same id string objects (no copies).
    """
    rng = np.random.default_rng(seed)
    num_communities = max(1, num_items // COMMUNITY_SIZE)
    community = np.arange(num_items) * num_communities // num_items  # contiguous communities
    weight = 1.0 / (rng.permutation(num_items) + 1.0) ** 0.8  # Zipf-like popularity, random ranks
    cum = np.cumsum(weight)
    starts = np.searchsorted(community, np.arange(num_communities))  # first item of each community
    ends = np.r_[starts[1:], num_items]
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    hi = cum[ends - 1]

    lengths = rng.integers(mean_length // 4, 2 * mean_length - mean_length // 4 + 1, size=num_interactions // 5)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), num_interactions) + 1]
    lengths[-1] -= int(lengths.sum()) - num_interactions  # exactly num_interactions in total
    lengths = lengths[lengths > 0]
    num_users = len(lengths)
    home = np.searchsorted(hi, rng.random(num_users) * cum[-1])  # home community ~ its total popularity
    user_home = np.repeat(home, lengths)
    from_home = rng.random(num_interactions) < 0.7
    u = rng.random(num_interactions)
    target = np.where(from_home, lo[user_home] + u * (hi[user_home] - lo[user_home]), u * cum[-1])
    codes = np.minimum(np.searchsorted(cum, target, side="right"), num_items - 1)

    ids = np.array([f"i{i}" for i in range(num_items)], dtype=object)
    sequences = [chunk.tolist() for chunk in np.split(ids[codes], np.cumsum(lengths)[:-1])]
    centres = rng.normal(size=(num_communities, 32)).astype(np.float32)
    embeddings = centres[community] + 0.5 * rng.normal(size=(num_items, 32)).astype(np.float32)
    return ids.tolist(), sequences, embeddings


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): unlike wall time, not inflated by other jobs on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(spec: dict) -> dict:
    """One measured run (called in a fresh subprocess)."""
    import pandas as pd

    from genrec.indexing import INDEXERS, build_indexer

    if spec["method"] not in INDEXERS:
        raise SystemExit(f"indexer {spec['method']!r} is not registered (available: {sorted(INDEXERS)})")
    item_ids, sequences, embeddings = synthetic_catalog(spec["items"], spec["interactions"], spec["seed"])
    items = pd.DataFrame({"item_id": item_ids, "title": ""})
    options = dict(spec["options"])
    if spec["method"] == "semantic-rq":
        path = Path(spec["workdir"]) / f"embeddings_{spec['items']}.npy"
        np.save(path, embeddings)
        options["embeddings_file"] = str(path)
    del embeddings
    rss_before = _rss_mib()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    index = build_indexer(spec["method"], seed=spec["seed"], **options).fit(items, sequences)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "method": spec["method"],
        "items": spec["items"],
        "interactions": sum(map(len, sequences)),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": peak,
        "rss_before_fit_mib": rss_before,
        "unique": len(set(index.identifiers)) == len(index),
        "new_tokens": len(index.new_tokens),
        "stats": _summary(spec["method"], index.stats),
    }


def _summary(method: str, stats: dict) -> str:
    if method == "collaborative":
        keys = [
            "levels",
            "identifier_lengths",
            "leaves",
            "leaf_size_max",
            "num_tokens",
            "graph_edges",
            "isolated_items",
            "chunk_splits",
        ]
    else:
        keys = ["quantizer", "collision_rate_before_dedup", "max_group_size_before_dedup", "suffix_size"]
    return ", ".join(
        f"{k}={stats[k]:.4g}" if isinstance(stats[k], float) else f"{k}={stats[k]}" for k in keys if k in stats
    )


def main(
    sizes: list[int],
    methods: list[str],
    interactions_per_item: int,
    seed: int,
    threads: int,
    semantic_options: dict,
    collaborative_options: dict,
    timeout: float,
    json_out: str | None,
) -> list[dict]:
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    repo = str(Path(__file__).resolve().parents[1])  # import this checkout's genrec, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    results = []
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"{threads} BLAS/OpenMP threads, no GPU used",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as workdir:
        for size in sizes:
            for method in methods:
                options = semantic_options if method == "semantic-rq" else collaborative_options
                spec = {
                    "method": method,
                    "items": size,
                    "interactions": size * interactions_per_item,
                    "seed": seed,
                    "options": options,
                    "workdir": workdir,
                }
                cmd = [sys.executable, __file__, "--run-one", json.dumps(spec)]
                print(f"running {method} on {size} items ...", flush=True)
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
                except subprocess.TimeoutExpired:
                    results.append({"method": method, "items": size, "error": f"timeout after {timeout:.0f}s"})
                    continue
                if proc.returncode != 0:
                    results.append({"method": method, "items": size, "error": proc.stderr.strip()[-300:]})
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append(r)
                print(
                    f"  {r['seconds']:.1f}s wall, {r['cpu_seconds']:.1f}s CPU, {r['peak_rss_mib']:.0f} MiB", flush=True
                )
    print()
    columns = ["method", "items", "interactions", "wall time (s)", "CPU time (s)", "peak RSS (MiB)",
               "RSS before fit (MiB)", "stats"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        if "error" in r:
            cells = [r["method"], r["items"], "", "", "", "", "", "error: " + r["error"].splitlines()[-1]]
        else:
            cells = [r["method"], r["items"], r["interactions"], f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}",
                     f"{r['peak_rss_mib']:.0f}", f"{r['rss_before_fit_mib']:.0f}", r["stats"]]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if json_out:
        Path(json_out).write_text(json.dumps(results, indent=2, sort_keys=True))
    return results


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated catalog sizes (items).")
    parser.add_argument("--methods", default="collaborative,semantic-rq", help="Comma-separated indexing methods.")
    parser.add_argument("--interactions-per-item", type=int, default=10, help="Interactions = items x this.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads per run (the target is 2 cores).")
    parser.add_argument(
        "--semantic-options",
        type=json.loads,
        default={"quantizer": "rqkmeans"},
        help="JSON options for semantic-rq (embeddings_file is set by the benchmark).",
    )
    parser.add_argument("--collaborative-options", type=json.loads, default={}, help="JSON options for collaborative.")
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds before a run is stopped.")
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    args = make_parser().parse_args()
    if args.run_one:
        print(json.dumps(run_one(json.loads(args.run_one))))
    else:
        main(
            [int(s) for s in args.sizes.split(",")],
            [m.strip() for m in args.methods.split(",")],
            args.interactions_per_item,
            args.seed,
            args.threads,
            args.semantic_options,
            args.collaborative_options,
            args.timeout,
            args.json_out,
        )
