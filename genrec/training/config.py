"""Recipe configuration: genrec's own fields (:class:`RecipeConfig`) parsed beside transformers'
``TrainingArguments``, which own every optimisation field (learning rate, epochs, batch size, evaluation and saving
steps, seed, bf16, ...). A recipe YAML mixes both; :func:`load_recipe` splits it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCRATCH_T5 = "t5-scratch"
SCRATCH_CAUSAL = "causal-scratch"
SCRATCH_BACKBONES = (SCRATCH_T5, SCRATCH_CAUSAL)
MODES = ("prefix", "sequence", "set")

# genrec's defaults for transformers' TrainingArguments; a recipe or the command line overrides any of them.
# Validation (the harness's NDCG@10) picks the best checkpoint, which is restored at the end.
TRAINING_DEFAULTS: dict[str, Any] = dict(
    output_dir="runs/genrec",
    num_train_epochs=10,
    per_device_train_batch_size=64,
    per_device_eval_batch_size=32,
    learning_rate=1e-3,
    warmup_steps=0.05,
    lr_scheduler_type="cosine",
    logging_steps=50,
    eval_strategy="epoch",
    save_strategy="epoch",
    save_total_limit=2,
    load_best_model_at_end=True,
    metric_for_best_model="ndcg@10",
    greater_is_better=True,
    report_to="none",
    remove_unused_columns=False,
    dataloader_num_workers=0,
    seed=42,
)


@dataclass
class RecipeConfig:
    """genrec's part of a recipe (``train/configs/*.yaml``): data, index, backbone, tasks, decoding, evaluation."""

    data: str | None = field(default=None, metadata={"help": "Prepared dataset directory, or a dataset name."})
    name: str = field(default="genrec", metadata={"help": "Recipe name (model card, results tables)."})
    mode: str = field(
        default="prefix",
        metadata={
            "help": "Training mode: 'prefix' ((prompt, next identifier) pairs; T5 or causal LM), 'sequence' (a "
            "causal LM learns every position of a user's history in one pass, as SASRec does), or 'set' (SETRec)."
        },
    )
    # index
    index_method: str = field(default="semantic-rq", metadata={"help": "Indexing method (see `genrec index`)."})
    index_options: dict = field(default_factory=dict, metadata={"help": "Indexer options (a JSON object)."})
    index_file: str | None = field(default=None, metadata={"help": "Use this saved index instead of fitting one."})
    # backbone
    backbone: str = field(
        default=SCRATCH_T5,
        metadata={
            "help": f"'{SCRATCH_T5}' / '{SCRATCH_CAUSAL}' (built from a config, identifier tokens only), or a hub "
            "id / local dir / .gguf file / package://PKG/FILE.gguf (package://PKG_GLOB/FILE_GLOB: a GGUF split across "
            "packages, joined once into the cache) to fine-tune."
        },
    )
    t5_num_layers: int = field(default=4, metadata={"help": "Scratch T5: encoder layers (TIGER: 4)."})
    t5_num_decoder_layers: int = field(default=4, metadata={"help": "Scratch T5: decoder layers (TIGER: 4)."})
    t5_d_model: int = field(default=128, metadata={"help": "Scratch T5: hidden size (TIGER: 128)."})
    t5_num_heads: int = field(default=6, metadata={"help": "Scratch T5: heads (TIGER: 6)."})
    t5_d_kv: int = field(default=64, metadata={"help": "Scratch T5: head size (TIGER: 64)."})
    t5_d_ff: int = field(default=1024, metadata={"help": "Scratch T5: feed-forward size (TIGER: 1024)."})
    t5_dropout: float = field(default=0.1, metadata={"help": "Scratch T5: dropout."})
    causal_num_layers: int = field(default=2, metadata={"help": "Scratch causal: layers."})
    causal_hidden_size: int = field(default=128, metadata={"help": "Scratch causal: hidden size."})
    causal_num_heads: int = field(default=4, metadata={"help": "Scratch causal: attention heads."})
    causal_intermediate_size: int = field(default=256, metadata={"help": "Scratch causal: feed-forward size."})
    causal_dropout: float = field(default=0.3, metadata={"help": "Scratch causal: dropout (attention + residual)."})
    tokenizer_vocab_size: int = field(default=2000, metadata={"help": "Scratch T5: SentencePiece vocabulary size."})
    backbone_layers: int | None = field(
        default=None,
        metadata={
            "help": "Pretrained causal backbones: keep only the first N decoder layers (a CPU budget; None: all)."
        },
    )
    item_token_init: str = field(
        default="mean",
        metadata={
            "help": "New identifier rows start at the vocabulary's mean ('mean'; a scratch backbone's rows stay "
            "random), at the mean embedding of their items' titles ('title', pretrained backbones), at their "
            "training co-occurrence (spectral) vectors ('cooccurrence'), or both ('title+cooccurrence')."
        },
    )
    use_lora: bool = field(
        default=True, metadata={"help": "LoRA for pretrained backbones (scratch ones train fully)."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(default=None, metadata={"help": "Module names LoRA adapts."})
    # tasks and prompts
    tasks: list[str] = field(default_factory=lambda: ["seqrec"], metadata={"help": "Task mixture (see genrec.tasks)."})
    template_style: str = field(default="p5", metadata={"help": "Prompt style: tiger, p5, lcrec or sequence."})
    max_history: int = field(default=20, metadata={"help": "Most recent history items in a prompt / sequence."})
    inference_history_choices: list[int] | None = field(
        default=None,
        metadata={
            "help": "After training, score validation NDCG@10 with each history cut to each of these lengths (each "
            "at most max_history) and keep the best one in the bundle; e.g. 20,10,5,3. Models trained on short "
            "budgets can rank better from the last few items than from all max_history. None: keep max_history."
        },
    )
    max_title_history: int = field(default=10, metadata={"help": "History items when written as titles."})
    history_separator: str = field(default=", ", metadata={"help": "Between history items in a prompt."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap on training rows (CPU budgets)."})
    max_targets_per_user: int | None = field(
        default=None,
        metadata={
            "help": "Prefix and set modes on prompts: (history → next item) examples from each user's last N "
            "targets only, the ones nearest in time to the held-out items (at most N × users examples per epoch "
            "instead of every prefix, so a CPU budget passes over them more often). None: every prefix."
        },
    )
    history_crop: float = field(
        default=0.0,
        metadata={
            "help": "Prefix and set modes on prompts: fraction of training examples whose history is cut to its "
            "last L items, L uniform from 1 to its length in the prompt (fixed per seed), so the model learns to "
            "predict from the newest items too. Trained on full histories only, a small T5 ranks nearly the same "
            "items whatever the newest item is. 0: every example keeps max_history items."
        },
    )
    window_stride: int | None = field(
        default=None,
        metadata={
            "help": "Sequence mode and set mode on history windows: items between the ends of consecutive "
            "training windows of a long history (each target is trained once, in the window where it has the most "
            "history, so at least max_history + 1 - window_stride items). None: half the window."
        },
    )
    max_task_examples: int | None = field(
        default=None, metadata={"help": "mode=sequence: cap on rows of each alignment task (None: all)."}
    )
    # validation and test (the genrec harness)
    eval_max_users: int | None = field(default=None, metadata={"help": "Validation users sampled (None: all)."})
    eval_num_beams: int = field(default=20, metadata={"help": "Beams for validation and test."})
    early_stopping_patience: int = field(default=3, metadata={"help": "Validations without improvement to stop."})
    max_train_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many minutes (validating once more at the stop, so the best "
            "checkpoint is still chosen by validation). A CPU budget; None: no time limit."
        },
    )
    test_max_users: int | None = field(default=None, metadata={"help": "Test users sampled (None: all)."})
    evaluate_test: bool = field(
        default=True, metadata={"help": "Score the test split after training (the metrics go into the model card)."}
    )
    # SETRec (mode=set)
    set_cf_weight: float = field(default=1.0, metadata={"help": "mode=set: training loss weight of the CF token."})
    set_cf_score_weight: float = field(
        default=1.0, metadata={"help": "mode=set: weight of the CF token's log-probability in item scores."}
    )
    decoder_last_item: bool = field(
        default=False,
        metadata={
            "help": "mode=prefix, T5: the decoder starts from the last history item's identifier and generates the "
            "next item's after it, so the newest item reaches the output through the decoder's residual path, not "
            "only through cross-attention."
        },
    )
    set_anchor_last_item: bool = field(
        default=False,
        metadata={
            "help": "mode=set, histories written as item tokens alone (template_style 'sequence' for causal LMs, "
            "'tiger' for T5) with no history_separator: each query's input is its vector plus the embedding of the "
            "last history item's token at its position (queries start as a read-out of the last item instead of "
            "from nothing)."
        },
    )

    def __post_init__(self):
        from genrec.tasks.prompts import TASKS
        from genrec.tokens import ITEM_TOKEN_INITS

        if isinstance(self.index_options, str):  # the command line and older YAMLs give JSON text
            self.index_options = json.loads(self.index_options) if self.index_options.strip() else {}
        if isinstance(self.tasks, str):  # "seqrec,item2index"
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        if isinstance(self.inference_history_choices, (str, int)):  # "20,10,5,3" from the command line
            lengths = str(self.inference_history_choices).split(",")
            self.inference_history_choices = [int(n) for n in lengths if n.strip()]
        if self.inference_history_choices is not None:
            bad = [n for n in self.inference_history_choices if not 1 <= int(n) <= self.max_history]
            if bad or not self.inference_history_choices:
                raise ValueError(
                    f"inference_history_choices must be lengths from 1 to max_history={self.max_history}, "
                    f"got {self.inference_history_choices}"
                )
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [t.strip() for t in self.lora_target_modules.split(",") if t.strip()]
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.item_token_init not in ITEM_TOKEN_INITS:
            raise ValueError(f"item_token_init must be one of {ITEM_TOKEN_INITS}, got {self.item_token_init!r}")
        if self.backbone in SCRATCH_BACKBONES and "title" in self.item_token_init:
            raise ValueError(
                "item_token_init 'title' reads a pretrained model's embeddings of title words; a scratch backbone "
                "has none to read (use 'cooccurrence' or 'mean')"
            )
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; available: {TASKS}")
        if not 0.0 <= self.history_crop <= 1.0:
            raise ValueError(f"history_crop is a fraction of training examples, from 0 to 1; got {self.history_crop}")
        if self.history_crop and "sequence" in (self.mode, self.template_style):
            raise ValueError(
                "history_crop cuts the histories of (prompt, next item) examples; sequence mode and set mode on "
                "history windows (template_style 'sequence') train every position of a window at once"
            )
        if self.window_stride is not None:
            if "sequence" not in (self.mode, self.template_style):
                raise ValueError("window_stride spaces history windows: sequence mode or template_style 'sequence'")
            if not 0 < self.window_stride <= self.max_history:
                raise ValueError(
                    f"window_stride must be from 1 to max_history ({self.max_history}), not {self.window_stride}"
                )
        if self.max_targets_per_user is not None and "sequence" in (self.mode, self.template_style):
            raise ValueError(
                "max_targets_per_user selects (prompt, next item) examples; sequence mode and set mode on history "
                "windows (template_style 'sequence') train every position of a window at once"
            )
        if self.decoder_last_item and self.mode != "prefix":
            raise ValueError(
                "decoder_last_item starts a T5 decoder from the last history item: it needs mode 'prefix'"
            )
        if self.set_anchor_last_item and (
            self.mode != "set" or self.template_style not in ("sequence", "tiger") or self.history_separator
        ):
            raise ValueError(
                "set_anchor_last_item reads the last item's tokens at the end of the history: it needs mode 'set', "
                "template_style 'sequence' (causal LMs) or 'tiger' (T5) and an empty history_separator"
            )


@dataclass
class Recipe:
    """A whole recipe: genrec's fields and the transformers training arguments."""

    config: RecipeConfig
    training: Any  # transformers.TrainingArguments
    overwrite: bool = False  # may output_dir / its bundle replace a non-empty folder genrec did not write

    @property
    def output_dir(self) -> Path:
        return Path(self.training.output_dir)


def recipe_fields() -> tuple[set[str], set[str]]:
    """Names of :class:`RecipeConfig` fields and of ``TrainingArguments`` fields."""
    from transformers import TrainingArguments

    return (
        {f.name for f in dataclasses.fields(RecipeConfig)},
        {f.name for f in dataclasses.fields(TrainingArguments) if f.init},
    )


def _legacy(values: dict) -> dict:
    """Today's YAML spellings that changed meaning: ``decoder: set`` is ``mode: set``; ``eval_steps`` alone means
    evaluating (and saving) every ``eval_steps`` steps."""
    values = dict(values)
    if values.pop("decoder", "trie") == "set":
        values["mode"] = "set"
    if values.get("eval_steps") and str(values.get("eval_strategy", "epoch")).endswith("epoch"):
        values.update(eval_strategy="steps", save_strategy="steps", save_steps=values["eval_steps"])
    return values


def recipe_from_dict(values: dict) -> Recipe:
    """Split a flat mapping (a YAML recipe plus overrides) into :class:`RecipeConfig` and ``TrainingArguments``."""
    from transformers import TrainingArguments

    values = _legacy(values)
    genrec_names, training_names = recipe_fields()
    unknown = sorted(set(values) - genrec_names - training_names)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {unknown}; see `genrec train --help`")
    config = RecipeConfig(**{k: v for k, v in values.items() if k in genrec_names})
    training = {**TRAINING_DEFAULTS, **{k: v for k, v in values.items() if k in training_names}}
    return Recipe(config, TrainingArguments(**training))


def read_yaml(path: str | Path) -> dict:
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a recipe is a mapping of field: value, got {type(values).__name__}")
    return values


def load_recipe(path: str | Path | None = None, **overrides) -> Recipe:
    """A recipe from a YAML file (``train/configs/*.yaml``), with field overrides of either part."""
    values = read_yaml(path) if path else {}
    try:
        return recipe_from_dict({**values, **overrides})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path or 'recipe'}: {err}") from None
