"""Set mode (SETRec): the backbone plus one learnable query per set position, trained with cross-entropy per
position on the target item's token; decoded by :class:`~genrec.recommenders.set.SetRecommender`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genrec.decoding import SetVocabulary
from genrec.indexing.base import ItemIndex
from genrec.models import CAUSAL
from genrec.models.set_head import SetRecModel
from genrec.recommenders import SetBundleConfig, SetRecommender
from genrec.tasks import Prompter, build_task_dataset
from genrec.training.recipe import (
    build_backbone,
    bundle_fields,
    harness_options,
    prepare_recipe,
    register_mode,
    stopping_callbacks,
    train_evaluate_save,
    training_args,
    validation_pairs,
)
from genrec.training.trainers import SetRecTrainer

IDENTIFIER_TASKS = ("seqrec", "item2index", "titles2index")  # tasks whose target is an item identifier


def encode_set_pairs(dataset, tokenizer, index: ItemIndex, vocabulary: SetVocabulary, max_prompt_tokens: int = 1024):
    """(prompt, target identifier) rows → ``input_ids`` (the prompt tokenised as at inference) and ``set_labels``
    (the target item's local token index at each position)."""
    row_of = {ident: row for row, ident in enumerate(index.identifiers)}
    table = vocabulary.item_table.tolist()
    tokenizer.truncation_side = "left"

    def encode(batch):
        ids = tokenizer(batch["prompt"], truncation=True, max_length=max_prompt_tokens)["input_ids"]
        return {"input_ids": ids, "set_labels": [table[row_of[t]] for t in batch["target"]]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenising")


def set_training_dataset(
    prompter: Prompter,
    split,
    tasks: Sequence[str],
    tokenizer,
    vocabulary: SetVocabulary,
    seed: int = 0,
    max_examples: int | None = None,
    max_prompt_tokens: int = 1024,
):
    """Training rows of ``tasks`` (built from training interactions only) encoded by :func:`encode_set_pairs`.
    Only tasks whose target is an identifier can train a set model."""
    bad = [t for t in tasks if t not in IDENTIFIER_TASKS]
    if bad:
        raise ValueError(f"set decoding predicts identifiers; tasks {bad} have text targets (use {IDENTIFIER_TASKS})")
    dataset = build_task_dataset(prompter, split, tasks, seed=seed)
    if max_examples and len(dataset) > max_examples:
        dataset = dataset.select(range(max_examples))
    return encode_set_pairs(dataset, tokenizer, prompter.index, vocabulary, max_prompt_tokens)


@dataclass
class SetCollator:
    """Pads ``input_ids`` with the tokenizer (its padding side) and stacks ``set_labels``."""

    tokenizer: object

    def __call__(self, features: list[dict]) -> dict:
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="pt")
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "set_labels": torch.tensor([f["set_labels"] for f in features], dtype=torch.long),
        }


@register_mode("set")
def train_set(recipe, command: str | None = None, data=None):
    """Train a SETRec recipe end to end: data → set index → backbone + queries → ``Trainer`` → test metrics →
    bundle at ``output_dir/bundle``."""
    from transformers import TrainingArguments

    cfg = recipe.config
    prepared = prepare_recipe(recipe, data)
    backbone = build_backbone(cfg, prepared)
    tokenizer, index = backbone.tokenizer, prepared.index
    if backbone.kind == CAUSAL:
        tokenizer.padding_side = "left"
    vocabulary = SetVocabulary.from_index(index, tokenizer)
    weights = vocabulary.position_weights(cfg.set_cf_weight)
    model = SetRecModel(backbone.model, backbone.kind, vocabulary.token_ids, weights)

    train_dataset = set_training_dataset(
        prepared.prompter,
        prepared.split,
        cfg.tasks,
        tokenizer,
        vocabulary,
        recipe.training.seed,
        cfg.max_train_examples,
    )
    eval_dataset = encode_set_pairs(
        validation_pairs(prepared.prompter, prepared.split, index), tokenizer, index, vocabulary
    )

    config = SetBundleConfig(
        **bundle_fields(recipe, backbone, prepared, command),
        positions=vocabulary.positions,
        cf_weight=cfg.set_cf_weight,
        cf_score_weight=cfg.set_cf_score_weight,
    )
    recommender = SetRecommender(model, tokenizer, index, config, prepared.titles)
    trainer = SetRecTrainer(
        model=model,
        args=training_args(TrainingArguments, recipe.training),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=SetCollator(tokenizer),
        processing_class=tokenizer,
        callbacks=stopping_callbacks(cfg),
        **harness_options(cfg, prepared, recommender),
    )
    return train_evaluate_save(recipe, trainer, recommender, prepared.split)
