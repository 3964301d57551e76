"""GenerativeRecommender: what every recommender kind shares (history cleaning, prompts, ranking → items, saving,
loading a bundle). A kind (trie, set) supplies its decoding tables, ``generate_ranked`` and how its model is saved
and rebuilt, and registers itself with :func:`genrec.bundle.register_recommender`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from genrec.bundle import (
    ADAPTER_DIR,
    BUNDLE_KIND,
    CONFIG_NAME,
    INDEX_NAME,
    ITEMS_NAME,
    BundleConfig,
    BundleParts,
    check_fingerprint,
    is_bundle,
    load_bundle_parts,
    read_bundle_config,
    recommender_class,
)
from genrec.indexing.base import ItemIndex
from genrec.model_card import render_model_card
from genrec.models.backbones import CAUSAL
from genrec.tasks import Prompter, SequenceFormat
from genrec.utils import atomic_directory

logger = logging.getLogger(__name__)

UNKNOWN_MODES = ("drop", "error")

# Memory one generate call may use for its beams (``GENREC_DECODE_MEMORY_MB`` overrides): a fraction of the device's
# total memory, which bounds the beam count and the histories per generate call, so a huge k or num_beams cannot
# exhaust memory. Total, not free, memory: the cap must not change between two runs of the same job.
DECODE_MEMORY_ENV = "GENREC_DECODE_MEMORY_MB"
GENERATED_TOKENS = 16  # identifier tokens a beam's cache grows by (a rough upper bound for the estimate)


def decode_memory_budget(device: torch.device) -> int:
    """Bytes the beams of one generate call may take on ``device``: ``$GENREC_DECODE_MEMORY_MB``, else a quarter of
    a GPU's memory or an eighth of the machine's RAM."""
    if os.environ.get(DECODE_MEMORY_ENV):
        return int(float(os.environ[DECODE_MEMORY_ENV]) * 2**20)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return total // 8


def check_k(k, name: str = "k") -> int:
    """``k`` as a positive int, or ``ValueError`` (booleans, floats and strings are not counts)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def check_history(history, position: int | None = None) -> None:
    """A history is a sequence of item ids; a bare string would be read as one item per character."""
    where = "a history" if position is None else f"history #{position}"
    if isinstance(history, (str, bytes)):
        raise ValueError(
            f"{where} is the string {history!r}, not a list of item ids (it would be read one character per item); "
            f"pass [{history!r}] for a single item, or a list of histories: [[...], [...]]"
        )
    if isinstance(history, Mapping) or not isinstance(history, Iterable):
        raise ValueError(f"{where} must be a list of item ids, got {type(history).__name__}")


@dataclass
class Recommendation:
    item_id: str
    score: float
    identifier: str
    title: str = ""


class GenerativeRecommender:
    """A tuned model + tokenizer + item index that recommends next items from interaction histories.

    ``GenerativeRecommender.from_pretrained(dir)`` loads any bundle and returns the recommender kind its config
    names (:class:`~genrec.recommenders.trie.TrieRecommender` or :class:`~genrec.recommenders.set.SetRecommender`).

    Example:
        >>> rec = GenerativeRecommender.from_pretrained("runs/tiger_t5/bundle")  # doctest: +SKIP
        >>> rec.recommend([["50", "172", "133"]], k=10)  # doctest: +SKIP
    """

    decoder: str  # set by register_recommender
    config_class: type[BundleConfig] = BundleConfig
    decoding_description = "decoding is trie-constrained"

    def __init__(self, model, tokenizer, index: ItemIndex, config: BundleConfig, titles: dict[str, str] | None = None):
        check_fingerprint(config, index)
        self.model = model
        self.tokenizer = tokenizer
        self.index = index
        self.config = config
        self.titles = titles or {}
        self.prompter = Prompter(
            index, self.titles, config.template_style, config.max_history, config.max_title_history, config.separator
        )
        self.sequence_format = None  # template "sequence": the history is written as token ids, not text
        if config.template_style == "sequence":
            self.sequence_format = SequenceFormat(self.tokenizer, self.index, self.config.separator)
        self.tokenizer.truncation_side = "left"  # keep the most recent history when a prompt is too long
        if config.kind == CAUSAL:
            self.tokenizer.padding_side = "left"
        self._build_decoder()

    # ------------------------------------------------------------------ what a recommender kind supplies
    def _build_decoder(self) -> None:
        """Build the tables that turn model outputs into items (on the model's device)."""
        raise NotImplementedError

    def _move_decoder(self, device) -> None:
        """Move the decoding tables to ``device``."""
        raise NotImplementedError

    def generate_ranked(
        self, encoded, num_beams: int, seen: Sequence[set[str]] | None = None, **options
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Per encoded row, item positions in the index and their scores, best first (at most ``num_beams``).
        ``seen`` (per row) lets a kind leave those items out before ranking; the caller filters them anyway."""
        raise NotImplementedError

    def _model_to_save(self):
        """The transformers/peft model whose ``save_pretrained`` writes the backbone."""
        return self.model

    def _save_extra(self, directory: Path) -> None:
        """Files beside the backbone that this kind needs (none by default)."""

    @classmethod
    def _rebuild_model(cls, path: Path, config: BundleConfig, parts: BundleParts):
        """The model this kind decodes with, from a loaded bundle's parts."""
        return parts.backbone

    # ------------------------------------------------------------------ shared
    def to(self, device) -> GenerativeRecommender:
        """Move the model and the decoding tables to ``device``."""
        self.model.to(device)
        self._move_decoder(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def clean_history(self, history: Sequence[str], unknown: str = "drop") -> tuple[list[str], int]:
        """Keep indexed items (most recent ``max_history``); ``unknown='error'`` raises on an unknown item."""
        if unknown not in UNKNOWN_MODES:
            raise ValueError(f"unknown must be one of {UNKNOWN_MODES}, got {unknown!r}")
        check_history(history)
        history = list(history)
        known = [str(i) for i in history if str(i) in self.index]
        dropped = len(history) - len(known)
        if dropped and unknown == "error":
            bad = [i for i in history if str(i) not in self.index][:5]
            raise KeyError(f"{dropped} item(s) of the history are not in the index, e.g. {bad}")
        return known[-self.config.max_history :], dropped

    def use_max_history(self, n: int) -> None:
        """Keep only the most recent ``n`` items of every history from now on (saved with the bundle): training picks
        the length that ranks best on validation, which may be shorter than the one it trained on."""
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"max_history must be a positive integer, got {n!r}")
        self.config.max_history = self.prompter.max_history = int(n)
        self._typical_prompt_tokens = None

    def seen_items(self, history: Sequence[str]) -> set[str]:
        """Every indexed item of ``history`` (what ``exclude_seen`` removes; the prompt keeps only the last
        ``max_history``)."""
        return {str(i) for i in history if str(i) in self.index}

    def clean_histories(self, histories: Sequence[Sequence[str]], unknown: str = "drop") -> list[list[str]]:
        """:meth:`clean_history` for a batch; raises ``ValueError`` naming the first history left empty (or given
        as a bare string: ``["172"]`` is one history of three one-character items, not ``[["172"]]``)."""
        if isinstance(histories, (str, bytes, Mapping)) or not isinstance(histories, Iterable):
            raise ValueError(f"histories must be a list of histories (lists of item ids), got {histories!r:.80}")
        histories = list(histories)
        for position, history in enumerate(histories):
            check_history(history, position)
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
        **options,
    ) -> list[list[Recommendation]]:
        """Ranked :class:`Recommendation` lists (best first) for each history.

        Args:
            k: items per history. num_beams: beams (≥ k; default the bundle's, 20; ignored by set decoding).
            exclude_seen: never recommend an item of the history (all of it, not only the ``max_history`` items the
                prompt keeps); trie decoding forbids them during beam search, so ``k`` items still come back.
            unknown: ``"drop"`` unknown history items (logged with a count) or ``"error"``.
            options: passed to the kind's ``generate_ranked`` (e.g. ``cf_score_weight`` for set decoding).
        ``k`` above the catalog size, or a beam count beyond :func:`decode_memory_budget`, is capped with a warning
        (:meth:`resolve_k`); many beams also mean fewer histories per generate call (:meth:`histories_per_call`).

        Raises:
            ValueError: a history is empty (after dropping unknown items) or a bare string, or ``k``/``num_beams``/
                ``batch_size`` is not a positive integer.
        """
        k, num_beams = self.resolve_k(k, num_beams)
        batch_size = min(check_k(batch_size, "batch_size"), self.histories_per_call(num_beams))
        if isinstance(histories, Iterable) and not isinstance(histories, (str, bytes, Mapping)):
            histories = list(histories)  # read twice: cleaned for the prompt, whole for exclude_seen
        cleaned = self.clean_histories(histories, unknown)

        self.model.eval()
        results: list[list[Recommendation]] = []
        for start in range(0, len(cleaned), batch_size):
            batch = cleaned[start : start + batch_size]
            # the whole history, not only the max_history items the prompt keeps
            whole = histories[start : start + batch_size]
            seen = [self.seen_items(h) for h in whole] if exclude_seen else None
            positions, scores = self.generate_ranked(self.encode(batch), num_beams, seen=seen, **options)
            for history, item_positions, item_scores in zip(whole, positions, scores):
                results.append(self.to_recommendations(history, item_positions, item_scores, k, exclude_seen))
        return results

    def bytes_per_beam(self, prompt_tokens: int | None = None) -> int:
        """A rough upper bound of the memory one beam takes in a generate call: float32 scores over the vocabulary
        (and the copies beam search and the trie mask make), the key/value cache of the prompt and of the generated
        identifier (cross-attention for T5), and T5's encoder states (repeated per beam)."""
        prompt_tokens = prompt_tokens or self.typical_prompt_tokens()
        total = 4 * 4 * max(1, len(self.tokenizer))
        config = getattr(self.model, "config", None)
        if config is None or not hasattr(config, "to_dict"):
            return total  # not a transformers model (set decoding scores items in one forward pass)
        element = next(self.model.parameters()).element_size()
        layers = _config_value(config, "num_decoder_layers", "num_hidden_layers", "n_layer", "num_layers")
        hidden = _config_value(config, "d_model", "hidden_size", "n_embd")
        heads = _config_value(config, "num_heads", "num_attention_heads", "n_head") or 1
        head_dim = _config_value(config, "d_kv", "head_dim") or hidden // heads
        kv_heads = _config_value(config, "num_key_value_heads") or heads
        per_token = 2 * layers * kv_heads * head_dim * element  # keys and values, every layer
        total += (prompt_tokens + GENERATED_TOKENS) * per_token
        if getattr(config, "is_encoder_decoder", False):
            total += prompt_tokens * hidden * element
        return total

    def typical_prompt_tokens(self) -> int:
        """Tokens of the prompt of a full-length history (``max_history`` catalog items), measured once."""
        if getattr(self, "_typical_prompt_tokens", None) is None:
            history = self.index.item_ids[: self.config.max_history]
            self._typical_prompt_tokens = int(self.encode([history])["input_ids"].shape[1])
        return self._typical_prompt_tokens

    def max_beams(self) -> int:
        """The most beams one history may use: the catalog size, and what fits :func:`decode_memory_budget`."""
        budget = decode_memory_budget(self.device)
        return max(1, min(len(self.index), budget // self.bytes_per_beam()))

    def histories_per_call(self, num_beams: int, prompt_tokens: int | None = None) -> int:
        """Histories one generate call may take with ``num_beams`` beams each, within :func:`decode_memory_budget`."""
        return max(1, decode_memory_budget(self.device) // (self.bytes_per_beam(prompt_tokens) * num_beams))

    def resolve_k(self, k, num_beams=None, warn: bool = True) -> tuple[int, int]:
        """Validated ``(k, num_beams)``: both positive, ``num_beams >= k`` (default the bundle's), both capped at
        :meth:`max_beams` (more items than the catalog has cannot be recommended), with a warning when capped."""
        k = check_k(k)
        requested_beams = None if num_beams is None else check_k(num_beams, "num_beams")
        cap = self.max_beams()
        if k > cap:
            if warn:
                reason = "the catalog size" if cap == len(self.index) else "the memory-safe beam count"
                logger.warning("k=%d capped at %d (%s)", k, cap, reason)
            k = cap
        num_beams = max(requested_beams or self.config.num_beams, k)
        if num_beams > cap:
            if warn and requested_beams is not None and requested_beams > cap:
                logger.warning("num_beams=%d capped at %d", requested_beams, cap)
            num_beams = cap
        return k, num_beams

    def encode(self, histories: Sequence[Sequence[str]]):
        """Tokenised prompts of cleaned histories (padded on the tokenizer's side; long prompts lose their oldest
        tokens). Shared with the pipeline, which encodes one history at a time and pads in its collate step."""
        if self.sequence_format is not None:
            ids = [{"input_ids": self.sequence_format.encode(h)} for h in histories]
            return self.tokenizer.pad(ids, return_tensors="pt")
        prompts = [self.prompter.seqrec_prompt(h) for h in histories]
        return self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_prompt_tokens
        )

    def to_recommendations(
        self, history: Iterable[str], positions: Sequence[int], scores: Sequence[float], k: int, exclude_seen: bool
    ) -> list[Recommendation]:
        """The first ``k`` ranked items as :class:`Recommendation` (skipping ``history`` items if ``exclude_seen``)."""
        seen = {str(i) for i in history} if exclude_seen else ()
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
    def save_pretrained(self, path: str | Path, model_card: str | None = None, overwrite: bool = False) -> Path:
        """Write the bundle atomically (a failed save leaves no half-written bundle). ``path`` may hold a previous
        bundle (replaced) but nothing else unless ``overwrite``: a user's files are never deleted by default."""
        path = Path(path)
        model = self._model_to_save()
        with atomic_directory(path, BUNDLE_KIND, overwrite, is_bundle) as tmp:
            if self.config.adapter:
                # The identifier-token rows travel as peft trainable tokens; the base embeddings need not be copied.
                model.save_pretrained(tmp / ADAPTER_DIR, save_embedding_layers=False)
                # the base architecture's config, so `transformers.pipeline(model=bundle_dir)` can resolve one
                model.get_base_model().config.save_pretrained(tmp)
            else:
                model.save_pretrained(tmp)
            self._save_extra(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.index.save(tmp / INDEX_NAME)
            (tmp / ITEMS_NAME).write_text(json.dumps(self.titles, ensure_ascii=False, sort_keys=True))
            config = {**dataclasses.asdict(self.config), "decoder": self.decoder}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
            card = model_card or render_model_card(self.config, self.index, self.decoding_description)
            (tmp / "README.md").write_text(card)
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | Path, index: ItemIndex | str | None = None, device: str | None = None, dtype=None
    ) -> GenerativeRecommender:
        """Load a bundle as the recommender kind its config names. Passing ``index`` (an ItemIndex or its file)
        checks it against the model and fails loudly if it is not the index the model was trained on."""
        path = Path(path)
        raw_config = read_bundle_config(path)
        kind = recommender_class(raw_config)
        if not issubclass(kind, cls):
            raise ValueError(f"{path} is a {kind.decoder!r} bundle; load it with {kind.__name__}")
        config = kind.config_class(**raw_config)
        parts = load_bundle_parts(path, config, index, dtype)
        model = kind._rebuild_model(path, config, parts)
        if device:
            model.to(device)
        model.eval()
        return kind(model, parts.tokenizer, parts.index, config, parts.titles)


def _config_value(config, *names: str) -> int:
    """The first of ``names`` that a model config sets (0 if none): configs spell the same size differently."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0
