"""Trainer classes (module level, so they can be imported and subclassed). Each is a transformers/trl trainer whose
``evaluate`` is the genrec harness on the validation split (constrained decoding, NDCG@10), so best-checkpoint
selection and early stopping use the metric we report. No training loop here.
"""

from __future__ import annotations

import logging
import time

from transformers import Seq2SeqTrainer, Trainer, TrainerCallback
from trl import SFTTrainer

from genrec.data import LeaveOneOutSplit
from genrec.evaluation import evaluate

logger = logging.getLogger(__name__)


class HarnessEvaluationMixin:
    """Replaces the trainer's loss-based ``evaluate`` with the genrec harness on the validation split.

    Args (keyword, besides the trainer's own):
        split (`LeaveOneOutSplit`): the split whose validation items are predicted.
        recommender (`GenerativeRecommender`): decodes with the model being trained.
        eval_max_users (`int`, *optional*): a fixed sample of validation users (None: all).
        num_beams (`int`, defaults to 20): beams for validation.
    """

    def __init__(
        self,
        *args,
        split: LeaveOneOutSplit,
        recommender,
        eval_max_users: int | None = None,
        num_beams: int = 20,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.genrec_split = split
        self.genrec_recommender = recommender
        self.genrec_eval_users = eval_max_users
        self.genrec_num_beams = num_beams

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


class TimeBudgetCallback(TrainerCallback):
    """Stops training once ``seconds`` have passed since it began, with one last validation and checkpoint, so the
    best checkpoint is still chosen (and restored) by the validation metric."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.time() - self.start > self.seconds:
            logger.info(
                "time budget of %.0f s reached at step %d: validating and stopping", self.seconds, state.global_step
            )
            control.should_training_stop = True
            control.should_evaluate = control.should_save = True
        return control


class GenRecTrainer(HarnessEvaluationMixin, Trainer):
    """``Trainer`` validated by the harness (sequence mode: causal LMs on whole histories)."""


class GenRecSeq2SeqTrainer(HarnessEvaluationMixin, Seq2SeqTrainer):
    """``Seq2SeqTrainer`` validated by the harness (prefix mode, T5)."""


class GenRecSFTTrainer(HarnessEvaluationMixin, SFTTrainer):
    """trl ``SFTTrainer`` validated by the harness (prefix mode, causal LMs; loss on the completion only)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # trl's fused LM-head loss reads `lm_head.weight` directly, which bypasses peft's trainable rows of the
        # identifier tokens; the model's own loss goes through them.
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


class SetRecTrainer(HarnessEvaluationMixin, Trainer):
    """``Trainer`` for a :class:`~genrec.models.set_head.SetRecModel`; checkpoints hold its trainable parameters."""

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            self.model.save_trainable(output_dir)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        (model or self.model).load_trainable(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        logger.info("loading the best checkpoint %s", self.state.best_model_checkpoint)
        self.model.load_trainable(self.state.best_model_checkpoint)
