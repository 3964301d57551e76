"""Order-agnostic set identifiers (SETRec): one collaborative token plus several semantic tokens per item.

Every item gets ``1 + num_semantic`` tokens, one per *position*, each position with its own vocabulary:

- ``<cf_N>``: collaborative token. Item CF embeddings come from a truncated SVD of the degree-normalised
  user × item matrix of the **training** sequences (the item side of the co-occurrence factorisation
  ``D^-1/2 Bᵀ B D^-1/2``, computed without forming the items × items matrix); k-means of the unit-normalised CF
  embeddings gives ``num_cf_clusters`` tokens. ``num_cf_clusters=0`` gives every warm item a CF token of its own,
  the discrete counterpart of the paper's per-item CF embedding (a cluster token cannot tell its items apart, so
  the semantic tokens must; on ML-100K their titles say little).
- ``<s1_N>``, ``<s2_N>``, ...: semantic tokens. The content embedding is projected by PCA to ``semantic_dim``
  dimensions, rotated by a seeded random orthogonal matrix (so each sub-vector carries a similar share of the
  variance), split into ``num_semantic`` sub-vectors, and each sub-vector is k-means quantised on its own codebook
  (product quantisation); the semantic tokens are therefore independent of one another, as a set needs.

The identifier string lists the tokens in canonical position order (``<cf_3><s1_7><s2_1>``); ``state["positions"]``
names the positions and ``state["position_sizes"]`` their vocabulary sizes, so a set model knows which tokens
belong to which position and can score them independently.

**Cold items.** An item with no training interaction (including every item added by :meth:`SetIndexer.extend`)
has no CF embedding. Its CF token is predicted from content: each CF cluster has a content centroid (the mean of
the unit-normalised projected content vectors of its warm items); the cold item takes the cluster whose centroid has
the highest cosine similarity with its own projected content vector.

**Uniqueness.** Two items with the same tokens are told apart by moving the later one (in item order; existing
items never move at cold start) to the unused set that changes one semantic token at the smallest increase in
distance to its sub-vector; only if every such set is taken, to the cheapest unused combination of semantic tokens
under the same CF token (reported as ``stats["reassigned_items"]``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from genrec.indexing.base import ItemIndex, ItemIndexError, identifier_tokens, register_indexer, unit_rows
from genrec.indexing.quantizers import (
    array_from_state,
    array_to_state,
    codebook_utilisation,
    collision_stats,
    kmeans,
    squared_distances,
)
from genrec.indexing.semantic import ContentIndexer, ContentIndexerConfig

logger = logging.getLogger(__name__)


@dataclass
class SetIndexerConfig(ContentIndexerConfig):
    """Args:
    num_cf_clusters (`int`, defaults to 64): vocabulary of the collaborative position; 0: one token per warm item.
    cf_dim (`int`, defaults to 32): rank of the truncated SVD that gives item CF embeddings.
    num_semantic (`int`, defaults to 3): semantic positions per item.
    semantic_codebook_size (`int`, defaults to 64): vocabulary of each semantic position.
    semantic_dim (`int`, defaults to 48): PCA dimensions of the content vector before it is split into sub-vectors.
    Plus the content options of :class:`~genrec.indexing.semantic.ContentIndexerConfig`.
    """

    num_cf_clusters: int = field(
        default=64, metadata={"help": "Vocabulary size of the collaborative token; 0: one token per warm item."}
    )
    cf_dim: int = field(default=32, metadata={"help": "Rank of the SVD giving item CF embeddings."})
    num_semantic: int = field(default=3, metadata={"help": "Semantic tokens per item."})
    semantic_codebook_size: int = field(default=64, metadata={"help": "Vocabulary size of each semantic token."})
    semantic_dim: int = field(default=48, metadata={"help": "PCA dimensions of content vectors before splitting."})

    def __post_init__(self):
        super().__post_init__()
        if self.num_cf_clusters < 0 or self.cf_dim < 1:
            raise ValueError(
                f"num_cf_clusters must be >= 0 and cf_dim >= 1, got {self.num_cf_clusters}, {self.cf_dim}"
            )
        if self.num_semantic < 1 or self.semantic_codebook_size < 2:
            raise ValueError(
                f"need num_semantic >= 1 and semantic_codebook_size >= 2, got {self.num_semantic}, "
                f"{self.semantic_codebook_size}"
            )
        if self.semantic_dim < self.num_semantic:
            raise ValueError(f"semantic_dim ({self.semantic_dim}) must be >= num_semantic ({self.num_semantic})")


def _cf_embeddings(item_ids: list[str], train_sequences: list[list[str]], rank: int, seed: int):
    """Item CF vectors (N, r) from the training sequences; rows of items never seen in training are zero."""
    position = {item: i for i, item in enumerate(item_ids)}
    rows, cols = [], []
    for u, seq in enumerate(train_sequences):
        for item in seq:
            j = position.get(str(item))
            if j is None:
                raise ItemIndexError(f"training item {item!r} is not in the item table")
            rows.append(u)
            cols.append(j)
    B = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(train_sequences), len(item_ids)))
    B.data[:] = 1.0  # presence, not counts (duplicates were summed)
    item_degree = np.asarray(B.sum(0)).ravel()
    warm = item_degree > 0
    user_degree = np.asarray(B.sum(1)).ravel()
    A = sp.diags(1.0 / np.sqrt(np.maximum(user_degree, 1))) @ B @ sp.diags(1.0 / np.sqrt(np.maximum(item_degree, 1)))
    rank = min(rank, min(A.shape) - 1)
    if rank < 1:
        raise ItemIndexError("too few training users/items for a CF embedding")
    v0 = np.random.default_rng(seed).uniform(size=min(A.shape))
    _, s, vt = svds(A.astype(np.float64), k=rank, v0=v0)
    embeddings = (vt.T * np.sqrt(s)).astype(np.float32)  # (N, r)
    embeddings[~warm] = 0.0
    return embeddings, warm


@register_indexer("set")
class SetIndexer(ContentIndexer):
    """SETRec set identifiers (see the module docstring).

    Example:
        >>> indexer = build_indexer("set", num_cf_clusters=16, semantic_codebook_size=16)
        >>> index = indexer.fit(data.items, split.train)  # doctest: +SKIP
        >>> index.identifier("1"), index.state["positions"]  # doctest: +SKIP
        ('<cf_3><s1_7><s2_1><s3_12>', ['cf', 's1', 's2', 's3'])
    """

    config_class = SetIndexerConfig

    @property
    def positions(self) -> list[str]:
        return ["cf"] + [f"s{p + 1}" for p in range(self.config.num_semantic)]

    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]], embeddings=None) -> ItemIndex:
        """Fit CF tokens on ``train_sequences`` (training interactions only) and semantic tokens on item content.

        Args:
            items (`pd.DataFrame`): the catalog.
            train_sequences (`list[list[str]]`): training sequences (never validation/test items).
            embeddings (`np.ndarray`, *optional*): item content vectors aligned with ``items``.
        """
        cfg = self.config
        start = time.perf_counter()
        item_ids = items["item_id"].astype(str).tolist()
        X = self._embed(items, embeddings)
        n = len(item_ids)

        # Semantic positions: PCA → random rotation → sub-vectors → one k-means codebook each.
        dim = min(cfg.semantic_dim, X.shape[1], n - 1)
        if dim < cfg.num_semantic:
            raise ValueError(
                f"{n} items of dimension {X.shape[1]} cannot be split into {cfg.num_semantic} sub-vectors"
            )
        mean = X.mean(0)
        _, singular, vt = np.linalg.svd(X - mean, full_matrices=False)
        rng = np.random.default_rng(cfg.seed)
        rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        projection = (vt[:dim].T @ rotation).astype(np.float32)  # (d, dim)
        Y = (X - mean) @ projection  # (N, dim)
        bounds = np.linspace(0, dim, cfg.num_semantic + 1).round().astype(int)
        Ks = self._codebook_size(cfg.semantic_codebook_size, n, "semantic_codebook_size")
        codebooks = []
        semantic = np.zeros((n, cfg.num_semantic), dtype=np.int64)
        for p, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            centres, _ = kmeans(Y[:, lo:hi], Ks, cfg.seed + p)
            codebooks.append(centres)
            semantic[:, p] = squared_distances(Y[:, lo:hi], centres).argmin(1)

        # Collaborative position: SVD of training interactions → k-means on warm items; cold items from content.
        cf_vectors, warm = _cf_embeddings(item_ids, train_sequences, cfg.cf_dim, cfg.seed)
        if not warm.any():
            raise ItemIndexError("no item of the catalog appears in the training sequences")
        if cfg.num_cf_clusters == 0:  # every warm item its own CF token
            Kcf = int(warm.sum())
            warm_labels = np.arange(Kcf)
        else:
            Kcf = self._codebook_size(cfg.num_cf_clusters, int(warm.sum()), "num_cf_clusters")
            _, warm_labels = kmeans(unit_rows(cf_vectors[warm]), Kcf, cfg.seed)
        unit_content = unit_rows(Y)
        centroids = np.zeros((Kcf, dim), dtype=np.float32)
        np.add.at(centroids, warm_labels, unit_content[warm])
        centroids = unit_rows(centroids)  # empty clusters stay zero and are never chosen over a real one
        cf = np.zeros(n, dtype=np.int64)
        cf[warm] = warm_labels
        if (~warm).any():
            cf[~warm] = (unit_content[~warm] @ centroids.T).argmax(1)

        state = {
            "positions": self.positions,
            "position_sizes": [Kcf] + [Ks] * cfg.num_semantic,
            "content_mean": array_to_state(mean),
            "projection": array_to_state(projection),
            "subvector_bounds": bounds.tolist(),
            "semantic_codebooks": [array_to_state(C) for C in codebooks],
            "cf_content_centroids": array_to_state(centroids),
            **self._embedding_state(X, embeddings),
        }
        tokens = np.c_[cf, semantic]
        before = collision_stats(tokens)
        tokens, moved = self._make_unique(tokens, Y, state)
        stats = {
            "num_items": n,
            "warm_items": int(warm.sum()),
            "cold_items": int((~warm).sum()),
            "cf_rank": int(cf_vectors.shape[1]),
            "pca_explained_variance": float((singular[:dim] ** 2).sum() / max((singular**2).sum(), 1e-12)),
            "position_utilisation": [
                codebook_utilisation(tokens[:, [p]], size)[0] for p, size in enumerate(state["position_sizes"])
            ],
            "collision_rate_before_dedup": before["collision_rate"],
            "max_group_size_before_dedup": before["max_group_size"],
            "reassigned_items": moved,
            "fit_seconds": round(time.perf_counter() - start, 3),
        }
        logger.info(
            "set index: %d items (%d cold), collision rate before dedup %.4f, %d reassigned",
            n,
            stats["cold_items"],
            before["collision_rate"],
            moved,
        )
        return self._make_index(item_ids, self._identifiers(tokens), self._all_tokens(state), state, stats)

    # ------------------------------------------------------------------ helpers
    def _identifiers(self, tokens: np.ndarray) -> list[str]:
        columns = [[f"<{name}_{t}>" for t in tokens[:, p].tolist()] for p, name in enumerate(self.positions)]
        return ["".join(parts) for parts in zip(*columns)]

    def _all_tokens(self, state: dict) -> list[str]:
        return [
            f"<{name}_{t}>" for name, size in zip(state["positions"], state["position_sizes"]) for t in range(size)
        ]

    def _semantic_distances(self, Y: np.ndarray, state: dict) -> list[np.ndarray]:
        """Per semantic position, (N, K) squared distances of each item's sub-vector to that position's codewords."""
        bounds = state["subvector_bounds"]
        return [
            squared_distances(Y[:, lo:hi], array_from_state(C))
            for lo, hi, C in zip(bounds[:-1], bounds[1:], state["semantic_codebooks"])
        ]

    def _make_unique(self, tokens: np.ndarray, Y: np.ndarray, state: dict, existing: np.ndarray | None = None):
        """Move colliding rows of ``tokens`` (never ``existing`` ones) to their cheapest unused alternative."""
        existing = np.zeros((0, tokens.shape[1]), dtype=np.int64) if existing is None else existing
        both = np.vstack([existing, tokens])
        _, first, inverse = np.unique(both, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # A row moves when an earlier row (an existing item, or an earlier new one) has the same tokens.
        to_move = np.flatnonzero(first[inverse] != np.arange(len(both)))
        to_move = to_move[to_move >= len(existing)] - len(existing)
        if len(to_move) == 0:
            return tokens, 0
        tokens = tokens.copy()
        used = {tuple(row) for row in both.tolist()}
        distances = self._semantic_distances(Y[to_move], state)  # list of (m, K)
        for row, item in enumerate(to_move):
            current = tokens[item].copy()
            options = []
            for p, d in enumerate(distances):
                base = d[row, current[p + 1]]
                options.extend((float(d[row, k] - base), p, k) for k in range(d.shape[1]) if k != current[p + 1])
            for _, p, k in sorted(options):
                candidate = current.copy()
                candidate[p + 1] = k
                if tuple(candidate.tolist()) not in used:
                    break
            else:
                candidate = self._cheapest_free_set(current, [d[row] for d in distances], used)
            tokens[item] = candidate
            used.add(tuple(candidate.tolist()))
        return tokens, len(to_move)

    @staticmethod
    def _cheapest_free_set(current: np.ndarray, distances: list[np.ndarray], used: set, limit: int = 2_000_000):
        """Cheapest unused combination of semantic tokens under the same CF token (all single changes were taken)."""
        sizes = [len(d) for d in distances]
        if np.prod(sizes, dtype=np.float64) > limit:
            raise ItemIndexError(
                "cannot give every item a distinct token set by changing one semantic token; increase "
                "semantic_codebook_size or num_semantic"
            )
        total = np.zeros(sizes)
        for p, d in enumerate(distances):
            total = total + d.reshape([-1 if q == p else 1 for q in range(len(sizes))])
        for flat in np.argsort(total, axis=None, kind="stable"):
            candidate = np.r_[current[:1], np.unravel_index(flat, sizes)].astype(np.int64)
            if tuple(candidate.tolist()) not in used:
                return candidate
        raise ItemIndexError(
            f"all {int(np.prod(sizes))} semantic token sets of CF token {int(current[0])} are taken; increase "
            "semantic_codebook_size or num_semantic"
        )

    def _project(self, X: np.ndarray, state: dict) -> np.ndarray:
        return (X - array_from_state(state["content_mean"])) @ array_from_state(state["projection"])

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, embeddings=None, **kwargs) -> ItemIndex:
        """Add items (no interactions yet): semantic tokens from content, CF token by the content-centroid rule.

        Args:
            index (`ItemIndex`): a ``set`` index.
            new_items (`pd.DataFrame`): items to add.
            embeddings (`np.ndarray`, *optional*): their content vectors, aligned with ``new_items``.
        """
        state = index.state
        Y = self._project(self._new_item_vectors(state, new_items, embeddings), state)
        semantic = np.stack([d.argmin(1) for d in self._semantic_distances(Y, state)], axis=1)
        cf = (unit_rows(Y) @ array_from_state(state["cf_content_centroids"]).T).argmax(1)
        existing = np.array([[code for _, code in identifier_tokens(ident)] for ident in index.identifiers])
        tokens, moved = self._make_unique(np.c_[cf, semantic], Y, state, existing)
        if moved:
            logger.info("cold start: %d new item(s) moved to a free token set", moved)
        return index.with_items(new_items["item_id"], self._identifiers(tokens))
