"""LoRA (peft) for pretrained backbones, with the new identifier-token rows trained and saved as well."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from genrec.models.backbones import SEQ2SEQ

logger = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    """LoRA hyper-parameters. Defaults follow LC-Rec (r=8, alpha=32, dropout 0.05, attention projections)."""

    r: int = field(default=8, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    target_modules: list[str] | None = field(
        default=None, metadata={"help": "Module names to adapt; None = peft's default for the architecture."}
    )


def apply_lora(model, kind: str, new_token_ids: list[int], settings: LoraSettings | None = None):
    """Wrap ``model`` with LoRA; the identifier tokens' input (and untied output) rows are trained and saved too."""
    from peft import LoraConfig, TaskType, get_peft_model

    settings = settings or LoraSettings()
    token_layers = {}
    if new_token_ids:
        input_name = _module_name(model, model.get_input_embeddings())
        token_layers[input_name] = list(new_token_ids)
        output = model.get_output_embeddings()
        if output is not None and output.weight is not model.get_input_embeddings().weight:
            token_layers[_module_name(model, output)] = list(new_token_ids)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        trainable_token_indices=token_layers or None,
        task_type=TaskType.SEQ_2_SEQ_LM if kind == SEQ2SEQ else TaskType.CAUSAL_LM,
    )
    peft_model = get_peft_model(model, config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable parameters of %d (%.2f%%)", trainable, total, 100 * trainable / max(1, total))
    return peft_model


def _module_name(model, module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.split(".")[-1]
    raise ValueError("module not found in model")
