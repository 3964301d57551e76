"""Saved bundles: their config, file names, and the registry from a bundle's decoder tag to its recommender class.

A bundle is one self-contained directory::

    genrec_config.json   decoder tag, backbone kind, prompt settings, index fingerprint, base model, metrics
    item_index.json      the ItemIndex (identifier ↔ item), with its fingerprint
    items.json           item id → title (for title tasks and readable output)
    model.safetensors…   full weights (models trained from scratch)   or   adapter/ (LoRA + new-token rows)
    tokenizer files      the tokenizer with the identifier tokens added
    README.md            model card with this bundle's measured metrics

Each recommender kind registers itself with :func:`register_recommender` under its decoder tag (``"trie"``,
``"set"``); :func:`recommender_class` picks the class a saved bundle needs. A new decoder is one module under
``genrec/recommenders/`` plus its registration.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from genrec.indexing.base import ItemIndex, ItemIndexError
from genrec.models.backbones import CAUSAL, SEQ2SEQ, as_dtype, load_backbone
from genrec.tokens import check_tokenizer_covers, resize_embeddings

logger = logging.getLogger(__name__)

CONFIG_NAME = "genrec_config.json"
BUNDLE_KIND = "bundle"
INDEX_NAME = "item_index.json"
ITEMS_NAME = "items.json"
ADAPTER_DIR = "adapter"
DEFAULT_DECODER = "trie"


@dataclass
class BundleConfig:
    """What a bundle needs to rebuild its recommender (saved as ``genrec_config.json``)."""

    kind: str = field(metadata={"help": "'seq2seq' (T5) or 'causal'."})
    index_fingerprint: str = field(metadata={"help": "Fingerprint of the item index the model was trained on."})
    decoder: str = field(default=DEFAULT_DECODER, metadata={"help": "Recommender kind that decodes this bundle."})
    template_style: str = "p5"
    max_history: int = 20
    max_title_history: int = 10
    separator: str = ", "
    base_model: str | None = field(default=None, metadata={"help": "Base model of a LoRA adapter bundle."})
    adapter: bool = False
    base_model_layers: int | None = field(
        default=None, metadata={"help": "Decoder layers of base_model kept (None: all); see keep_first_layers."}
    )
    num_beams: int = 20
    max_prompt_tokens: int = 1024
    decoder_last_item: bool = field(
        default=False, metadata={"help": "T5: the decoder starts from the last history item's identifier."}
    )
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in (SEQ2SEQ, CAUSAL):
            raise ValueError(f"kind must be {SEQ2SEQ!r} or {CAUSAL!r}, got {self.kind!r}")
        if self.adapter and not self.base_model:
            raise ValueError("an adapter bundle needs base_model")
        if self.decoder_last_item and self.kind != SEQ2SEQ:
            raise ValueError("decoder_last_item starts a T5 decoder from the last history item; this bundle is causal")


RECOMMENDERS: dict[str, type] = {}


def register_recommender(decoder: str):
    """Class decorator: the recommender class that decodes bundles whose config says ``"decoder": decoder``."""

    def decorator(cls):
        if decoder in RECOMMENDERS:
            raise ValueError(f"decoder {decoder!r} is already registered by {RECOMMENDERS[decoder].__name__}")
        cls.decoder = decoder
        RECOMMENDERS[decoder] = cls
        return cls

    return decorator


def read_bundle_config(path: str | Path) -> dict:
    """The raw ``genrec_config.json`` of bundle ``path`` (a clear error for a directory that is not a bundle)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bundle directory {path} does not exist (genrec bundles are local directories)")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is a file, not a genrec bundle directory")
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a genrec bundle (no {CONFIG_NAME})")
    raw = _read_json(path / CONFIG_NAME)
    if not isinstance(raw, dict):
        raise ValueError(f"{path / CONFIG_NAME} is not a JSON object; re-save the bundle")
    return raw


def _read_json(path: Path):
    """A bundle's JSON file; a truncated or damaged one is reported by name."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-save the bundle") from None


def is_bundle(path: Path) -> bool:
    """A directory written by ``save_pretrained`` before outputs carried a manifest."""
    return (path / CONFIG_NAME).is_file()


def recommender_class(raw_config: dict) -> type:
    """The registered recommender class for a bundle config (bundles from before the tag decode with the trie)."""
    decoder = raw_config.get("decoder", DEFAULT_DECODER)
    if decoder not in RECOMMENDERS:
        raise ValueError(f"bundle decoder {decoder!r} is unknown; registered: {sorted(RECOMMENDERS)}")
    return RECOMMENDERS[decoder]


def looks_like_local_path(reference: str) -> bool:
    """A model reference that can only be a path: absolute, relative with ./ ../ ~, or with more than one ``/``
    (a hub id is ``name`` or ``org/name``), or a file name."""
    text = str(reference)
    return (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or text.count("/") > 1
        or "\\" in text
        or text.endswith((".gguf", ".json", ".safetensors"))
    )


def check_model_reference(reference: str, source: str) -> str:
    """``reference`` unchanged if it exists locally or may be a hub id; a missing local path is reported as missing
    (instead of the hub's "Repo id must be in the form ..."), naming where the reference came from."""
    from genrec.models.backbones import PACKAGE_SCHEME

    text = str(reference)
    if text.startswith(PACKAGE_SCHEME) or os.path.exists(os.path.expanduser(text)):
        return text
    if looks_like_local_path(text):
        raise FileNotFoundError(f"{source}: model path {text} does not exist")
    check_hub_model(text, source)
    return text


def hub_offline() -> bool:
    """Whether the user asked for no hub access (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE") for name in _OFFLINE_VARIABLES)


_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def check_hub_model(repo_id: str, source: str) -> None:
    """A hub model that is neither cached nor reachable fails in a second, with what to do, instead of after a minute
    of download retries. Offline (``HF_HUB_OFFLINE=1``) it must be in the local cache."""
    from huggingface_hub import constants, get_session, try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return  # cached: transformers loads it without the network
    except ValueError:  # not a valid repo id: transformers reports it
        return
    if hub_offline():
        raise FileNotFoundError(
            f"{source}: {repo_id} is not in the local Hugging Face cache and the hub is off (HF_HUB_OFFLINE); "
            "download it first, or pass a local directory"
        )
    try:
        get_session().head(f"{constants.ENDPOINT}/api/models/{repo_id}", timeout=10)
    except Exception as err:  # any transport failure: no route, DNS, proxy, timeout
        raise OSError(
            f"{source}: cannot reach {constants.ENDPOINT} to download {repo_id} ({err}); pass a local directory, "
            "or set HF_HUB_OFFLINE=1 to use the local cache only"
        ) from None


def check_fingerprint(config: BundleConfig, index: ItemIndex) -> None:
    if config.index_fingerprint != index.fingerprint:
        raise ItemIndexError(
            f"the model was trained on item index {config.index_fingerprint} but was given index "
            f"{index.fingerprint} ({index.method}); load it with the index it was trained on"
        )


@dataclass
class BundleParts:
    """What every bundle holds, each part checked against the others by :func:`load_bundle_parts`."""

    index: ItemIndex
    titles: dict[str, str]
    tokenizer: object
    backbone: object


def load_bundle_parts(path: Path, config: BundleConfig, index: ItemIndex | str | None = None, dtype=None):
    """Load a bundle's index (or the caller's ``index``), titles, tokenizer and backbone.

    The index must be the one the model was trained on, the tokenizer must know its tokens, and the backbone must
    have an embedding row for every token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if index is None:
        index = ItemIndex.load(path / INDEX_NAME)
    elif not isinstance(index, ItemIndex):
        index = ItemIndex.load(index)
    check_fingerprint(config, index)
    titles = _read_json(path / ITEMS_NAME) if (path / ITEMS_NAME).is_file() else {}
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer_covers(tokenizer, index)
    dtype = as_dtype(dtype)
    if config.adapter:
        from peft import PeftModel

        base_model = check_model_reference(config.base_model, f"{path / CONFIG_NAME} (base_model)")
        base, _, _ = load_backbone(base_model, dtype=dtype, num_layers=config.base_model_layers)
        resize_embeddings(base, len(tokenizer))
        backbone = PeftModel.from_pretrained(base, path / ADAPTER_DIR)
    else:
        model_cls = AutoModelForSeq2SeqLM if config.kind == SEQ2SEQ else AutoModelForCausalLM
        backbone = model_cls.from_pretrained(path, dtype=dtype or torch.float32)
    rows = backbone.get_input_embeddings().weight.shape[0]  # peft's TrainableTokensWrapper has no num_embeddings
    if rows < len(tokenizer):
        raise ItemIndexError(f"the model has {rows} embedding rows but the tokenizer has {len(tokenizer)} tokens")
    return BundleParts(index, titles, tokenizer, backbone)
