"""Semantic IDs from residual quantisation of item content embeddings (TIGER; LC-Rec).

Each item's text (or a user-supplied vector) is embedded and quantised into ``num_levels`` codes, one new token per
level: ``<a_12><b_3><c_200>``. Items with similar content share leading tokens, which is what lets a generative
model generalise across items. Two items can receive the same codes; ``dedup`` decides how they are told apart:

- ``suffix`` (TIGER): every identifier gets one more level numbering the items that share the codes (``<d_0>``,
  ``<d_1>``, ...), so all identifiers have ``num_levels + 1`` tokens.
- ``sinkhorn`` (LC-Rec's uniform semantic mapping): the last level of colliding items is re-assigned with a
  Sinkhorn-Knopp balanced assignment over their distances to that level's free codewords (each codeword of a prefix
  takes at most one item) until no collision is left; identifiers keep ``num_levels`` tokens. Only a prefix holding
  more items than ``codebook_size`` falls back to a suffix (counted in ``stats["suffix_fallback_groups"]``).

Item text is metadata, not interaction data, so the index may be fitted on every catalog item. Items added later
(:meth:`SemanticRQIndexer.extend`) are embedded the same way, get their nearest codewords under the saved
quantiser, and collisions with existing identifiers are resolved with the same rule.
"""

from __future__ import annotations

import logging
import math
import string
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genrec.embeddings import check_embeddings, item_embeddings, load_embeddings
from genrec.indexing.base import (
    Indexer,
    IndexerConfig,
    ItemIndex,
    ItemIndexError,
    identifier_tokens,
    register_indexer,
    unit_rows,
)
from genrec.indexing.collaborative import collaborative_embeddings
from genrec.indexing.quantizers import (
    QUANTIZERS,
    RQVAE,
    ResidualQuantizer,
    RQKMeans,
    codebook_utilisation,
    collision_stats,
    dedup_sinkhorn,
    dedup_suffix,
    quantizer_from_state,
    residual_before_level,
)

logger = logging.getLogger(__name__)

DEDUP_METHODS = ("suffix", "sinkhorn")


@dataclass
class ContentIndexerConfig(IndexerConfig):
    """Options of indexers that embed item content (shared by ``semantic-rq`` and ``set``).

    Args:
        encoder_model (`str`, *optional*): sentence encoder (hub id or local dir); defaults to the packaged
            all-MiniLM-L6-v2.
        text_fields (`list[str]`, *optional*): item columns that describe an item; defaults to title + text columns.
        embeddings_file (`str`, *optional*): precomputed item vectors (``.npy`` aligned with the item table, or
            ``.parquet``/``.csv`` keyed by ``item_id``) used instead of encoding text.
        encode_batch_size (`int`, defaults to 64): texts per encoder forward pass.
        auto_shrink (`bool`, defaults to `False`): use fewer codewords than asked when the catalog has fewer items
            than a codebook, instead of failing.
    """

    encoder_model: str | None = field(
        default=None, metadata={"help": "Sentence encoder hub id or local dir (default: packaged all-MiniLM-L6-v2)."}
    )
    text_fields: list[str] | None = field(
        default=None, metadata={"help": "Item columns that describe an item (default: title + text columns)."}
    )
    embeddings_file: str | None = field(
        default=None,
        metadata={"help": "Precomputed item vectors (.npy aligned with items, .parquet/.csv with item_id)."},
    )
    encode_batch_size: int = field(default=64, metadata={"help": "Texts per sentence-encoder forward pass."})
    auto_shrink: bool = field(
        default=False, metadata={"help": "Use fewer codewords when the catalog is smaller than a codebook."}
    )

    def __post_init__(self):
        if isinstance(self.text_fields, str):
            self.text_fields = [self.text_fields]
        if self.encode_batch_size < 1:
            raise ValueError(f"encode_batch_size must be >= 1, got {self.encode_batch_size}")


@dataclass
class SemanticRQIndexerConfig(ContentIndexerConfig):
    """Args:
    quantizer (`str`, defaults to ``"rqvae"``): ``rqvae`` (TIGER, LC-Rec) or ``rqkmeans`` (k-means per level).
    num_levels (`int`, defaults to 3): codes per item before collision handling (TIGER: 3).
    codebook_size (`int`, *optional*): codewords per level. By default sized from the catalog by
        :func:`auto_codebook_size` (``ceil((4 * num_items) ** (1 / num_levels))``, between 8 and 256): the code space
        then holds about four codes per item, so similar items share prefixes and the last level still separates most
        of them (TIGER's 256 per level suits Amazon-size catalogs; on ML-100K's 1,682 items it leaves most items unique
        after two tokens). An explicit value must not exceed the number of items unless ``auto_shrink``.
    dedup (`str`, defaults to ``"suffix"``): collision handling, ``suffix`` (TIGER) or ``sinkhorn`` (LC-Rec).
    latent_dim (`int`, defaults to 32): RQ-VAE latent size (TIGER: 32).
    hidden_dims (`list[int]`, defaults to ``[256, 128]``): RQ-VAE encoder widths (TIGER: [512, 256, 128]).
    epochs (`int`, defaults to 100): RQ-VAE training epochs.
    batch_size (`int`, defaults to 256): RQ-VAE batch size.
    lr (`float`, defaults to 3e-3): RQ-VAE Adam learning rate.
    beta (`float`, defaults to 0.25): RQ-VAE commitment weight (TIGER: 0.25).
    restart_dead_codes (`bool`, defaults to `True`): re-seed RQ-VAE codewords unused over an epoch.
    sinkhorn_epsilon (`float`, defaults to 0.003): entropic regularisation on [0, 1]-scaled distances (LC-Rec: 0.003).
    sinkhorn_iterations (`int`, defaults to 50): Sinkhorn-Knopp iterations per assignment (LC-Rec: 50).
    sinkhorn_max_rounds (`int`, defaults to 20): assignment rounds before the rest is placed greedily.
    collaborative_dims (`int`, defaults to 0): append this many dimensions of a spectral embedding of the training
        co-occurrence graph (:func:`~genrec.indexing.collaborative.collaborative_embeddings`, window 5) to each
        item's unit-length content vector, so that items consumed together share leading codes even when their text
        says little (ML-100K titles). 0: content only, as in TIGER. Fitted on training sequences only; items added
        later have no interactions and get zeros there.
    Plus the content options of :class:`ContentIndexerConfig`.
    """

    quantizer: str = field(default="rqvae", metadata={"help": "Residual quantiser: rqvae (TIGER) or rqkmeans."})
    num_levels: int = field(default=3, metadata={"help": "Code levels per item before collision handling."})
    codebook_size: int | None = field(
        default=None, metadata={"help": "Codewords per level; default sized from the catalog (auto_codebook_size)."}
    )
    dedup: str = field(default="suffix", metadata={"help": "Collision handling: suffix (TIGER) or sinkhorn (LC-Rec)."})
    latent_dim: int = field(default=32, metadata={"help": "RQ-VAE latent size."})
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128], metadata={"help": "RQ-VAE encoder widths."})
    epochs: int = field(default=100, metadata={"help": "RQ-VAE training epochs."})
    batch_size: int = field(default=256, metadata={"help": "RQ-VAE batch size."})
    lr: float = field(default=3e-3, metadata={"help": "RQ-VAE Adam learning rate."})
    beta: float = field(default=0.25, metadata={"help": "RQ-VAE commitment loss weight."})
    restart_dead_codes: bool = field(default=True, metadata={"help": "Re-seed RQ-VAE codewords unused over an epoch."})
    sinkhorn_epsilon: float = field(default=0.003, metadata={"help": "Sinkhorn entropic regularisation."})
    sinkhorn_iterations: int = field(default=50, metadata={"help": "Sinkhorn-Knopp iterations per assignment."})
    sinkhorn_max_rounds: int = field(default=20, metadata={"help": "Sinkhorn rounds before greedy placement."})
    collaborative_dims: int = field(
        default=0, metadata={"help": "Co-occurrence (spectral) dimensions appended to the content vectors; 0: none."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; choose one of {sorted(QUANTIZERS)}")
        if self.dedup not in DEDUP_METHODS:
            raise ValueError(f"unknown dedup {self.dedup!r}; choose one of {list(DEDUP_METHODS)}")
        if not 1 <= self.num_levels <= 25:
            raise ValueError(f"num_levels must be between 1 and 25 (one letter per level), got {self.num_levels}")
        if self.codebook_size is not None and self.codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if self.collaborative_dims < 0:
            raise ValueError(f"collaborative_dims must be >= 0, got {self.collaborative_dims}")
        if self.sinkhorn_epsilon <= 0 or self.sinkhorn_iterations < 1 or self.sinkhorn_max_rounds < 1:
            raise ValueError("sinkhorn_epsilon must be > 0 and sinkhorn_iterations / sinkhorn_max_rounds >= 1")
        self.hidden_dims = [int(h) for h in self.hidden_dims]


def code_tokens(codes: np.ndarray, suffix: np.ndarray, letters: str) -> list[str]:
    """Identifier strings: level ``l`` uses letter ``letters[l]``; a suffix (>= 0) uses the next letter."""
    columns = [[f"<{letters[lvl]}_{c}>" for c in codes[:, lvl].tolist()] for lvl in range(codes.shape[1])]
    suffix_letter = letters[codes.shape[1]]
    tails = ["" if s < 0 else f"<{suffix_letter}_{s}>" for s in suffix.tolist()]
    return ["".join(parts) for parts in zip(*columns, tails)]


def parse_code_tokens(identifiers: list[str], num_levels: int, letters: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`code_tokens`: ``(codes (N, L), suffix (N,))`` with -1 where there is no suffix."""
    codes = np.zeros((len(identifiers), num_levels), dtype=np.int64)
    suffix = np.full(len(identifiers), -1, dtype=np.int64)
    for row, ident in enumerate(identifiers):
        parts = identifier_tokens(ident)
        if len(parts) not in (num_levels, num_levels + 1) or any(p[0] != letters[i] for i, p in enumerate(parts)):
            raise ItemIndexError(f"identifier {ident!r} is not a {num_levels}-level semantic id")
        codes[row] = [code for _, code in parts[:num_levels]]
        if len(parts) > num_levels:
            suffix[row] = parts[-1][1]
    return codes, suffix


class ContentIndexer(Indexer):
    """Base of indexers that quantise item content vectors: getting the vectors, at fit time and for new items."""

    config_class = ContentIndexerConfig

    def _embed(self, items: pd.DataFrame, embeddings=None) -> np.ndarray:
        cfg = self.config
        return item_embeddings(
            items, embeddings, cfg.embeddings_file, cfg.encoder_model, cfg.text_fields, cfg.encode_batch_size
        )

    def _embedding_state(self, X: np.ndarray, embeddings) -> dict:
        source = "given" if embeddings is not None or self.config.embeddings_file else "text"
        return {"embedding_dim": int(X.shape[1]), "embedding_source": source}

    def _new_item_vectors(self, state: dict, new_items: pd.DataFrame, embeddings) -> np.ndarray:
        """Vectors of items added later, from the same source as at fit time."""
        if embeddings is not None:
            X = check_embeddings(embeddings, len(new_items))
        elif state["embedding_source"] == "given":
            if not self.config.embeddings_file:
                raise ValueError(
                    "this index was fitted on given embeddings: pass embeddings= (one row per new item) to add items"
                )
            X = load_embeddings(self.config.embeddings_file, new_items["item_id"].astype(str).tolist())
        else:
            X = self._embed(new_items)
        if X.shape[1] != state["embedding_dim"]:
            raise ValueError(
                f"new item vectors have dimension {X.shape[1]}, the index was fitted on {state['embedding_dim']}"
            )
        return X

    def _codebook_size(self, size: int, num_items: int, what: str = "codebook_size") -> int:
        """``size``, or ``num_items`` with a warning when the catalog is smaller and ``auto_shrink`` is on."""
        if num_items >= size:
            return size
        if not self.config.auto_shrink:
            raise ValueError(
                f"fewer items than codebook size: {num_items} items but {what}={size}; use a smaller {what} or "
                "auto_shrink=True"
            )
        logger.warning("only %d items: shrinking %s from %d to %d", num_items, what, size, num_items)
        return num_items


MIN_AUTO_CODEBOOK, MAX_AUTO_CODEBOOK = 8, 256


def auto_codebook_size(num_items: int, num_levels: int, codes_per_item: float = 4.0) -> int:
    """Codewords per level so that the code space ``K ** num_levels`` is about ``codes_per_item`` times the catalog:
    ``ceil((codes_per_item * num_items) ** (1 / num_levels))``, clipped to [8, 256] and to the number of items.

    >>> auto_codebook_size(1682, 3), auto_codebook_size(12101, 3), auto_codebook_size(1_000_000, 3)
    (19, 37, 159)
    """
    size = math.ceil((codes_per_item * num_items) ** (1.0 / num_levels) - 1e-9)
    return max(2, min(num_items, max(MIN_AUTO_CODEBOOK, min(MAX_AUTO_CODEBOOK, size))))


@register_indexer("semantic-rq")
class SemanticRQIndexer(ContentIndexer):
    """TIGER / LC-Rec semantic IDs (see the module docstring).

    Example:
        >>> indexer = build_indexer("semantic-rq", quantizer="rqkmeans", codebook_size=16, dedup="sinkhorn")
        >>> index = indexer.fit(data.items, split.train)  # doctest: +SKIP
        >>> index.identifier("1")  # doctest: +SKIP
        '<a_3><b_11><c_0>'
    """

    config_class = SemanticRQIndexerConfig
    letters = string.ascii_lowercase

    @staticmethod
    def _with_collaborative(content: np.ndarray, collaborative: np.ndarray) -> np.ndarray:
        """The quantiser's input when ``collaborative_dims``: unit content rows beside the co-occurrence dims."""
        return np.c_[unit_rows(content), collaborative].astype(np.float32)

    def _quantizer(self, codebook_size: int) -> ResidualQuantizer:
        cfg = self.config
        if cfg.quantizer == "rqkmeans":
            return RQKMeans(cfg.num_levels, codebook_size, cfg.seed)
        return RQVAE(
            cfg.num_levels,
            codebook_size,
            cfg.seed,
            latent_dim=cfg.latent_dim,
            hidden_dims=cfg.hidden_dims,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            beta=cfg.beta,
            restart_dead_codes=cfg.restart_dead_codes,
        )

    def _dedup(self, quantizer, Z, codes, existing=None, fallback_prefixes=None):
        """Unique ``(codes, suffix)`` for new rows, given existing ``(codes, suffix)`` of the index (cold start)."""
        ex_codes, ex_suffix = existing if existing is not None else (None, None)
        if self.config.dedup == "suffix":
            return codes, dedup_suffix(codes, ex_codes, ex_suffix), [], {}
        last = residual_before_level(Z, codes, quantizer.codebooks, quantizer.num_levels - 1)
        return dedup_sinkhorn(
            codes,
            last,
            quantizer.codebooks[-1],
            existing_codes=ex_codes,
            existing_suffix=ex_suffix,
            fallback_prefixes=fallback_prefixes,
            epsilon=self.config.sinkhorn_epsilon,
            iterations=self.config.sinkhorn_iterations,
            max_rounds=self.config.sinkhorn_max_rounds,
        )

    def _tokens(self, codebook_size: int, suffix_size: int) -> list[str]:
        """Every codeword token of every level (cold-start items may use any), then the suffix tokens in use."""
        L = self.config.num_levels
        tokens = [f"<{self.letters[lvl]}_{c}>" for lvl in range(L) for c in range(codebook_size)]
        return tokens + [f"<{self.letters[L]}_{s}>" for s in range(suffix_size)]

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]], embeddings=None) -> ItemIndex:
        """Fit on the content of every item of ``items`` (plus training co-occurrence when ``collaborative_dims``).

        Args:
            items (`pd.DataFrame`): the catalog.
            train_sequences (`list[list[str]]`): training histories; used only when ``collaborative_dims`` > 0.
            embeddings (`np.ndarray`, *optional*): item vectors aligned with ``items`` (overrides text encoding).
        """
        start = time.perf_counter()
        content = self._embed(items, embeddings)
        X = content
        if self.config.collaborative_dims:
            item_ids = items["item_id"].astype(str).to_numpy()
            cooccurrence = collaborative_embeddings(item_ids, train_sequences, self.config.collaborative_dims)
            X = self._with_collaborative(content, cooccurrence)
        embed_seconds = time.perf_counter() - start
        K = self.config.codebook_size or auto_codebook_size(len(X), self.config.num_levels)
        K = self._codebook_size(K, len(X))
        quantizer = self._quantizer(K)
        start = time.perf_counter()
        codes = quantizer.fit(X)
        before = collision_stats(codes)
        final, suffix, fallback, dedup_stats = self._dedup(quantizer, quantizer.latents(X), codes)
        fit_seconds = time.perf_counter() - start
        suffix_size = int(suffix.max()) + 1 if (suffix >= 0).any() else 0
        stats = {
            "num_items": len(X),
            "embedding_dim": int(X.shape[1]),
            "quantizer": quantizer.kind,
            "codebook_size": K,
            "embed_seconds": round(embed_seconds, 3),
            "fit_seconds": round(fit_seconds, 3),
            **quantizer.stats,
            "collision_rate_before_dedup": before["collision_rate"],
            "max_group_size_before_dedup": before["max_group_size"],
            "codebook_utilisation_after_dedup": codebook_utilisation(final, K),
            "collision_rate_after_dedup": collision_stats(np.c_[final, suffix])["collision_rate"],
            "suffix_size": suffix_size,
            **dedup_stats,
        }
        logger.info(
            "semantic-rq (%s, %s): %d items, utilisation %s, collision rate before dedup %.4f, %.1fs",
            quantizer.kind,
            self.config.dedup,
            len(X),
            [round(u, 3) for u in stats["codebook_utilisation"]],
            before["collision_rate"],
            fit_seconds,
        )
        state = {
            "quantizer": quantizer.state_dict(),
            "suffix_size": suffix_size,
            "fallback_prefixes": fallback,
            "collaborative_dims": self.config.collaborative_dims,
            **self._embedding_state(content, embeddings),
        }
        identifiers = code_tokens(final, suffix, self.letters)
        return self._make_index(items["item_id"], identifiers, self._tokens(K, suffix_size), state, stats)

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, embeddings=None, **kwargs) -> ItemIndex:
        """Add items without refitting: nearest codewords under the saved quantiser, collisions resolved as in fit.

        Args:
            index (`ItemIndex`): a ``semantic-rq`` index.
            new_items (`pd.DataFrame`): items to add (``item_id`` plus the text fields used at fit time).
            embeddings (`np.ndarray`, *optional*): their vectors, aligned with ``new_items``; required when the
                index was fitted on given vectors and no keyed ``embeddings_file`` covers the new items.
        """
        state = index.state
        quantizer = quantizer_from_state(state["quantizer"])
        X = self._new_item_vectors(state, new_items, embeddings)
        if state.get("collaborative_dims"):  # new items have no training interactions: zero co-occurrence part
            X = self._with_collaborative(X, np.zeros((len(X), state["collaborative_dims"]), dtype=np.float32))
        Z = quantizer.latents(X)
        codes = quantizer.encode(X)
        existing = parse_code_tokens(index.identifiers, quantizer.num_levels, self.letters)
        if self.config.dedup == "sinkhorn":
            codes = self._reroute_full_prefixes(quantizer, Z, codes, existing[0], state["fallback_prefixes"])
        final, suffix, fallback, dedup_stats = self._dedup(quantizer, Z, codes, existing, state["fallback_prefixes"])
        suffix_size = max(state.get("suffix_size", 0), int(suffix.max()) + 1 if len(suffix) else 0)
        if dedup_stats.get("sinkhorn_reassigned"):
            logger.info(
                "cold start: %d new item(s) moved to a free last-level code", dedup_stats["sinkhorn_reassigned"]
            )
        new_state = {**state, "suffix_size": suffix_size, "fallback_prefixes": fallback or state["fallback_prefixes"]}
        known = set(index.new_tokens)
        tokens = index.new_tokens + [t for t in self._tokens(quantizer.codebook_size, suffix_size) if t not in known]
        return index.with_items(new_items["item_id"], code_tokens(final, suffix, self.letters), tokens, new_state)

    @staticmethod
    def _reroute_full_prefixes(quantizer, Z, codes, existing_codes, fallback_prefixes) -> np.ndarray:
        """Cold start under ``sinkhorn``: a new item whose prefix has no free last-level codeword moves to the nearest
        second-to-last codeword whose prefix still has room (then takes its nearest last-level codeword there).

        Existing identifiers never change, so a full prefix cannot take a suffix the way :func:`dedup_sinkhorn` does
        at fit time.
        """
        L, K = quantizer.num_levels, quantizer.codebook_size
        if L < 2:
            return codes
        fallback = {tuple(p) for p in fallback_prefixes}
        occupancy: dict[tuple, int] = {}
        for row in existing_codes[:, : L - 1].tolist():
            occupancy[tuple(row)] = occupancy.get(tuple(row), 0) + 1
        codes = codes.copy()
        for i in range(len(codes)):
            prefix = tuple(codes[i, : L - 1].tolist())
            if prefix in fallback or occupancy.get(prefix, 0) < K:
                occupancy[prefix] = occupancy.get(prefix, 0) + 1
                continue
            residual = residual_before_level(Z[i : i + 1], codes[i : i + 1], quantizer.codebooks, L - 2)[0]
            distances = ((quantizer.codebooks[L - 2] - residual) ** 2).sum(1)
            for k in np.argsort(distances, kind="stable"):
                candidate = prefix[:-1] + (int(k),)
                if candidate in fallback or occupancy.get(candidate, 0) < K:
                    break
            else:
                raise ItemIndexError(f"no prefix has a free codeword for new item {i}; refit with a larger codebook")
            codes[i, L - 2] = int(k)
            last = residual - quantizer.codebooks[L - 2][int(k)]
            codes[i, L - 1] = int(((quantizer.codebooks[L - 1] - last) ** 2).sum(1).argmin())
            occupancy[candidate] = occupancy.get(candidate, 0) + 1
            logger.info(
                "cold start: prefix %s is full; new item %d moved to prefix %s", list(prefix), i, list(candidate)
            )
        return codes
