"""Sequence mode: a causal LM trained on each user's training history as one token sequence, with the loss on every
identifier token (every position is a next-item example, as in SASRec), then decoded by continuing the sequence with
trie-constrained beam search. Works with every indexer and with scratch or pretrained (LoRA) causal backbones.

LC-Rec's alignment tasks (``tasks`` other than ``seqrec``) mix in as (prompt, target) rows with the loss on the
target only, at most ``max_task_examples`` rows per task; a ``length`` column lets
``train_sampling_strategy: group_by_length`` batch rows of similar length, so little compute goes to padding."""

from __future__ import annotations

from genrec.bundle import BundleConfig
from genrec.models import CAUSAL
from genrec.recommenders import TrieRecommender
from genrec.tasks import SequenceFormat, build_task_dataset
from genrec.training.recipe import (
    build_backbone,
    bundle_fields,
    first_rows,
    harness_options,
    prepare_recipe,
    register_mode,
    stopping_callbacks,
    tokenize_pairs,
    train_evaluate_save,
    training_args,
)
from genrec.training.trainers import GenRecTrainer


def sequence_dataset(
    split, sequence_format: SequenceFormat, window: int, max_rows: int | None = None, stride: int | None = None
):
    """Training windows of every user's training sequence as a ``datasets.Dataset`` (``input_ids``, ``labels``)."""
    from datasets import Dataset

    rows = sequence_format.training_rows(split.train, window, stride)
    if not rows["input_ids"]:
        raise ValueError("no training sequence has two items; sequence mode has nothing to learn from")
    return first_rows(Dataset.from_dict(rows), max_rows)


def alignment_dataset(prepared, tokenizer, tasks, max_per_task: int | None, seed: int):
    """The non-``seqrec`` tasks as tokenised (prompt, target) rows, loss on the target; None if there are none."""
    from datasets import concatenate_datasets

    parts = []
    for task in (t for t in tasks if t != "seqrec"):
        pairs = build_task_dataset(prepared.prompter, prepared.split, [task], seed=seed)
        parts.append(tokenize_pairs(first_rows(pairs, max_per_task), tokenizer, CAUSAL))
    return concatenate_datasets(parts) if parts else None


def training_dataset(prepared, sequence_format, cfg, seed: int):
    """Sequence windows (when ``seqrec`` is a task) plus alignment rows, shuffled, with a ``length`` column."""
    from datasets import concatenate_datasets

    parts = []
    if "seqrec" in cfg.tasks:
        # windows one item longer than the inference history: the last target then sits where inference predicts
        window = cfg.max_history + 1
        parts.append(
            sequence_dataset(prepared.split, sequence_format, window, cfg.max_train_examples, cfg.window_stride)
        )
    alignment = alignment_dataset(prepared, sequence_format.tokenizer, cfg.tasks, cfg.max_task_examples, seed)
    if alignment is not None:
        parts.append(alignment)
    dataset = concatenate_datasets(parts).shuffle(seed=seed)
    return dataset.map(lambda row: {"length": len(row["input_ids"])}, desc="measuring rows")


@register_mode("sequence")
def train_sequence(recipe, command: str | None = None, data=None):
    """Train a sequence-mode recipe end to end; returns the recommender (saved to ``output_dir/bundle``) and its
    test metrics."""
    from transformers import DataCollatorForSeq2Seq, TrainingArguments

    cfg = recipe.config
    if cfg.template_style != "sequence":
        raise ValueError(
            f"mode 'sequence' writes histories as token sequences: set template_style: sequence "
            f"(got {cfg.template_style!r})"
        )
    prepared = prepare_recipe(recipe, data)
    backbone = build_backbone(cfg, prepared)
    if backbone.kind != CAUSAL:
        raise ValueError(f"mode 'sequence' needs a causal (decoder-only) backbone, got {cfg.backbone!r}")
    tokenizer = backbone.tokenizer
    sequence_format = SequenceFormat(tokenizer, prepared.index, cfg.history_separator)
    train_dataset = training_dataset(prepared, sequence_format, cfg, recipe.training.seed)

    config = BundleConfig(**bundle_fields(recipe, backbone, prepared, command))
    recommender = TrieRecommender(backbone.model, tokenizer, prepared.index, config, prepared.titles)
    trainer = GenRecTrainer(
        model=backbone.model,
        args=training_args(TrainingArguments, recipe.training),
        train_dataset=train_dataset,
        eval_dataset=first_rows(train_dataset, 8),  # the harness validates; unused
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
        processing_class=tokenizer,
        callbacks=stopping_callbacks(cfg),
        **harness_options(cfg, prepared, recommender),
    )
    return train_evaluate_save(recipe, trainer, recommender, prepared.split)
