"""Set mode (SETRec): the backbone plus one learnable query per set position, trained with cross-entropy per
position on the target item's token; decoded by :class:`~genrec.recommenders.set.SetRecommender`.

Two data layouts. With a text template (``lcrec``, ``p5``, ``tiger``) every row is one (history prompt, next item)
pair. With ``template_style: sequence`` (causal LMs) a row is a window of a user's history written as token ids
(:class:`~genrec.tasks.SequenceFormat`) followed by one group of queries per target item, each group seeing only the
tokens before its item, so one forward pass trains every next-item position of the window (as sequence mode does);
alignment-task rows join as windows with one group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genrec.decoding import SetVocabulary
from genrec.indexing.base import ItemIndex
from genrec.models import CAUSAL
from genrec.models.set_head import SetRecModel
from genrec.recommenders import SetBundleConfig, SetRecommender
from genrec.tasks import Prompter, SequenceFormat, build_task_dataset
from genrec.training.recipe import (
    build_backbone,
    bundle_fields,
    first_rows,
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
    dataset = first_rows(build_task_dataset(prompter, split, tasks, seed=seed), max_examples)
    return encode_set_pairs(dataset, tokenizer, prompter.index, vocabulary, max_prompt_tokens)


def set_window_dataset(prepared, sequence_format: SequenceFormat, vocabulary: SetVocabulary, cfg, seed: int):
    """Set mode's training rows for a causal LM with ``template_style: sequence``: every user's training history in
    windows of ``max_history + 1`` items (``query_cuts`` + ``set_labels`` per target; at most ``max_train_examples``
    windows), plus the alignment tasks as one-group rows (at most ``max_task_examples`` each), shuffled."""
    from datasets import Dataset, concatenate_datasets

    table = vocabulary.item_table.tolist()
    index = prepared.index
    parts = []
    if "seqrec" in cfg.tasks:
        item_labels = {item: table[row] for row, item in enumerate(index.item_ids)}
        rows = sequence_format.set_training_rows(
            prepared.split.train, cfg.max_history + 1, item_labels, cfg.window_stride
        )
        if not rows["input_ids"]:
            raise ValueError("no training sequence has two items; set mode has nothing to learn from")
        parts.append(first_rows(Dataset.from_dict(rows), cfg.max_train_examples))
    for task in (t for t in cfg.tasks if t != "seqrec"):
        pairs = set_training_dataset(
            prepared.prompter,
            prepared.split,
            [task],
            sequence_format.tokenizer,
            vocabulary,
            seed,
            cfg.max_task_examples,
        )
        parts.append(
            pairs.map(
                lambda row: {"query_cuts": [len(row["input_ids"])], "set_labels": [row["set_labels"]]},
                desc=f"{task}: one query group per row",
            )
        )
    return concatenate_datasets(parts).shuffle(seed=seed)


@dataclass
class SetCollator:
    """Pads ``input_ids`` with the tokenizer (its padding side) and stacks ``set_labels``; windows (rows with
    ``query_cuts``) are right-padded and their query groups padded with cut 0 and labels -100."""

    tokenizer: object

    def __call__(self, features: list[dict]) -> dict:
        if "query_cuts" in features[0]:
            return self._windows(features)
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="pt")
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "set_labels": torch.tensor([f["set_labels"] for f in features], dtype=torch.long),
        }

    def _windows(self, features: list[dict]) -> dict:
        rows, length = len(features), max(len(f["input_ids"]) for f in features)
        groups, positions = max(len(f["query_cuts"]) for f in features), len(features[0]["set_labels"][0])
        input_ids = torch.full((rows, length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(rows, length, dtype=torch.long)
        query_cuts = torch.zeros(rows, groups, dtype=torch.long)
        set_labels = torch.full((rows, groups, positions), -100, dtype=torch.long)
        for row, f in enumerate(features):
            size, count = len(f["input_ids"]), len(f["query_cuts"])
            input_ids[row, :size] = torch.tensor(f["input_ids"])
            attention_mask[row, :size] = 1
            query_cuts[row, :count] = torch.tensor(f["query_cuts"])
            set_labels[row, :count] = torch.tensor(f["set_labels"])
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "query_cuts": query_cuts,
            "set_labels": set_labels,
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
    model = SetRecModel(
        backbone.model, backbone.kind, vocabulary.token_ids, weights, anchor_last_item=cfg.set_anchor_last_item
    )

    if cfg.template_style == "sequence":
        if backbone.kind != CAUSAL:
            raise ValueError(f"set mode with template_style 'sequence' needs a causal backbone, got {cfg.backbone!r}")
        sequence_format = SequenceFormat(tokenizer, index, cfg.history_separator)
        train_dataset = set_window_dataset(prepared, sequence_format, vocabulary, cfg, recipe.training.seed)
        eval_dataset = first_rows(train_dataset, 8)  # the harness validates; unused
    else:
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
        anchor_last_item=cfg.set_anchor_last_item,
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
