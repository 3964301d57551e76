"""Sequence mode: a causal LM trained on each user's training history as one token sequence, with the loss on every
identifier token (every position is a next-item example, as in SASRec), then decoded by continuing the sequence with
trie-constrained beam search. Works with every indexer and with scratch or pretrained (LoRA) causal backbones."""

from __future__ import annotations

from genrec.bundle import BundleConfig
from genrec.models import CAUSAL
from genrec.recommenders import TrieRecommender
from genrec.tasks import SequenceFormat
from genrec.training.recipe import (
    build_backbone,
    bundle_fields,
    harness_options,
    prepare_recipe,
    register_mode,
    stopping_callbacks,
    train_evaluate_save,
    training_args,
)
from genrec.training.trainers import GenRecTrainer


def sequence_dataset(split, sequence_format: SequenceFormat, window: int, max_rows: int | None = None):
    """Training windows of every user's training sequence as a ``datasets.Dataset`` (``input_ids``, ``labels``)."""
    from datasets import Dataset

    rows = sequence_format.training_rows(split.train, window)
    if not rows["input_ids"]:
        raise ValueError("no training sequence has two items; sequence mode has nothing to learn from")
    dataset = Dataset.from_dict(rows)
    if max_rows and len(dataset) > max_rows:
        dataset = dataset.select(range(max_rows))
    return dataset


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
    # windows one item longer than the inference history: the last target then sits where inference predicts
    train_dataset = sequence_dataset(prepared.split, sequence_format, cfg.max_history + 1, cfg.max_train_examples)

    config = BundleConfig(**bundle_fields(recipe, backbone, prepared, command))
    recommender = TrieRecommender(backbone.model, tokenizer, prepared.index, config, prepared.titles)
    trainer = GenRecTrainer(
        model=backbone.model,
        args=training_args(TrainingArguments, recipe.training),
        train_dataset=train_dataset,
        eval_dataset=train_dataset.select(range(min(8, len(train_dataset)))),  # the harness validates; unused
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
        processing_class=tokenizer,
        callbacks=stopping_callbacks(cfg),
        **harness_options(cfg, prepared, recommender),
    )
    return train_evaluate_save(recipe, trainer, recommender, prepared.split)
