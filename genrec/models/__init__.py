"""Models: backbones (T5 / decoder-only built from a config, pretrained by hub id / dir / GGUF), LoRA, and the SETRec
query head."""

from genrec.models.backbones import (
    CAUSAL,
    PACKAGE_SCHEME,
    SEQ2SEQ,
    CausalArchConfig,
    T5ArchConfig,
    as_dtype,
    build_causal_lm,
    build_t5,
    load_backbone,
    resolve_model_path,
    split_gguf_path,
    train_sentencepiece_tokenizer,
)
from genrec.models.lora import LoraSettings, apply_lora

__all__ = [
    "CAUSAL",
    "PACKAGE_SCHEME",
    "SEQ2SEQ",
    "CausalArchConfig",
    "LoraSettings",
    "T5ArchConfig",
    "apply_lora",
    "as_dtype",
    "build_causal_lm",
    "build_t5",
    "load_backbone",
    "resolve_model_path",
    "split_gguf_path",
    "train_sentencepiece_tokenizer",
]
