"""``genrec demo``: ML-100K end to end on a CPU in minutes.

prepare → independent index (one new token per item) → a small decoder-only transformer trained from scratch in
sequence mode (the ``causal_independent`` recipe with a demo time budget) → evaluate in the shared harness beside Pop
and SASRec → ``results.json`` and sample recommendations with titles.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from genrec.baselines import fit_baseline
from genrec.data import InteractionData, leave_one_out
from genrec.evaluation import evaluate, format_table
from genrec.training import recipe_from_dict, run_recipe
from genrec.utils import atomic_write_json

logger = logging.getLogger(__name__)

# SASRec's fast default (seq2seq, 50-item windows without overlap) keeps the demo short; it scores ~10% below
# RecBole's SASRec on ML-100K. benchmarks/quality.py compares against overlapping windows (window_stride 2).
DEMO_SASREC = {"max_epochs": 60}
GENERATIVE = "causal_independent (generative)"

# train/configs/causal_independent.yaml as it is (36 epochs, 2,016 steps; its 3-seed CPU benchmark runs scored test
# N@10 0.0653), with a tighter time cap so that the demo stays under 15 minutes on slower machines (the best
# checkpoint so far is kept). Batches of similar-length windows would be ~20% cheaper, but the one demo run with them
# scored 0.0572 against the recipe's 0.0662 then (seed 0, 30 epochs), so the demo does not use them. tiger_causal
# scores higher (0.0685) but trains ~1.7x longer, which does not fit the demo's 15 minutes.
DEMO_MINUTES = 12
DEMO_RECIPE = dict(
    name="demo_causal_independent",
    mode="sequence",
    index_method="independent",
    backbone="causal-scratch",
    template_style="sequence",
    history_separator="",
    max_history=50,
    causal_num_layers=2,
    causal_hidden_size=128,
    causal_num_heads=4,
    causal_intermediate_size=256,
    causal_dropout=0.5,
    tokenizer_vocab_size=200,
    num_train_epochs=36,
    per_device_train_batch_size=64,
    learning_rate=2e-3,
    warmup_steps=100,
    lr_scheduler_type="cosine",
    eval_steps=240,
    logging_steps=100,
    eval_num_beams=20,
    early_stopping_patience=10,
    save_total_limit=1,
    max_train_minutes=DEMO_MINUTES,
)


def run_demo(out: str | Path = "genrec-demo", quick: bool = False, seed: int = 0) -> dict:
    """Run the demo in ``out`` (``seed`` seeds the generative model and SASRec); returns the metrics table rows
    (model name → metrics)."""
    start = time.time()
    out = Path(out)
    data_dir = out / "data"
    if not (data_dir / "meta.json").is_file():
        from genrec.data.prepare import prepare_dataset

        prepare_dataset("movielens-100k").save(data_dir)
    data = InteractionData.load(data_dir)
    split = leave_one_out(data)
    print(f"[1/4] data: {data.stats()}")

    overrides = {"data": str(data_dir), "output_dir": str(out / "causal_independent"), "seed": seed}
    if quick:
        overrides.update(max_steps=30, eval_steps=30, eval_max_users=50, test_max_users=100)
    recipe = recipe_from_dict({**DEMO_RECIPE, **overrides})
    cfg = recipe.config
    train = recipe.training
    length = f"{train.max_steps} steps" if train.max_steps > 0 else f"{train.num_train_epochs:g} epochs"
    budget = f"{length}, cosine decay, best validation NDCG@10 kept"
    print(f"[2/4] {cfg.index_method} index + decoder-only transformer in sequence mode ({budget}) ...")
    recommender, generative_metrics = run_recipe(recipe, command="genrec demo")
    rows = {GENERATIVE: generative_metrics}

    print("[3/4] baselines in the same harness ...")
    users = cfg.test_max_users
    for name, method in (("Pop", "pop"), ("SASRec", "sasrec")):
        t0 = time.time()
        options = {"seed": seed, **({"max_epochs": 3} if quick else DEMO_SASREC)} if method == "sasrec" else {}
        baseline = fit_baseline(method, split, **options)
        rows[name] = evaluate(baseline, split, "test", max_users=users)
        rows[name]["train_seconds"] = round(time.time() - t0, 1)

    print("\n[4/4] results: ML-100K test split, leave-one-out, full-catalog ranking")
    if users:
        print(f"(all models scored on the same fixed sample of {users} test users)")
    print(format_table(rows))
    print("\ntraining time (s): " + ", ".join(f"{name} {m.get('train_seconds', 0):.0f}" for name, m in rows.items()))
    print(
        "SASRec here is its fast seq2seq mode, ~10% below RecBole's SASRec on ML-100K; the benchmark compares against "
        "the stronger overlapping-window SASRec (model_cards/RESULTS.md)."
    )

    results = out / "results.json"
    atomic_write_json(results, {name: _result_entry(m) for name, m in rows.items()})
    print(f"metrics of every model: {results}")

    print(f"\nsample recommendations ({GENERATIVE}):")
    titles = data.titles()
    for user, history in list(zip(split.user_ids, split.histories("test")))[:3]:
        recs = recommender.recommend_scored([history], k=5)[0]
        print(f"user {user}: last watched " + "; ".join(titles.get(i, i) for i in history[-3:]))
        for r in recs:
            print(f"    {r.score:8.3f}  {r.title or r.item_id}  {r.identifier}")
    print(f"\ndemo finished in {time.time() - start:.0f}s; bundle: {recipe.output_dir}/bundle")
    return rows


def _result_entry(metrics: dict) -> dict:
    """The keys of ``genrec evaluate --json`` plus ``train_seconds``."""
    keys = [k for k in metrics if "@" in k] + ["invalid_rate", "num_users", "exclude_seen", "train_seconds"]
    return {k: metrics[k] for k in keys if k in metrics}
