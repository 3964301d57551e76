"""RecBole 1.2.1's SASRec on ML-100K with the genrec split, to check that genrec's SASRec baseline is not weak.

RecBole is a benchmark-only tool, not a genrec dependency: it needs numpy < 2 and pandas < 2.2, so it lives in its
own virtualenv. Run it there (this script imports RecBole, never genrec)::

    python -m venv .venv-recbole
    .venv-recbole/bin/pip install torch==2.13.0 recbole==1.2.1 "numpy==1.26.*" "pandas<2.2" "setuptools<70"
    .venv-recbole/bin/python benchmarks/recbole_sasrec.py --seeds 0 1 2 --out runs/recbole/sasrec.json

(setuptools < 70: RecBole's own ray import needs the ``pkg_resources`` that newer setuptools dropped.) Without that
virtualenv the script also runs on numpy 2 and pandas 3 with RecBole installed beside them without its dependencies
(``pip install --no-deps --target DIR recbole==1.2.1 colorlog==4.7.2 thop texttable``, then ``PYTHONPATH=DIR``, with
tensorboard and absl-py present): it restores numpy's three removed type aliases and stands in for ray, which
RecBole imports only for hyper-parameter search. (pandas 3 also turns RecBole's in-place ``fillna`` on a column into
a no-op with a ChainedAssignmentError warning; ML-100K has no missing values, so nothing changes.) That is how to run
it on a GPU image (``--device cuda``).

On CPU a RecBole epoch is ~97k prefix sequences of length 50 in batches of 2048; measured with the profiler on one
thread (2026-12-04, beside two other runs on 2 cores), a batch took 12-24 s, so an epoch of 48 batches takes 10-20
minutes there and a seed hours to days. On one H200 (2026-12-04) three seeds side by side took 168-222 s each
(``--device cuda --threads 4 --time-limit 430``; early stopping after 24-36 epochs); RESULTS.md, "genrec's SASRec
vs RecBole 1.2.1's SASRec", has them beside genrec's SASRec (``benchmarks/sasrec_modes.py``). ``--time-limit``
stops training at the next validation once the time is spent, so a run on borrowed GPU time still ends with a test
result (the JSON says when that happened).

Config: RecBole's own SASRec and overall defaults (hidden 64, 2 blocks, 2 heads, dropout 0.5, CE loss, max length
50, batch 2048, Adam 1e-3, early stopping after 10 epochs on MRR@10; no negative sampling, which RecBole requires
with CE), except the split, which is the genrec protocol: order by timestamp, leave-one-out (last item test,
second-last validation), full ranking, K in 5/10/20. RecBole does not remove a user's history from the ranking for
sequential models, so compare its numbers with the "seen items not excluded" table. The data is the ML-100K copy
shipped inside the recbole wheel, the same files ``genrec prepare movielens-100k`` reads offline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import torch
import yaml

# RecBole 1.2.1 reloads its own checkpoint with a bare torch.load; torch >= 2.6 defaults to weights_only=True,
# which refuses the pickled config RecBole stores beside the weights.
_torch_load = torch.load


def _load_trusted(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load_trusted

try:
    import ray  # noqa: F401
except ImportError:
    # recbole.quick_start imports ray.tune for hyper-parameter search only, which this script never runs; ray is a
    # large install (and absent on the GPU image), so an empty stand-in lets run_recbole import without it.
    sys.modules["ray"] = types.ModuleType("ray")
    sys.modules["ray"].tune = types.ModuleType("ray.tune")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# RecBole 1.2.1 re-creates numpy's old type aliases from np.float_, np.complex_ and np.unicode_, which numpy 2
# removed; with these three restored it runs on numpy 2 too (the GPU image has numpy 2 and no numpy 1.26 for its
# Python). They only name existing types: no arithmetic changes.
for _alias, _type in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}.items():
    if not hasattr(np, _alias):
        setattr(np, _alias, _type)

import recbole  # noqa: E402
from recbole.quick_start import run_recbole  # noqa: E402  (after the torch.load patch)

SPLIT = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


def stop_at(deadline: float | None) -> dict:
    """Make RecBole's early stopping also stop once ``deadline`` (a perf_counter time) has passed.

    RecBole has no wall-clock budget; on a lent GPU with minutes of time, a run cut off by a kill leaves no test
    result at all. Stopping here keeps its own end of training: the best validation checkpoint is reloaded and tested.
    Returns counters the caller records, so a run stopped this way says so.
    """
    import recbole.trainer.trainer as trainer_module

    state = {"evaluations": 0, "stopped_at_time_limit": False}
    # RecBole's own function, also when an earlier seed of this process already wrapped it
    original = getattr(trainer_module.early_stopping, "__wrapped__", trainer_module.early_stopping)

    def early_stopping(*args, **kwargs):
        best, cur_step, stop_flag, update_flag = original(*args, **kwargs)
        state["evaluations"] += 1
        if deadline is not None and not stop_flag and time.perf_counter() > deadline:
            stop_flag = state["stopped_at_time_limit"] = True
        return best, cur_step, stop_flag, update_flag

    early_stopping.__wrapped__ = original
    trainer_module.early_stopping = early_stopping
    return state


def run(
    seed: int,
    threads: int,
    checkpoint_dir: str,
    device: str,
    epochs: int | None,
    time_limit: float | None = None,
    overrides: dict | None = None,
) -> dict:
    torch.set_num_threads(threads)
    config = {
        "seed": seed,
        "reproducibility": True,
        "gpu_id": "0" if device == "cuda" else "",  # RecBole picks the GPU from gpu_id, not from "device"
        "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
        "checkpoint_dir": checkpoint_dir,
        "eval_args": SPLIT,
        "metrics": ["Recall", "NDCG", "MRR"],  # MRR@10 is RecBole's default early-stopping metric
        "topk": [5, 10, 20],
        "show_progress": False,
        "train_neg_sample_args": None,  # RecBole refuses its own default (1 uniform negative) with loss_type CE
    }
    if epochs is not None:
        config["epochs"] = epochs
    config.update(overrides or {})
    start = time.perf_counter()
    stopping = stop_at(start + time_limit if time_limit else None)
    result = run_recbole(model="SASRec", dataset="ml-100k", config_dict=config)
    metrics = {key.lower(): float(value) for key, value in result["test_result"].items()}
    return {
        "seed": seed,
        **metrics,
        "best_valid_mrr@10": float(result["best_valid_score"]),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "device": torch.cuda.get_device_name() if device != "cpu" else "cpu",
        "epochs_cap": epochs,
        "epochs_evaluated": stopping["evaluations"],
        "stopped_at_time_limit": stopping["stopped_at_time_limit"],
        "config_overrides": overrides or {},
        "recbole": recbole.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "torch": torch.__version__,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds to run (default 0 1 2).")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads.")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="Where RecBole trains (default cpu).")
    parser.add_argument(
        "--epochs", type=int, help="Cap on epochs, for a smoke run only; default: RecBole's own (300, early stopping)."
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="Seconds after which training stops at the next validation as if early stopping had fired; the best "
        "checkpoint is still tested and the JSON records stopped_at_time_limit. Default: no limit.",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override one RecBole config key (VALUE read as YAML), e.g. hidden_size=8 for a smoke run; repeatable.",
    )
    parser.add_argument("--out", default="runs/recbole/sasrec.json", help="JSON file the runs are written to.")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--config takes KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.chdir(out.parent)  # RecBole writes log/ and saved/ under the working directory
    runs = json.loads(out.read_text()) if out.exists() else []
    done = {r["seed"] for r in runs}
    for seed in args.seeds:
        if seed in done:
            continue
        checkpoints = str(out.parent / "checkpoints")
        runs.append(run(seed, args.threads, checkpoints, args.device, args.epochs, args.time_limit, overrides))
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(runs, indent=1))
        tmp.replace(out)  # each finished seed survives an interrupted run
    keys = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
    print("| seed | " + " | ".join(keys) + " | wall s |")
    print("|---" * (len(keys) + 2) + "|")
    for r in sorted(runs, key=lambda r: r["seed"]):
        print(f"| {r['seed']} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + f" | {r['wall_seconds']:.0f} |")
    for k in keys:
        values = torch.tensor([r[k] for r in runs], dtype=torch.float64)
        std = values.std().item() if len(values) > 1 else 0.0
        print(f"{k}: {values.mean().item():.4f} ± {std:.4f} over {len(runs)} seeds")


if __name__ == "__main__":
    main()
