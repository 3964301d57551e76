"""GenerativeRecommender: a tuned model + tokenizer + item index that generates next-item identifiers.

A saved bundle (``save_pretrained``) is one self-contained directory::

    genrec_config.json   backbone kind, prompt settings, index fingerprint, base model (for adapters), metrics
    item_index.json      the ItemIndex (identifier ↔ item), with its fingerprint
    items.json           item id → title (for title tasks and readable output)
    model.safetensors…   full weights (models trained from scratch)   or   adapter/ (LoRA + new-token rows)
    tokenizer files      the tokenizer with the identifier tokens added
    README.md            model card with this bundle's measured metrics
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genrec.decoding import ItemTrie, TrieConstrainedLogitsProcessor, rank_items
from genrec.indexing.base import ItemIndex, ItemIndexError
from genrec.models import CAUSAL, SEQ2SEQ, load_backbone
from genrec.tasks import Prompter
from genrec.tokens import check_tokenizer_covers, identifier_token_ids, resize_embeddings
from genrec.utils import atomic_directory

logger = logging.getLogger(__name__)

CONFIG_NAME = "genrec_config.json"
INDEX_NAME = "item_index.json"
ITEMS_NAME = "items.json"
ADAPTER_DIR = "adapter"


@dataclass
class BundleConfig:
    """What a bundle needs to rebuild its recommender (saved as ``genrec_config.json``)."""

    kind: str = field(metadata={"help": "'seq2seq' (T5) or 'causal'."})
    index_fingerprint: str = field(metadata={"help": "Fingerprint of the item index the model was trained on."})
    template_style: str = "p5"
    max_history: int = 20
    max_title_history: int = 10
    separator: str = ", "
    base_model: str | None = field(default=None, metadata={"help": "Base model of a LoRA adapter bundle."})
    adapter: bool = False
    num_beams: int = 20
    max_prompt_tokens: int = 1024
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in (SEQ2SEQ, CAUSAL):
            raise ValueError(f"kind must be {SEQ2SEQ!r} or {CAUSAL!r}, got {self.kind!r}")
        if self.adapter and not self.base_model:
            raise ValueError("an adapter bundle needs base_model")


def _check_fingerprint(config: BundleConfig, index: ItemIndex) -> None:
    if config.index_fingerprint != index.fingerprint:
        raise ItemIndexError(
            f"the model was trained on item index {config.index_fingerprint} but was given index "
            f"{index.fingerprint} ({index.method}); load it with the index it was trained on"
        )


@dataclass
class Recommendation:
    item_id: str
    score: float
    identifier: str
    title: str = ""


class GenerativeRecommender:
    """Generates the identifiers of a user's next items with trie-constrained beam search.

    Example:
        >>> rec = GenerativeRecommender.from_pretrained("runs/tiger_t5")  # doctest: +SKIP
        >>> rec.recommend([["50", "172", "133"]], k=10)  # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, index: ItemIndex, config: BundleConfig, titles: dict[str, str] | None = None):
        _check_fingerprint(config, index)
        self.model = model
        self.tokenizer = tokenizer
        self.index = index
        self.config = config
        self.titles = titles or {}
        self.prompter = Prompter(
            index, self.titles, config.template_style, config.max_history, config.max_title_history, config.separator
        )
        self.tokenizer.truncation_side = "left"  # keep the most recent history when a prompt is too long
        if config.kind == CAUSAL:
            self.tokenizer.padding_side = "left"
        self._build_decoder()

    def _build_decoder(self) -> None:
        """The structure that turns model outputs into items: here the trie over identifier token ids."""
        self.trie = ItemTrie(
            identifier_token_ids(self.tokenizer, self.index), self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        ).to(self.device)

    def to(self, device) -> GenerativeRecommender:
        """Move the model and the decoding tables to ``device``."""
        self.model.to(device)
        self.trie = self.trie.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ inference
    def clean_history(self, history: Sequence[str], unknown: str = "drop") -> tuple[list[str], int]:
        """Keep indexed items (most recent ``max_history``); ``unknown='error'`` raises on an unknown item."""
        known = [str(i) for i in history if str(i) in self.index]
        dropped = len(history) - len(known)
        if dropped and unknown == "error":
            bad = [i for i in history if str(i) not in self.index][:5]
            raise KeyError(f"{dropped} item(s) of the history are not in the index, e.g. {bad}")
        return known[-self.config.max_history :], dropped

    def clean_histories(self, histories: Sequence[Sequence[str]], unknown: str = "drop") -> list[list[str]]:
        """:meth:`clean_history` for a batch; raises ``ValueError`` naming the first history left empty."""
        cleaned, total_dropped = [], 0
        for position, history in enumerate(histories):
            items, dropped = self.clean_history(history, unknown)
            total_dropped += dropped
            if not items:
                raise ValueError(f"history #{position} is empty (after dropping {dropped} unknown item(s))")
            cleaned.append(items)
        if total_dropped:
            logger.warning("dropped %d unknown item(s) from %d histories", total_dropped, len(histories))
        return cleaned

    def recommend(self, histories: Sequence[Sequence[str]], k: int = 10, **options) -> list[list[str]]:
        """Top-``k`` item ids per history (the evaluation harness protocol). Options as :meth:`recommend_scored`."""
        return [[r.item_id for r in recs] for recs in self.recommend_scored(histories, k, **options)]

    @torch.inference_mode()
    def recommend_scored(
        self,
        histories: Sequence[Sequence[str]],
        k: int = 10,
        num_beams: int | None = None,
        exclude_seen: bool = False,
        batch_size: int = 32,
        unknown: str = "drop",
    ) -> list[list[Recommendation]]:
        """Ranked :class:`Recommendation` lists (best first) for each history.

        Args:
            k: items per history. num_beams: beams (≥ k; default the bundle's, 20).
            exclude_seen: drop items already in the history (may then return fewer than ``k``).
            unknown: ``"drop"`` unknown history items (logged with a count) or ``"error"``.
        Raises:
            ValueError: a history is empty (after dropping unknown items).
        """
        num_beams = max(num_beams or self.config.num_beams, k)
        cleaned = self.clean_histories(histories, unknown)

        self.model.eval()
        results: list[list[Recommendation]] = []
        for start in range(0, len(cleaned), batch_size):
            batch = cleaned[start : start + batch_size]
            positions, scores = self.generate_ranked(self.encode(batch), num_beams)
            for history, item_positions, item_scores in zip(batch, positions, scores):
                results.append(self.to_recommendations(history, item_positions, item_scores, k, exclude_seen))
        return results

    def encode(self, histories: Sequence[Sequence[str]]):
        """Tokenised prompts of cleaned histories (padded on the tokenizer's side; long prompts lose their oldest
        tokens). Shared with the pipeline, which encodes one history at a time and pads in its collate step."""
        prompts = [self.prompter.seqrec_prompt(h) for h in histories]
        return self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_prompt_tokens
        )

    @torch.inference_mode()
    def generate_ranked(self, encoded, num_beams: int) -> tuple[list[list[int]], list[list[float]]]:
        """Trie-constrained beam search on an encoded batch → per row, item positions in the index and their scores,
        best first (at most ``num_beams``)."""
        prompt_length = 1 if self.config.kind == SEQ2SEQ else encoded["input_ids"].shape[1]
        output = self.model.generate(
            input_ids=encoded["input_ids"].to(self.device),
            attention_mask=encoded["attention_mask"].to(self.device),
            logits_processor=[TrieConstrainedLogitsProcessor(self.trie, prompt_length)],
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=self.trie.max_length + 1,
            do_sample=False,
            length_penalty=0.0,  # rank items by total log-probability, whatever their identifier length
            early_stopping=True,
            return_dict_in_generate=True,
            output_scores=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        generated = output.sequences[:, prompt_length:] if self.config.kind == CAUSAL else output.sequences[:, 1:]
        return rank_items(self.trie, generated, output.sequences_scores, num_beams, num_beams)

    def to_recommendations(
        self, history: Sequence[str], positions: Sequence[int], scores: Sequence[float], k: int, exclude_seen: bool
    ) -> list[Recommendation]:
        """The first ``k`` ranked items as :class:`Recommendation` (skipping ``history`` items if ``exclude_seen``)."""
        seen = set(history) if exclude_seen else ()
        recs = []
        for pos, score in zip(positions, scores):
            item = self.index.item_ids[pos]
            if item in seen:
                continue
            recs.append(Recommendation(item, float(score), self.index.identifiers[pos], self.titles.get(item, "")))
            if len(recs) == k:
                break
        return recs

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path, model_card: str | None = None) -> Path:
        """Write the bundle atomically (a failed save leaves no half-written bundle)."""
        from genrec.model_card import render_model_card

        path = Path(path)
        with atomic_directory(path) as tmp:
            if self.config.adapter:
                # The identifier-token rows travel as peft trainable tokens; the base embeddings need not be copied.
                self.model.save_pretrained(tmp / ADAPTER_DIR, save_embedding_layers=False)
                # the base architecture's config, so `transformers.pipeline(model=bundle_dir)` can resolve one
                self.model.get_base_model().config.save_pretrained(tmp)
            else:
                self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.index.save(tmp / INDEX_NAME)
            (tmp / ITEMS_NAME).write_text(json.dumps(self.titles, ensure_ascii=False, sort_keys=True))
            (tmp / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2, sort_keys=True))
            (tmp / "README.md").write_text(model_card or render_model_card(self.config, self.index))
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | Path, index: ItemIndex | str | None = None, device: str | None = None, dtype=None
    ) -> GenerativeRecommender:
        """Load a bundle. Passing ``index`` (an ItemIndex or its file) checks it against the model and fails loudly
        if it is not the index the model was trained on."""
        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a genrec bundle (no {CONFIG_NAME})")
        raw_config = json.loads((path / CONFIG_NAME).read_text())
        if raw_config.get("decoder") == "set":  # a SETRec bundle (genrec/setrec.py)
            from genrec.setrec import SetRecommender

            return SetRecommender.from_pretrained(path, index=index, device=device, dtype=dtype)
        config = BundleConfig(**raw_config)
        index, titles, tokenizer, model = load_bundle_parts(path, config, index, dtype)
        if device:
            model.to(device)
        model.eval()
        return cls(model, tokenizer, index, config, titles)


def load_bundle_parts(path: Path, config: BundleConfig, index: ItemIndex | str | None = None, dtype=None):
    """What every bundle holds: ``(index, titles, tokenizer, backbone)``, each checked against the others.

    The index (the bundle's own, or ``index`` given by the caller) must be the one the model was trained on, the
    tokenizer must know its tokens, and the backbone must have an embedding row for every token.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if index is None:
        index = ItemIndex.load(path / INDEX_NAME)
    elif not isinstance(index, ItemIndex):
        index = ItemIndex.load(index)
    _check_fingerprint(config, index)
    titles = json.loads((path / ITEMS_NAME).read_text()) if (path / ITEMS_NAME).is_file() else {}
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer_covers(tokenizer, index)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if config.adapter:
        from peft import PeftModel

        base, _, _ = load_backbone(config.base_model, dtype=dtype)
        resize_embeddings(base, len(tokenizer))
        backbone = PeftModel.from_pretrained(base, path / ADAPTER_DIR)
    else:
        model_cls = AutoModelForSeq2SeqLM if config.kind == SEQ2SEQ else AutoModelForCausalLM
        backbone = model_cls.from_pretrained(path, dtype=dtype or torch.float32)
    rows = backbone.get_input_embeddings().weight.shape[0]  # peft's TrainableTokensWrapper has no num_embeddings
    if rows < len(tokenizer):
        raise ItemIndexError(f"the model has {rows} embedding rows but the tokenizer has {len(tokenizer)} tokens")
    return index, titles, tokenizer, backbone
