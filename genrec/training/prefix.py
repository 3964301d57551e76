"""Prefix mode: every (history prefix → next identifier) of the training data, plus the alignment tasks, as
(prompt, target) pairs. T5 trains with transformers' ``Seq2SeqTrainer``, causal LMs with trl's ``SFTTrainer``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genrec.bundle import BundleConfig
from genrec.models import SEQ2SEQ
from genrec.recommenders import TrieRecommender
from genrec.tasks import build_task_dataset
from genrec.tokens import DecoderPrefixes
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
    validation_pairs,
)
from genrec.training.trainers import GenRecSeq2SeqTrainer, GenRecSFTTrainer


@dataclass
class DecoderPrefixCollator:
    """``DataCollatorForSeq2Seq`` for rows that carry their own ``decoder_input_ids`` (``decoder_last_item``): the
    wrapped collator, built without the model so that it does not derive decoder inputs from the labels (where the
    masked prefix is lost), pads the rest; the decoder inputs are right-padded to the labels' width."""

    collator: object

    def __call__(self, features: list[dict]) -> dict:
        decoder = [f["decoder_input_ids"] for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != "decoder_input_ids"} for f in features])
        width, pad = batch["labels"].shape[1], self.collator.tokenizer.pad_token_id
        batch["decoder_input_ids"] = torch.tensor([ids + [pad] * (width - len(ids)) for ids in decoder])
        return batch


@register_mode("prefix")
def train_prefix(recipe, command: str | None = None, data=None):
    """Train a prefix-mode recipe end to end; returns the recommender (saved to ``output_dir/bundle``) and its test
    metrics."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainingArguments
    from trl import SFTConfig

    cfg = recipe.config
    prepared = prepare_recipe(recipe, data)
    backbone = build_backbone(cfg, prepared)
    model, tokenizer, kind = backbone.model, backbone.tokenizer, backbone.kind

    prefixes = None
    if cfg.decoder_last_item:
        if kind != SEQ2SEQ:
            raise ValueError(f"decoder_last_item starts a T5 decoder from the last item; {cfg.backbone!r} is causal")
        prefixes = DecoderPrefixes(tokenizer, prepared.index, model.config.decoder_start_token_id)
    dataset = build_task_dataset(prepared.prompter, prepared.split, cfg.tasks, seed=recipe.training.seed)
    train_dataset = tokenize_pairs(
        first_rows(dataset, cfg.max_train_examples), tokenizer, kind, decoder_prefixes=prefixes
    )
    eval_dataset = tokenize_pairs(
        validation_pairs(prepared.prompter, prepared.split, prepared.index), tokenizer, kind, decoder_prefixes=prefixes
    )

    config = BundleConfig(**bundle_fields(recipe, backbone, prepared, command))
    recommender = TrieRecommender(model, tokenizer, prepared.index, config, prepared.titles)
    common = dict(
        model=model,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=stopping_callbacks(cfg),
        **harness_options(cfg, prepared, recommender),
    )
    if kind == SEQ2SEQ:
        args = training_args(Seq2SeqTrainingArguments, recipe.training)
        if prefixes is None:
            collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
        else:
            collator = DecoderPrefixCollator(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
        trainer = GenRecSeq2SeqTrainer(args=args, data_collator=collator, **common)
    else:
        args = training_args(SFTConfig, recipe.training, max_length=None, packing=False, dataset_num_proc=None)
        trainer = GenRecSFTTrainer(args=args, **common)
    return train_evaluate_save(recipe, trainer, recommender, prepared.split)
