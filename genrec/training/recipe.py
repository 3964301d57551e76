"""The steps every training mode shares: data → split → index → prompter → backbone with identifier tokens → (mode)
→ train with the harness as validation → test metrics → bundle. A mode (``genrec/training/<mode>.py``) supplies its
datasets, trainer and recommender, and registers with :func:`register_mode`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genrec.bundle import BUNDLE_KIND, CONFIG_NAME, is_bundle
from genrec.data import InteractionData, LeaveOneOutSplit, leave_one_out
from genrec.evaluation import evaluate
from genrec.indexing import ItemIndex, build_indexer
from genrec.models import (
    CAUSAL,
    SEQ2SEQ,
    CausalArchConfig,
    LoraSettings,
    T5ArchConfig,
    apply_lora,
    build_causal_lm,
    build_t5,
    load_backbone,
    train_sentencepiece_tokenizer,
)
from genrec.tasks import TEMPLATES, Prompter
from genrec.tokens import add_item_tokens, init_identifier_rows
from genrec.training.config import SCRATCH_BACKBONES, SCRATCH_T5, Recipe, RecipeConfig
from genrec.utils import check_output_dir, normalise_permissions, read_manifest, write_manifest

logger = logging.getLogger(__name__)

TRAINING_MODES: dict[str, Callable] = {}


def register_mode(name: str):
    """Function decorator: ``fn(recipe, command, data) -> (recommender, metrics)`` trains recipes of mode ``name``."""

    def decorator(fn):
        TRAINING_MODES[name] = fn
        return fn

    return decorator


@dataclass
class Prepared:
    """The start every recipe shares."""

    data: InteractionData
    split: LeaveOneOutSplit
    index: ItemIndex
    titles: dict[str, str]
    prompter: Prompter


@dataclass
class Backbone:
    """A backbone with the identifier tokens in its vocabulary (and LoRA when ``adapter``)."""

    model: object
    tokenizer: object
    kind: str
    adapter: bool


def load_data(data: str | None) -> InteractionData:
    if data is None:
        raise ValueError("a recipe needs `data`: a prepared dataset directory or a dataset name")
    if Path(data).is_dir():
        return InteractionData.load(data)
    from genrec.data.datasets import load_named_dataset

    return load_named_dataset(data)


def fit_index(cfg: RecipeConfig, data: InteractionData, split: LeaveOneOutSplit) -> ItemIndex:
    if cfg.index_file:
        index = ItemIndex.load(cfg.index_file)
        missing = set(split.catalog) - set(index.item_ids)
        if missing:
            raise ValueError(f"index {cfg.index_file} lacks {len(missing)} catalog items, e.g. {sorted(missing)[:3]}")
        return index
    start = time.time()
    index = build_indexer(cfg.index_method, **cfg.index_options).fit(data.items, split.train)
    logger.info("fitted %s index on %d items in %.1fs", cfg.index_method, len(index), time.time() - start)
    return index


def prepare_recipe(recipe: Recipe, data: InteractionData | None = None) -> Prepared:
    """Seed, data, split, index, titles and prompter. ``data`` (already loaded) takes the place of ``cfg.data``."""
    from transformers import set_seed

    cfg = recipe.config
    set_seed(recipe.training.seed)
    data = data if data is not None else load_data(cfg.data)
    split = leave_one_out(data)
    index = fit_index(cfg, data, split)
    titles = data.titles()
    prompter = Prompter(
        index,
        titles,
        cfg.template_style,
        cfg.max_history,
        cfg.max_title_history,
        cfg.history_separator,
        cfg.max_targets_per_user,
        cfg.history_crop,
        recipe.training.seed,
    )
    return Prepared(data, split, index, titles, prompter)


def build_backbone(cfg: RecipeConfig, prepared: Prepared) -> Backbone:
    """Backbone + tokenizer with the identifier tokens added (and LoRA for pretrained backbones)."""
    if cfg.backbone in SCRATCH_BACKBONES:
        tokenizer = train_sentencepiece_tokenizer(_tokenizer_corpus(prepared), cfg.tokenizer_vocab_size)
        add_item_tokens(tokenizer, prepared.index)
        if cfg.backbone == SCRATCH_T5:
            arch = T5ArchConfig(
                cfg.t5_num_layers,
                cfg.t5_num_decoder_layers,
                cfg.t5_d_model,
                cfg.t5_num_heads,
                cfg.t5_d_kv,
                cfg.t5_d_ff,
                cfg.t5_dropout,
            )
            backbone = Backbone(build_t5(tokenizer, arch), tokenizer, SEQ2SEQ, False)
        else:
            arch = CausalArchConfig(
                cfg.causal_num_layers,
                cfg.causal_hidden_size,
                cfg.causal_num_heads,
                cfg.causal_intermediate_size,
                cfg.causal_dropout,
                max_positions=max_sequence_tokens(cfg, prepared.index, tokenizer),
            )
            backbone = Backbone(build_causal_lm(tokenizer, arch), tokenizer, CAUSAL, False)
        _init_identifier_rows(cfg, prepared, backbone.model, tokenizer)
        return backbone
    model, tokenizer, kind = load_backbone(cfg.backbone, num_layers=cfg.backbone_layers)
    new_ids = add_item_tokens(tokenizer, prepared.index, model)
    _init_identifier_rows(cfg, prepared, model, tokenizer)
    if not cfg.use_lora:
        return Backbone(model, tokenizer, kind, False)
    settings = LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    return Backbone(apply_lora(model, kind, new_ids, settings), tokenizer, kind, True)


def _init_identifier_rows(cfg: RecipeConfig, prepared: Prepared, model, tokenizer) -> None:
    scratch = cfg.backbone in SCRATCH_BACKBONES
    rows = init_identifier_rows(
        model, tokenizer, prepared.index, cfg.item_token_init, prepared.titles, prepared.split.train, scratch
    )
    if rows:
        logger.info("initialised %d identifier-token rows (%s)", rows, cfg.item_token_init)


def max_sequence_tokens(cfg: RecipeConfig, index: ItemIndex, tokenizer) -> int:
    """Positions a scratch causal model needs: a start token plus ``max_history + 1`` identifiers and separators,
    or a whole prompt (prefix mode), with room to spare."""
    from genrec.tokens import identifier_token_ids

    longest = max(len(ids) for ids in identifier_token_ids(tokenizer, index))
    separator = len(tokenizer(cfg.history_separator, add_special_tokens=False)["input_ids"])
    return 64 + (cfg.max_history + 2) * (longest + separator)


def _tokenizer_corpus(prepared: Prepared) -> list[str]:
    """Text a scratch tokenizer must cover: titles, identifiers written as text, and the prompt words."""
    corpus = [t for t in prepared.data.items["title"] if t]
    corpus += [ident for ident in prepared.index.identifiers if not prepared.index.new_tokens]
    corpus += [t.replace("{", " ").replace("}", " ") for t in TEMPLATES[prepared.prompter.style].values()]
    return corpus


def tokenize_pairs(dataset, tokenizer, kind: str, max_prompt_tokens: int = 1024, decoder_prefixes=None):
    """(prompt, target) → model inputs. The target is tokenised alone, exactly as the decoding trie sees it. With
    :class:`~genrec.tokens.DecoderPrefixes` (T5, ``decoder_last_item``) each row's decoder starts from its
    ``last_item``'s prefix, which the loss skips."""
    eos = tokenizer.eos_token_id

    def encode(batch):
        prompts = tokenizer(batch["prompt"], truncation=True, max_length=max_prompt_tokens)["input_ids"]
        targets = tokenizer(batch["target"], add_special_tokens=False)["input_ids"]
        if kind == SEQ2SEQ and decoder_prefixes is not None:
            skipped = [-100] * (decoder_prefixes.width - 1)  # the prefix's last token predicts the target's first
            return {
                "input_ids": prompts,
                "decoder_input_ids": [decoder_prefixes(last) + t for last, t in zip(batch["last_item"], targets)],
                "labels": [skipped + t + [eos] for t in targets],
            }
        if kind == SEQ2SEQ:
            return {"input_ids": prompts, "labels": [t + [eos] for t in targets]}
        return {
            "input_ids": [p + t + [eos] for p, t in zip(prompts, targets)],
            "labels": [[-100] * len(p) + t + [eos] for p, t in zip(prompts, targets)],
        }

    tokenizer.truncation_side = "left"
    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenising")


def harness_options(cfg: RecipeConfig, prepared: Prepared, recommender) -> dict:
    """Keyword arguments of :class:`~genrec.training.trainers.HarnessEvaluationMixin` trainers."""
    return dict(
        split=prepared.split,
        recommender=recommender,
        eval_max_users=cfg.eval_max_users,
        num_beams=cfg.eval_num_beams,
    )


def training_args(cls, training, **extra):
    """The recipe's ``TrainingArguments`` as the class a trainer wants (``Seq2SeqTrainingArguments``, trl's
    ``SFTConfig``), plus that class's own fields in ``extra``."""
    values = {f.name: getattr(training, f.name) for f in dataclasses.fields(training) if f.init}
    return cls(**values, **extra)


def stopping_callbacks(cfg: RecipeConfig) -> list:
    """Early stopping on the validation metric, plus the ``max_train_minutes`` budget."""
    from transformers import EarlyStoppingCallback

    from genrec.training.trainers import TimeBudgetCallback

    callbacks = [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    if cfg.max_train_minutes:
        callbacks.append(TimeBudgetCallback(cfg.max_train_minutes * 60))
    return callbacks


def first_rows(dataset, limit: int | None):
    """The first ``limit`` rows of a ``datasets.Dataset`` (all of them when ``limit`` is None or 0): the one place
    the ``max_*_examples`` caps are applied."""
    return dataset.select(range(limit)) if limit and len(dataset) > limit else dataset


def validation_pairs(prompter: Prompter, split: LeaveOneOutSplit, index: ItemIndex, limit: int = 64):
    """A small (prompt, target) validation set: the Trainer needs an eval dataset, though the harness evaluation
    scores the validation split itself."""
    from datasets import Dataset

    histories, targets = split.histories("valid")[:limit], split.targets("valid")[:limit]
    return Dataset.from_dict(
        {
            "prompt": [prompter.seqrec_prompt(h) for h in histories],
            "target": [index.identifier(t) for t in targets],
            "last_item": [h[-1] for h in histories],
        }
    )


def bundle_fields(recipe: Recipe, backbone: Backbone, prepared: Prepared, command: str | None) -> dict:
    """The :class:`~genrec.bundle.BundleConfig` fields every recipe records (prompt settings, backbone, recipe)."""
    cfg = recipe.config
    return dict(
        kind=backbone.kind,
        index_fingerprint=prepared.index.fingerprint,
        template_style=cfg.template_style,
        max_history=cfg.max_history,
        max_title_history=cfg.max_title_history,
        separator=cfg.history_separator,
        base_model=None if cfg.backbone in SCRATCH_BACKBONES else cfg.backbone,
        adapter=backbone.adapter,
        base_model_layers=cfg.backbone_layers,
        num_beams=cfg.eval_num_beams,
        decoder_last_item=cfg.decoder_last_item,
        recipe={
            "name": cfg.name,
            "data": prepared.data.name,
            "backbone": cfg.backbone,
            "command": command or f"genrec train --config <{cfg.name}.yaml>",
            "config": dataclasses.asdict(cfg),
        },
    )


RUN_KIND = "training run"


def is_training_run(path: Path) -> bool:
    """A directory a training run wrote before outputs carried a manifest: a bundle or Trainer checkpoints."""
    return (path / "bundle" / CONFIG_NAME).is_file() or any(path.glob("checkpoint-*"))


def claim_output_dir(output_dir: Path, overwrite: bool = False, main_process: bool = True) -> None:
    """Before anything is written: ``output_dir`` must be absent, empty or a previous training run (whose bundle is
    replaced and whose checkpoints may be resumed or rotated), and ``output_dir/bundle`` a previous bundle, unless
    ``overwrite``. The main process then marks the directory as a training run."""
    check_output_dir(output_dir, RUN_KIND, overwrite, is_training_run)
    check_output_dir(output_dir / "bundle", BUNDLE_KIND, overwrite, is_bundle)
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if (read_manifest(output_dir) or {}).get("kind") != RUN_KIND:
            write_manifest(output_dir, RUN_KIND, None)  # a Trainer adds checkpoints: every entry counts as the run's


def choose_inference_history(cfg: RecipeConfig, recommender, split: LeaveOneOutSplit) -> dict:
    """With ``cfg.inference_history_choices``: score validation NDCG@10 with histories cut to each length, keep the
    best (the shortest on a tie) as the recommender's ``max_history``, and return what was measured."""
    if not cfg.inference_history_choices:
        return {}
    start, scores = time.time(), {}
    for length in sorted(set(cfg.inference_history_choices)):
        recommender.use_max_history(length)
        scores[length] = evaluate(
            recommender, split, "valid", max_users=cfg.eval_max_users, num_beams=cfg.eval_num_beams, batch_size=32
        )["ndcg@10"]
        logger.info("validation NDCG@10 with the last %d history items: %.4f", length, scores[length])
    best = max(scores, key=lambda length: (scores[length], -length))
    recommender.use_max_history(best)
    return {
        "inference_max_history": best,
        "valid_ndcg10_by_history": {str(n): s for n, s in scores.items()},
        "inference_history_seconds": round(time.time() - start, 1),
    }


def train_evaluate_save(recipe: Recipe, trainer, recommender, split: LeaveOneOutSplit):
    """Train (resuming if asked), score the test split, and save the bundle with its metrics in the model card.

    ``output_dir`` must be new, empty or a previous run's unless ``recipe.overwrite`` (``genrec train --overwrite``)
    is set. Under several processes (``accelerate launch``) every process trains and evaluates, and the main process
    alone writes the bundle; the others wait for it.
    """
    cfg, args = recipe.config, recipe.training
    overwrite = recipe.overwrite
    main_process = trainer.args.should_save
    claim_output_dir(recipe.output_dir, overwrite, main_process)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    n_examples = len(trainer.train_dataset)
    logger.info("training %s: %d examples, %d parameters", cfg.name, n_examples, n_params)
    start = time.time()
    resume = args.resume_from_checkpoint
    trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
    train_seconds = time.time() - start

    recommender.model = trainer.model
    history_choice = choose_inference_history(cfg, recommender, split)
    metrics = {}
    if cfg.evaluate_test:
        start = time.time()
        metrics = evaluate(
            recommender, split, "test", max_users=cfg.test_max_users, num_beams=cfg.eval_num_beams, batch_size=32
        )
        metrics["test_seconds"] = round(time.time() - start, 2)
    metrics.update(
        **history_choice,
        train_seconds=round(train_seconds, 1),
        train_examples=n_examples,
        parameters=n_params,
        trainable_parameters=n_trainable,
        best_valid_ndcg10=trainer.state.best_metric,
        steps=trainer.state.global_step,
    )
    recommender.config.metrics = metrics
    bundle = recipe.output_dir / "bundle"
    if main_process:
        recommender.save_pretrained(bundle, overwrite=overwrite)
        logger.info("saved bundle to %s", bundle)
        for checkpoint in recipe.output_dir.glob("checkpoint-*"):  # safetensors writes its files 0600
            normalise_permissions(checkpoint)
    trainer.accelerator.wait_for_everyone()
    return recommender, metrics
