"""``genrec demo``: ML-100K end to end on a CPU in minutes.

prepare → semantic-rq index (RQ-VAE over MiniLM title embeddings) → TIGER-style T5 trained from scratch with a fixed
step budget → evaluate in the shared harness beside Pop and SASRec → sample recommendations with titles.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from genrec.baselines import fit_baseline
from genrec.data import InteractionData, leave_one_out
from genrec.evaluation import evaluate, format_table
from genrec.training import recipe_from_dict, run_recipe

logger = logging.getLogger(__name__)

DEMO_STEPS = 800
DEMO_SASREC = {"max_epochs": 60}  # keeps the demo short; benchmarks/quality.py trains SASRec to convergence

# A CPU-sized TIGER: the semantic-rq index of the full recipe (train/configs/tiger_t5.yaml) and a smaller T5
# trained for a fixed number of steps, so the whole demo stays well under 15 minutes on 2 cores.
DEMO_RECIPE = dict(
    name="demo_tiger_t5",
    index_method="semantic-rq",
    index_options={"quantizer": "rqvae", "num_levels": 3, "codebook_size": 256, "dedup": "suffix"},
    backbone="t5-scratch",
    t5_num_layers=2,
    t5_num_decoder_layers=2,
    t5_d_model=128,
    t5_num_heads=4,
    t5_d_kv=32,
    t5_d_ff=512,
    template_style="tiger",
    history_separator="",
    tasks="seqrec",
    max_history=20,
    max_steps=DEMO_STEPS,
    eval_steps=DEMO_STEPS,
    per_device_train_batch_size=64,
    learning_rate=3e-3,
    warmup_steps=0.05,
    eval_max_users=200,
    eval_num_beams=20,
)


def run_demo(out: str | Path = "genrec-demo", quick: bool = False) -> dict:
    """Run the demo in ``out``; returns the metrics table rows (model name → metrics)."""
    start = time.time()
    out = Path(out)
    data_dir = out / "data"
    if not (data_dir / "meta.json").is_file():
        from genrec.data.prepare import prepare_dataset

        prepare_dataset("movielens-100k").save(data_dir)
    data = InteractionData.load(data_dir)
    split = leave_one_out(data)
    print(f"[1/4] data: {data.stats()}")

    overrides = {"data": str(data_dir), "output_dir": str(out / "tiger_t5")}
    if quick:
        overrides.update(max_steps=30, eval_steps=30, eval_max_users=50, test_max_users=100)
    recipe = recipe_from_dict({**DEMO_RECIPE, **overrides})
    cfg = recipe.config
    print(f"[2/4] index ({cfg.index_method}) + TIGER-style T5 ({recipe.training.max_steps} steps) ...")
    recommender, tiger_metrics = run_recipe(recipe, command="genrec demo")
    rows = {"TIGER-T5 (semantic-rq)": tiger_metrics}

    print("[3/4] baselines in the same harness ...")
    users = cfg.test_max_users
    for name, method in (("Pop", "pop"), ("SASRec", "sasrec")):
        t0 = time.time()
        options = ({"max_epochs": 3} if quick else DEMO_SASREC) if method == "sasrec" else {}
        baseline = fit_baseline(method, split, **options)
        rows[name] = evaluate(baseline, split, "test", max_users=users)
        rows[name]["train_seconds"] = round(time.time() - t0, 1)

    print("\n[4/4] results: ML-100K test split, leave-one-out, full-catalog ranking")
    if users:
        print(f"(all models scored on the same fixed sample of {users} test users)")
    print(format_table(rows))
    print("\ntraining time (s): " + ", ".join(f"{name} {m.get('train_seconds', 0):.0f}" for name, m in rows.items()))

    print("\nsample recommendations (TIGER-T5):")
    titles = data.titles()
    for user, history in list(zip(split.user_ids, split.histories("test")))[:3]:
        recs = recommender.recommend_scored([history], k=5)[0]
        print(f"user {user}: last watched " + "; ".join(titles.get(i, i) for i in history[-3:]))
        for r in recs:
            print(f"    {r.score:8.3f}  {r.title or r.item_id}  {r.identifier}")
    print(f"\ndemo finished in {time.time() - start:.0f}s; bundle: {recipe.output_dir}/bundle")
    return rows
