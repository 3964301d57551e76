"""Quality benchmark: every model in MODELS trained and scored with the shared harness on ML-100K (or --data DIR).

Protocol (BENCHMARK.md): leave-one-out, full-catalog ranking, seen items not excluded, all users of the test split.
Models are rows of :data:`MODELS` (name → ``fit(split, seed) -> (recommender, train_seconds)``); the generative
recipes are added there as more rows.

    python benchmarks/quality.py                                   # Pop + SASRec on ML-100K, seed 0
    python benchmarks/quality.py --seeds 3 --threads 1 --json results/quality.json
    python benchmarks/quality.py --data /tmp/ml100k --only pop     # a prepared dataset (`genrec prepare`)
    python benchmarks/quality.py --only sasrec --sasrec training_mode=prefix --sasrec batch_size=2048
    python benchmarks/quality.py --only tiger_t5,p5_sid_t5 --recipe max_steps=2000 --recipe eval_steps=500
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from genrec.baselines import PopularityRecommender, SASRecConfig, SASRecRecommender
from genrec.data import InteractionData, LeaveOneOutSplit, leave_one_out
from genrec.evaluation import DEFAULT_KS, evaluate
from genrec.utils import atomic_write_json

logger = logging.getLogger("benchmarks.quality")

FitFn = Callable[[LeaveOneOutSplit, int], tuple[object, float]]


def fit_pop(split: LeaveOneOutSplit, seed: int) -> tuple[PopularityRecommender, float]:
    started = time.perf_counter()
    model = PopularityRecommender().fit(split)
    return model, time.perf_counter() - started


def fit_sasrec(split: LeaveOneOutSplit, seed: int, **options) -> tuple[SASRecRecommender, float]:
    started = time.perf_counter()
    model = SASRecRecommender().fit(split, SASRecConfig.from_dict({**options, "seed": seed}))
    return model, time.perf_counter() - started


RECIPES_DIR = Path(__file__).resolve().parents[1] / "train" / "configs"
# Generative recipes run by default (the LLM ones need --only and a budget; see model_cards/RESULTS.md).
DEFAULT_RECIPES = ("tiger_t5",)


def fit_recipe(
    split: LeaveOneOutSplit, seed: int, recipe: str, data: InteractionData, output_root: str, overrides: dict
) -> tuple[object, float]:
    """Train ``train/configs/<recipe>.yaml`` (with ``overrides``) on ``data``; the split is the harness's own."""
    from genrec.training import RecipeConfig, run_recipe

    cfg = RecipeConfig.from_yaml(
        str(RECIPES_DIR / f"{recipe}.yaml"),
        **{**overrides, "seed": seed, "output_dir": f"{output_root}/{recipe}-{seed}"},
    )
    cfg.evaluate_test = False  # the benchmark scores the test split itself, on the same users as every other row
    recommender, metrics = run_recipe(cfg, command=f"benchmarks/quality.py --only {recipe}", data=data)
    return recommender, metrics["train_seconds"]


# name → fit(split, seed) returning (recommender, train seconds); recipes are added in main().
MODELS: dict[str, FitFn] = {
    "pop": fit_pop,
    "sasrec": fit_sasrec,
}


def main(
    data: str | None = None,
    seeds: int = 1,
    first_seed: int = 0,
    only: list[str] | None = None,
    json_path: str | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    sasrec_options: dict | None = None,
    threads: int | None = None,
    max_users: int | None = None,
    recipe_overrides: dict | None = None,
    output_root: str = "runs/quality",
) -> dict:
    if threads:
        torch.set_num_threads(threads)

        dataset = InteractionData.load(data)
    else:
        from genrec.data.datasets import load_named_dataset

        dataset = load_named_dataset("movielens-100k")
    split = leave_one_out(dataset)
    print(f"dataset {dataset.name}: {dataset.stats()}", file=sys.stderr)

    models = dict(MODELS)
    if sasrec_options:
        models["sasrec"] = partial(fit_sasrec, **sasrec_options)
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        models[path.stem] = partial(
            fit_recipe, recipe=path.stem, data=dataset, output_root=output_root, overrides=recipe_overrides or {}
        )
    names = only or ["pop", "sasrec", *DEFAULT_RECIPES]
    unknown = [n for n in names if n not in models]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {sorted(models)}")

    runs: dict[str, list[dict]] = {}
    for name in names:
        for seed in range(first_seed, first_seed + seeds):
            model, train_seconds = models[name](split, seed)
            metrics = evaluate(model, split, "test", ks=ks, max_users=max_users, progress=False)
            metrics.update(seed=seed, train_seconds=train_seconds)
            if getattr(model, "best_epoch", None) is not None:
                metrics.update(best_epoch=model.best_epoch, epochs=len(model.history))
            runs.setdefault(name, []).append(metrics)
            print(f"{name} seed {seed}: {json.dumps(metrics, sort_keys=True)}", file=sys.stderr)

    summary = {name: _mean(results, ks) for name, results in runs.items()}
    print(format_markdown(summary, ks, seeds))
    result = {
        "dataset": dataset.name,
        "stats": dataset.stats(),
        "protocol": "leave-one-out, full ranking, exclude_seen=False, test split",
        "seeds": list(range(first_seed, first_seed + seeds)),
        "sasrec_options": sasrec_options or {},
        "recipe_overrides": recipe_overrides or {},
        "machine": _machine(),
        "command": " ".join(sys.argv),
        "summary": summary,
        "runs": runs,
    }
    if json_path:
        atomic_write_json(json_path, result)
    return result


def _mean(results: list[dict], ks) -> dict:
    keys = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks] + ["invalid_rate", "train_seconds"]
    out = {key: statistics.fmean(r[key] for r in results) for key in keys}
    if len(results) > 1:
        out.update({f"{key}_std": statistics.stdev(r[key] for r in results) for key in keys})
    out["num_users"] = results[0]["num_users"]
    return out


def format_markdown(summary: dict, ks, seeds: int) -> str:
    """Markdown table; with several seeds each cell is mean ± standard deviation."""
    header = ["model"] + [f"R@{k}" for k in ks] + [f"N@{k}" for k in ks] + ["invalid", "users", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cell(m, key, digits=4):
        text = f"{m[key]:.{digits}f}"
        return text + (f" ± {m[key + '_std']:.{digits}f}" if seeds > 1 and key + "_std" in m else "")

    for name, m in summary.items():
        cells = [name] + [cell(m, f"recall@{k}") for k in ks] + [cell(m, f"ndcg@{k}") for k in ks]
        cells += [f"{m['invalid_rate']:.4f}", str(m["num_users"]), cell(m, "train_seconds", 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="prepared dataset directory (default: ML-100K via load_named_dataset)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds per model (3 for claims)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first_seed .. first_seed+N-1")
    parser.add_argument(
        "--only",
        help="comma-separated model names: pop, sasrec, or a recipe name from train/configs "
        f"(default: pop,sasrec,{','.join(DEFAULT_RECIPES)})",
    )
    parser.add_argument("--json", dest="json_path", help="write summary + per-seed metrics here")
    parser.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="cut-offs, e.g. 5,10,20")
    parser.add_argument(
        "--sasrec",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="SASRecConfig override (repeatable), e.g. --sasrec training_mode=prefix",
    )
    parser.add_argument(
        "--recipe",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="RecipeConfig override for every recipe row (repeatable), e.g. --recipe max_steps=500",
    )
    parser.add_argument("--output-root", default="runs/quality", help="where recipe runs write checkpoints/bundles")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--max-users", type=int, help="evaluate a seeded sample of users (default: all)")
    return parser


if __name__ == "__main__":
    args = make_parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main(
        data=args.data,
        seeds=args.seeds,
        first_seed=args.first_seed,
        only=args.only.split(",") if args.only else None,
        json_path=args.json_path,
        ks=tuple(int(k) for k in args.ks.split(",")),
        sasrec_options=dict(args.sasrec) or None,
        threads=args.threads,
        max_users=args.max_users,
        recipe_overrides=dict(args.recipe) or None,
        output_root=args.output_root,
    )
