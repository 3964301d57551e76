"""The ``genrec`` command line: prepare | index | train | evaluate | baseline | recommend | demo.

Run ``genrec COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

logger = logging.getLogger("genrec")


def _ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return ks


def _positive_int(text: str) -> int:
    """argparse type: a count that must be at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


OVERWRITE_HELP = "Replace OUT even if it holds files genrec did not write (they are deleted). Default: refuse."


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# ---------------------------------------------------------------------------------------------- commands
def cmd_prepare(args) -> None:
    from genrec.data.prepare import prepare_dataset
    from genrec.data.schema import DATASET_KIND, is_prepared_dataset
    from genrec.utils import check_output_dir

    check_output_dir(args.out, DATASET_KIND, args.overwrite, is_prepared_dataset)  # before the slow part
    data = prepare_dataset(args.source, fmt=args.format)
    data.save(args.out, overwrite=args.overwrite)
    print(f"prepared {args.source} → {args.out}")
    _print_json(data.stats())


def cmd_index(args) -> None:
    from genrec.data import InteractionData, leave_one_out
    from genrec.indexing import build_indexer
    from genrec.indexing.base import is_index_file
    from genrec.utils import check_output_file

    options = _json_object(args.options, "--options") if args.options else {}
    check_output_file(args.out, "item index", is_index_file, args.overwrite)  # before the slow part
    try:
        indexer = build_indexer(args.method, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--method {args.method} --options {args.options or '{}'}: {err}") from None
    data = InteractionData.load(args.data)
    split = leave_one_out(data)
    start = time.time()
    index = indexer.fit(data.items, split.train)
    index.save(args.out, overwrite=args.overwrite)
    print(
        f"{args.method} index: {len(index)} items, {len(index.new_tokens)} new tokens, "
        f"fingerprint {index.fingerprint}, {time.time() - start:.1f}s → {args.out}"
    )
    if index.stats:
        _print_json(index.stats)


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} is not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object like '{{\"name\": value}}', got {text!r}")
    return value


def cmd_train(argv: list[str]) -> None:
    from genrec.training import run_recipe

    overwrite = "--overwrite" in argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    config = pre.parse_known_args(argv)[0].config
    if config and not os.path.isfile(config):
        raise FileNotFoundError(f"--config {config} not found (recipes live in train/configs/)")
    recipe = parse_train_args([a for a in argv if a != "--overwrite"])
    recipe.overwrite = overwrite
    from genrec.bundle import check_model_reference
    from genrec.training.config import SCRATCH_BACKBONES
    from genrec.training.recipe import claim_output_dir

    claim_output_dir(recipe.output_dir, overwrite, main_process=False)  # refuse before loading data and models
    if recipe.config.backbone not in SCRATCH_BACKBONES:  # a missing path or an unreachable hub id fails fast
        check_model_reference(recipe.config.backbone, "--backbone")
    command = "genrec train " + " ".join(argv)
    _, metrics = run_recipe(recipe, command=command)
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch, one process reports
        _print_json(metrics)


def train_help() -> str:
    """``genrec train --help`` without importing transformers: the genrec fields, then a pointer to the
    TrainingArguments flags that are accepted too."""
    import dataclasses

    from genrec.training.config import TRAINING_DEFAULTS, RecipeConfig

    parser = argparse.ArgumentParser(
        prog="genrec train",
        description=train_description(),
        epilog="Every field of transformers.TrainingArguments is a flag too (--learning_rate, --num_train_epochs, "
        "--max_steps, --per_device_train_batch_size, --eval_steps, --seed, --bf16, --resume_from_checkpoint ...). "
        "genrec's defaults for them: " + ", ".join(f"{k}={v}" for k, v in TRAINING_DEFAULTS.items()) + ".",
    )
    parser.add_argument("--config", help="Recipe YAML (train/configs/*.yaml); other flags override its fields.")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Train into an OUTPUT_DIR that holds files genrec did not write (default: refuse; a previous run's "
        "directory is reused and its bundle replaced).",
    )
    for f in dataclasses.fields(RecipeConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        parser.add_argument(f"--{f.name}", help=f"{f.metadata.get('help', '')} (default: {default!r})")
    return parser.format_help()


def parse_train_args(argv: list[str]):
    """``--config YAML`` plus field overrides → a :class:`~genrec.training.Recipe`. Flags are the fields of
    :class:`~genrec.training.RecipeConfig` and of transformers' ``TrainingArguments`` (HfArgumentParser)."""
    from transformers import HfArgumentParser, TrainingArguments

    from genrec.training import TRAINING_DEFAULTS, RecipeConfig, recipe_from_dict
    from genrec.training.config import read_yaml

    argv = ["--output_dir" if a == "--output" else a for a in argv]  # DESIGN.md spells it --output
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    parser = HfArgumentParser((RecipeConfig, TrainingArguments), prog="genrec train", description=train_description())
    parser.add_argument("--config", help="Recipe YAML (train/configs/*.yaml); other flags override its fields.")
    parser._option_string_actions["--index_options"].type = json.loads  # a JSON object on the command line
    parser.set_defaults(**TRAINING_DEFAULTS)
    if known.config:
        values = read_yaml(known.config)
        genrec_fields = {f.dest for f in parser._actions}
        unknown = sorted(set(values) - genrec_fields - {"decoder"})
        if unknown:
            raise ValueError(f"{known.config}: unknown recipe field(s) {unknown}; see `genrec train --help`")
        parser.set_defaults(**values)
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    return recipe_from_dict(values)


def train_description() -> str:
    return (
        "Train a generative recommender from a recipe: fit the item index on training interactions, extend the "
        "backbone's vocabulary, tune (mode prefix: Seq2SeqTrainer for T5, trl SFTTrainer for causal LMs; mode "
        "sequence: a causal LM on whole histories; mode set: SETRec; LoRA for pretrained backbones), validate with "
        "the harness (NDCG@10), keep the best checkpoint, and save a bundle to OUTPUT_DIR/bundle. Flags: the genrec "
        "fields below and every transformers TrainingArguments field (--learning_rate, --num_train_epochs, ...)."
    )


def cmd_evaluate(args) -> None:
    from genrec.data import InteractionData, leave_one_out
    from genrec.evaluation import evaluate, format_table, save_metrics
    from genrec.recommenders import GenerativeRecommender

    recommender = GenerativeRecommender.from_pretrained(args.model, device=args.device)
    split = leave_one_out(InteractionData.load(args.data))
    metrics = evaluate(
        recommender,
        split,
        args.split,
        ks=args.k,
        max_users=args.max_users,
        exclude_seen=args.exclude_seen,
        batch_size=args.batch_size,
        num_beams=args.beams,
    )
    print(format_table({args.model: metrics}, ks=sorted(args.k)))
    if args.json:
        save_metrics(metrics, args.json)


def cmd_baseline(args) -> None:
    from genrec.baselines import fit_baseline
    from genrec.data import InteractionData, leave_one_out
    from genrec.evaluation import evaluate, format_table, save_metrics

    split = leave_one_out(InteractionData.load(args.data))
    start = time.time()
    recommender = fit_baseline(args.method, split, seed=args.seed)
    seconds = time.time() - start
    metrics = evaluate(recommender, split, args.split, ks=args.k, exclude_seen=args.exclude_seen)
    metrics["train_seconds"] = round(seconds, 1)
    print(format_table({args.method: metrics}, ks=sorted(args.k)))
    if args.json:
        save_metrics(metrics, args.json)


def cmd_recommend(args) -> None:
    from genrec.inference import recommend_command

    recommend_command(
        args.model,
        args.input,
        args.output,
        k=args.k,
        num_beams=args.beams,
        batch_size=args.batch_size,
        exclude_seen=args.exclude_seen,
        on_error=args.on_error,
        unknown=args.unknown,
        resume=not args.no_resume,
        overwrite=args.overwrite,
    )


def cmd_demo(args) -> None:
    from genrec.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genrec",
        description="Generative recommendation with custom item tokens (indexers, LoRA alignment tuning, "
        "trie-constrained decoding).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="Turn a public dataset (name) or files (path) into the genrec schema.")
    p.add_argument("source", help="Dataset name (movielens-100k, movielens-1m, ...) or a path to raw files.")
    p.add_argument("--out", required=True, help="Output directory (written atomically).")
    p.add_argument("--format", default=None, help="Force the reader for a path (default: detected).")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("index", help="Fit an item index on a prepared dataset (training interactions only).")
    p.add_argument("--data", required=True, help="Prepared dataset directory.")
    p.add_argument(
        "--method",
        required=True,
        help="random, independent, title, sequential, collaborative, semantic-rq, set, hybrid.",
    )
    p.add_argument("--options", default=None, help='Indexer options as JSON, e.g. \'{"quantizer": "rqkmeans"}\'.')
    p.add_argument("--out", required=True, help="Index file (JSON).")
    p.add_argument("--overwrite", action="store_true", help="Replace OUT even if it is not an item index.")
    p.set_defaults(func=cmd_index)

    sub.add_parser(
        "train",
        help="Train a recipe: genrec train --config train/configs/tiger_t5.yaml [--field VALUE].",
        add_help=False,
    )

    p = sub.add_parser("evaluate", help="Score a saved bundle with the shared harness (full-catalog ranking).")
    p.add_argument("--model", required=True, help="Bundle directory (from genrec train).")
    p.add_argument("--data", required=True, help="Prepared dataset directory the model was trained on.")
    p.add_argument("--split", default="test", choices=["valid", "test"], help="Which held-out item to predict.")
    p.add_argument("--k", type=_ks, default=[5, 10, 20], help="Cut-offs, comma separated (default 5,10,20).")
    p.add_argument("--beams", type=_positive_int, default=None, help="Beam size (default: the bundle's, 20).")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="Users per generate call.")
    p.add_argument("--max-users", type=_positive_int, default=None, help="Evaluate a fixed random sample of users.")
    p.add_argument("--exclude-seen", action="store_true", help="Drop history items from the ranking (state it!).")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu).")
    p.add_argument("--json", default=None, help="Also write the metrics to this JSON file.")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="Fit and evaluate a baseline (pop or sasrec) in the same harness.")
    p.add_argument("--method", required=True, choices=["pop", "sasrec"], help="Baseline.")
    p.add_argument("--data", required=True, help="Prepared dataset directory.")
    p.add_argument("--split", default="test", choices=["valid", "test"], help="Split to report.")
    p.add_argument("--k", type=_ks, default=[5, 10, 20], help="Cut-offs (default 5,10,20).")
    p.add_argument("--seed", type=int, default=0, help="Random seed.")
    p.add_argument("--exclude-seen", action="store_true", help="Drop history items from the ranking.")
    p.add_argument("--json", default=None, help="Also write the metrics to this JSON file.")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("recommend", help="Batch next-item generation: JSONL histories in, JSONL rankings out.")
    p.add_argument("--model", required=True, help="Bundle directory.")
    p.add_argument("--input", required=True, help='JSONL, one {"user_id": ..., "history": [...]} per line.')
    p.add_argument(
        "--output",
        required=True,
        help="JSONL output, with OUTPUT.progress.json beside it; a rerun of the same job resumes it exactly.",
    )
    p.add_argument("--k", type=_positive_int, default=10, help="Items per user (capped at the catalog size).")
    p.add_argument("--beams", type=_positive_int, default=None, help="Beam size (default: the bundle's).")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="Users per generate call.")
    p.add_argument("--exclude-seen", action="store_true", help="Drop history items from the ranking.")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"], help="Malformed input lines.")
    p.add_argument("--unknown", default="drop", choices=["drop", "error"], help="Unknown item ids in a history.")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="Start the output over (needed when the input, model or options differ from the run that wrote it).",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Replace an --output file that genrec recommend did not write."
    )
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser(
        "demo",
        help="ML-100K end to end: prepare → index → train a decoder-only model (sequence mode, one token per item) "
        "→ evaluate vs Pop and SASRec → results.json and sample recommendations.",
    )
    p.add_argument("--out", default="genrec-demo", help="Working directory for data, index and models.")
    p.add_argument("--quick", action="store_true", help="A much smaller budget (a smoke run, numbers not meaningful).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the generative model and SASRec (default 0).")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv and argv[0] == "train":
            if "-h" in argv or "--help" in argv:
                print(train_help())
                return 0
            cmd_train(argv[1:])
            return 0
        args = build_parser().parse_args(argv)
        args.func(args)
    except (ValueError, KeyError, OSError) as err:
        logger.error("%s", err.args[0] if isinstance(err, KeyError) and err.args else err)
        if verbose:
            raise
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; nothing half-written was kept (genrec recommend resumes when rerun)")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
