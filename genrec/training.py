"""Recipes: one dataclass holds everything a YAML recipe sets; :func:`run_recipe` goes data → index → model → bundle.

T5 trains with transformers' ``Seq2SeqTrainer``; causal LMs with trl's ``SFTTrainer`` (loss on the completion only).
Both are subclassed only to replace ``evaluate`` with the real harness (constrained beam search, NDCG@10 on the
validation split), so best-checkpoint selection and early stopping use the metric we report. No training loop here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from genrec.data import InteractionData, LeaveOneOutSplit, leave_one_out
from genrec.evaluation import evaluate
from genrec.indexing import ItemIndex, build_indexer
from genrec.models import SEQ2SEQ, LoraSettings, T5ArchConfig, apply_lora, build_t5, load_backbone
from genrec.recommender import BundleConfig, GenerativeRecommender
from genrec.tasks import TASKS, Prompter, build_task_dataset
from genrec.tokens import add_item_tokens

logger = logging.getLogger(__name__)

SCRATCH_T5 = "t5-scratch"


@dataclass
class RecipeConfig:
    """A training recipe (``train/configs/*.yaml``); every field can be overridden on the command line."""

    data: str = field(default=None, metadata={"help": "Prepared dataset directory, or a dataset name (e.g. ml-100k)."})
    output_dir: str = field(default="runs/genrec", metadata={"help": "Where checkpoints and the final bundle go."})
    name: str = field(default="genrec", metadata={"help": "Recipe name (model card, results tables)."})
    # index
    index_method: str = field(default="semantic-rq", metadata={"help": "Indexing method (see `genrec index`)."})
    index_options: str = field(default="{}", metadata={"help": "Indexer options as JSON (or a mapping in YAML)."})
    index_file: str | None = field(default=None, metadata={"help": "Use this saved index instead of fitting one."})
    # backbone
    backbone: str = field(
        default=SCRATCH_T5,
        metadata={"help": f"'{SCRATCH_T5}' (T5 from config), or a hub id / local dir / .gguf file to fine-tune."},
    )
    t5_num_layers: int = field(default=4, metadata={"help": "Scratch T5: encoder layers (TIGER: 4)."})
    t5_num_decoder_layers: int = field(default=4, metadata={"help": "Scratch T5: decoder layers (TIGER: 4)."})
    t5_d_model: int = field(default=128, metadata={"help": "Scratch T5: hidden size (TIGER: 128)."})
    t5_num_heads: int = field(default=6, metadata={"help": "Scratch T5: heads (TIGER: 6)."})
    t5_d_kv: int = field(default=64, metadata={"help": "Scratch T5: head size (TIGER: 64)."})
    t5_d_ff: int = field(default=1024, metadata={"help": "Scratch T5: feed-forward size (TIGER: 1024)."})
    t5_dropout: float = field(default=0.1, metadata={"help": "Scratch T5: dropout."})
    tokenizer_vocab_size: int = field(default=2000, metadata={"help": "Scratch T5: SentencePiece vocabulary size."})
    use_lora: bool = field(default=True, metadata={"help": "LoRA for pretrained backbones (scratch T5 trains fully)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str | None = field(default=None, metadata={"help": "Comma-separated module names."})
    # tasks and prompts
    tasks: str = field(default="seqrec", metadata={"help": f"Comma-separated task mixture from {TASKS}."})
    template_style: str = field(default="p5", metadata={"help": "Prompt style: tiger, p5 or lcrec."})
    max_history: int = field(default=20, metadata={"help": "Most recent history items in a prompt."})
    max_title_history: int = field(default=10, metadata={"help": "History items when written as titles."})
    history_separator: str = field(default=", ", metadata={"help": "Between history items in a prompt."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap on training pairs (CPU budgets)."})
    # optimisation (passed to the transformers / trl training arguments)
    num_train_epochs: float = field(default=10, metadata={"help": "Epochs."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many steps (overrides epochs if > 0)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Batch size per device."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Gradient accumulation."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps (int) or fraction of all steps (< 1)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Scheduler."})
    logging_steps: int = field(default=50, metadata={"help": "Log every N steps."})
    eval_steps: int | None = field(default=None, metadata={"help": "Validate every N steps (None: every epoch)."})
    eval_max_users: int | None = field(default=300, metadata={"help": "Validation users sampled (None: all)."})
    eval_num_beams: int = field(default=20, metadata={"help": "Beams for validation and test."})
    early_stopping_patience: int = field(default=3, metadata={"help": "Validations without improvement to stop."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "Checkpoint dir, or 'last'."})
    seed: int = field(default=42, metadata={"help": "Random seed."})
    test_max_users: int | None = field(default=None, metadata={"help": "Test users sampled (None: all)."})
    evaluate_test: bool = field(
        default=True, metadata={"help": "Score the test split after training (the metrics go into the model card)."}
    )
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU)."})
    # decoder (SETRec: genrec/setrec.py)
    decoder: str = field(
        default="trie",
        metadata={
            "help": "'trie': generate the identifier token by token with trie-constrained beam search; 'set': "
            "SETRec, all tokens of a `set` index identifier from one forward pass of learnable queries."
        },
    )
    set_cf_weight: float = field(default=1.0, metadata={"help": "decoder=set: training loss weight of the CF token."})
    set_cf_score_weight: float = field(
        default=1.0, metadata={"help": "decoder=set: weight of the CF token's log-probability in item scores."}
    )

    def __post_init__(self):
        if self.decoder not in ("trie", "set"):
            raise ValueError(f"decoder must be 'trie' or 'set', got {self.decoder!r}")
        if isinstance(self.index_options, dict):
            self.index_options = json.dumps(self.index_options)
        if isinstance(self.tasks, (list, tuple)):
            self.tasks = ",".join(self.tasks)
        unknown = [t for t in self.task_list if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; available: {TASKS}")

    @property
    def task_list(self) -> list[str]:
        return [t.strip() for t in self.tasks.split(",") if t.strip()]

    @property
    def index_kwargs(self) -> dict:
        return json.loads(self.index_options) if self.index_options else {}

    @classmethod
    def from_yaml(cls, path: str, **overrides) -> RecipeConfig:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown recipe field(s) {unknown}")
        return cls(**{**values, **overrides})


# ---------------------------------------------------------------------------------------------- data + index
def load_data(data: str) -> InteractionData:
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
    index = build_indexer(cfg.index_method, **cfg.index_kwargs).fit(data.items, split.train)
    logger.info("fitted %s index on %d items in %.1fs", cfg.index_method, len(index), time.time() - start)
    return index


# ---------------------------------------------------------------------------------------------- model
def build_model(cfg: RecipeConfig, data: InteractionData, index: ItemIndex, prompter: Prompter):
    """Backbone + tokenizer with the identifier tokens added (and LoRA for pretrained backbones)."""
    if cfg.backbone == SCRATCH_T5:
        from genrec.models import train_sentencepiece_tokenizer

        corpus = _tokenizer_corpus(data, index, prompter)
        tokenizer = train_sentencepiece_tokenizer(corpus, cfg.tokenizer_vocab_size)
        add_item_tokens(tokenizer, index)
        arch = T5ArchConfig(
            cfg.t5_num_layers,
            cfg.t5_num_decoder_layers,
            cfg.t5_d_model,
            cfg.t5_num_heads,
            cfg.t5_d_kv,
            cfg.t5_d_ff,
            cfg.t5_dropout,
        )
        return build_t5(tokenizer, arch), tokenizer, SEQ2SEQ, False
    model, tokenizer, kind = load_backbone(cfg.backbone)
    new_ids = add_item_tokens(tokenizer, index, model)
    if not cfg.use_lora:
        return model, tokenizer, kind, False
    targets = cfg.lora_target_modules.split(",") if cfg.lora_target_modules else None
    settings = LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, targets)
    return apply_lora(model, kind, new_ids, settings), tokenizer, kind, True


def _tokenizer_corpus(data: InteractionData, index: ItemIndex, prompter: Prompter) -> list[str]:
    """Text the scratch tokenizer must cover: titles, identifiers written as text, and the prompt words."""
    from genrec.tasks import TEMPLATES

    corpus = [t for t in data.items["title"] if t]
    corpus += [ident for ident in index.identifiers if not index.new_tokens]
    corpus += [t.replace("{", " ").replace("}", " ") for t in TEMPLATES[prompter.style].values()]
    return corpus


def tokenize_pairs(dataset, tokenizer, kind: str, max_prompt_tokens: int = 1024):
    """(prompt, target) → model inputs. The target is tokenised alone, exactly as the decoding trie sees it."""
    eos = tokenizer.eos_token_id

    def encode(batch):
        prompts = tokenizer(batch["prompt"], truncation=True, max_length=max_prompt_tokens)["input_ids"]
        targets = tokenizer(batch["target"], add_special_tokens=False)["input_ids"]
        if kind == SEQ2SEQ:
            return {"input_ids": prompts, "labels": [t + [eos] for t in targets]}
        return {
            "input_ids": [p + t + [eos] for p, t in zip(prompts, targets)],
            "labels": [[-100] * len(p) + t + [eos] for p, t in zip(prompts, targets)],
        }

    tokenizer.truncation_side = "left"
    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenising")


# ---------------------------------------------------------------------------------------------- trainers
class HarnessEvaluationMixin:
    """Replaces the trainer's loss-based ``evaluate`` with the genrec harness on the validation split."""

    genrec_split: LeaveOneOutSplit
    genrec_recommender: GenerativeRecommender
    genrec_eval_users: int | None
    genrec_num_beams: int

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **kwargs):
        start = time.time()
        self.genrec_recommender.model = self.model
        metrics = evaluate(
            self.genrec_recommender,
            self.genrec_split,
            "valid",
            max_users=self.genrec_eval_users,
            batch_size=self.args.per_device_eval_batch_size,
            num_beams=self.genrec_num_beams,
            progress=False,
        )
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        metrics[f"{metric_key_prefix}_runtime"] = time.time() - start
        self.model.train()
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def _make_trainer(cfg, kind, model, tokenizer, train_dataset, eval_dataset, split, recommender):
    from transformers import (
        DataCollatorForSeq2Seq,
        EarlyStoppingCallback,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
    )

    common = training_arguments(cfg)
    callbacks = [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    if kind == SEQ2SEQ:

        class GenRecSeq2SeqTrainer(HarnessEvaluationMixin, Seq2SeqTrainer):
            pass

        args = Seq2SeqTrainingArguments(**common)
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
        trainer = GenRecSeq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    else:
        from trl import SFTConfig, SFTTrainer

        class GenRecSFTTrainer(HarnessEvaluationMixin, SFTTrainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                # trl's fused LM-head loss reads `lm_head.weight` directly, which bypasses peft's trainable rows of
                # the identifier tokens; the model's own loss goes through them.
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

        args = SFTConfig(**common, max_length=None, packing=False, dataset_num_proc=None)
        trainer = GenRecSFTTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    return attach_harness(trainer, cfg, split, recommender)


def training_arguments(cfg: RecipeConfig) -> dict:
    """The transformers/trl training arguments every recipe shares: validation (the harness's NDCG@10) decides the
    best checkpoint, which is restored at the end."""
    return dict(
        output_dir=cfg.output_dir,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=32,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if cfg.eval_steps else "epoch",
        save_strategy="steps" if cfg.eval_steps else "epoch",
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="ndcg@10",
        greater_is_better=True,
        seed=cfg.seed,
        bf16=cfg.bf16,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def attach_harness(trainer, cfg: RecipeConfig, split: LeaveOneOutSplit, recommender):
    """Give a :class:`HarnessEvaluationMixin` trainer what its ``evaluate`` needs."""
    trainer.genrec_split = split
    trainer.genrec_recommender = recommender
    trainer.genrec_eval_users = cfg.eval_max_users
    trainer.genrec_num_beams = cfg.eval_num_beams
    return trainer


# ---------------------------------------------------------------------------------------------- the recipe
def run_recipe(
    cfg: RecipeConfig, command: str | None = None, data: InteractionData | None = None
) -> tuple[GenerativeRecommender, dict]:
    """Train ``cfg`` end to end; returns the recommender (saved to ``output_dir/bundle``) and its test metrics.

    ``data`` (already loaded) takes the place of ``cfg.data``.
    """
    if cfg.decoder == "set":  # SETRec: its own model, trainer and recommender (genrec/setrec.py)
        from genrec.setrec import run_set_recipe

        return run_set_recipe(cfg, command, data=data)
    data, split, index, titles, prompter = prepare_recipe(cfg, data)
    model, tokenizer, kind, adapter = build_model(cfg, data, index, prompter)

    dataset = build_task_dataset(prompter, split, cfg.task_list, seed=cfg.seed)
    if cfg.max_train_examples and len(dataset) > cfg.max_train_examples:
        dataset = dataset.select(range(cfg.max_train_examples))
    train_dataset = tokenize_pairs(dataset, tokenizer, kind)
    eval_dataset = tokenize_pairs(validation_pairs(prompter, split, index), tokenizer, kind)

    bundle_config = BundleConfig(**bundle_fields(cfg, kind, index, adapter, data.name, command))
    recommender = GenerativeRecommender(model, tokenizer, index, bundle_config, titles)
    trainer = _make_trainer(cfg, kind, model, tokenizer, train_dataset, eval_dataset, split, recommender)

    return train_evaluate_save(cfg, trainer, recommender, split)


def prepare_recipe(cfg: RecipeConfig, data: InteractionData | None = None):
    """Seed, data, split, index, titles and prompter: the start every recipe shares."""
    from transformers import set_seed

    set_seed(cfg.seed)
    data = data if data is not None else load_data(cfg.data)
    split = leave_one_out(data)
    index = fit_index(cfg, data, split)
    titles = data.titles()
    return data, split, index, titles, make_prompter(cfg, index, titles)


def validation_pairs(prompter: Prompter, split: LeaveOneOutSplit, index: ItemIndex, limit: int = 64):
    """A small (prompt, target) validation set: the Trainer needs an eval dataset, though the harness evaluation
    (:class:`HarnessEvaluationMixin`) scores the validation split itself."""
    from datasets import Dataset

    histories, targets = split.histories("valid")[:limit], split.targets("valid")[:limit]
    return Dataset.from_dict(
        {"prompt": [prompter.seqrec_prompt(h) for h in histories], "target": [index.identifier(t) for t in targets]}
    )


def make_prompter(cfg: RecipeConfig, index: ItemIndex, titles: dict[str, str]) -> Prompter:
    """The prompt format of a recipe; the bundle records the same settings so inference formats prompts alike."""
    return Prompter(index, titles, cfg.template_style, cfg.max_history, cfg.max_title_history, cfg.history_separator)


def bundle_fields(cfg: RecipeConfig, kind: str, index: ItemIndex, adapter: bool, data_name: str, command) -> dict:
    """The :class:`BundleConfig` fields every recipe records (prompt settings, backbone, recipe for the card)."""
    return dict(
        kind=kind,
        index_fingerprint=index.fingerprint,
        template_style=cfg.template_style,
        max_history=cfg.max_history,
        max_title_history=cfg.max_title_history,
        separator=cfg.history_separator,
        base_model=None if cfg.backbone == SCRATCH_T5 else cfg.backbone,
        adapter=adapter,
        num_beams=cfg.eval_num_beams,
        recipe={
            "name": cfg.name,
            "data": data_name,
            "backbone": cfg.backbone,
            "command": command or f"genrec train --config <{cfg.name}.yaml>",
            "config": dataclasses.asdict(cfg),
        },
    )


def train_evaluate_save(cfg: RecipeConfig, trainer, recommender, split: LeaveOneOutSplit):
    """Train (resuming if asked), score the test split, and save the bundle with its metrics in the model card."""
    n_params = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    n_examples = len(trainer.train_dataset)
    logger.info("training %s: %d examples, %d parameters", cfg.name, n_examples, n_params)
    start = time.time()
    resume = cfg.resume_from_checkpoint
    trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
    train_seconds = time.time() - start

    recommender.model = trainer.model
    metrics = {}
    if cfg.evaluate_test:
        start = time.time()
        metrics = evaluate(
            recommender, split, "test", max_users=cfg.test_max_users, num_beams=cfg.eval_num_beams, batch_size=32
        )
        metrics["test_seconds"] = round(time.time() - start, 2)
    metrics.update(
        train_seconds=round(train_seconds, 1),
        train_examples=n_examples,
        parameters=n_params,
        trainable_parameters=n_trainable,
        best_valid_ndcg10=trainer.state.best_metric,
        steps=trainer.state.global_step,
    )
    recommender.config.metrics = metrics
    bundle = Path(cfg.output_dir) / "bundle"
    recommender.save_pretrained(bundle)
    logger.info("saved bundle to %s", bundle)
    return recommender, metrics
