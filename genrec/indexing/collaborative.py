"""Collaborative identifiers (CID) from the P5 indexing study.

Items that are consumed close together in the training sequences form a co-occurrence graph. Recursive spectral
clustering splits the graph into ``num_clusters`` clusters per level until a cluster has at most
``max_cluster_size`` items; an item's identifier is one token per level (the cluster it falls in) followed by one
in-leaf token (its number inside the leaf), e.g. ``<c1_5><c2_12><c3_0>``. Items that co-occur share leading tokens,
which is what makes the identifiers collaborative. OpenP5 defaults: 20 clusters per level, at most 200 items per leaf.

Scale: the graph is a ``scipy.sparse`` matrix and the spectral embedding comes from ARPACK (``eigsh``) on a
``LinearOperator``, so memory grows with the number of co-occurring pairs, never with items × items.

Disconnected graphs and power-law degrees: the embedding uses the *regularised* normalised adjacency
``D_τ^-1/2 A D_τ^-1/2`` with ``D_τ = D + τI`` and ``τ = regularization × mean degree`` (Qin & Rohe, 2013), which keeps
tiny components and low-degree items from taking over the leading eigenvectors. Items with no co-occurrence inside
the cluster being split carry no signal; they are dealt to the child clusters in catalog order so that child sizes
end up as even as possible (water filling). A split that makes no progress (or a cluster deeper than
``max_levels``) falls back to contiguous, equal chunks, so the recursion always terminates.

Prefix freedom: leaves are the leaves of a tree, so no leaf's path is a prefix of another item's path, and every
identifier ends with exactly one in-leaf token after its leaf's path. Hence no identifier is a token-level prefix of
another, even though identifiers of different leaves may have different lengths.
"""

from __future__ import annotations

import heapq
import logging
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from genrec.indexing.base import Indexer, IndexerConfig, ItemIndex, ItemIndexError, register_indexer, unit_rows
from genrec.indexing.sequential import flatten_sequences

logger = logging.getLogger(__name__)

# Clusters up to this size use a dense eigensolver on their own (at most 256 x 256) subgraph; larger ones use ARPACK.
_DENSE_EIGEN_MAX = 256


def cooccurrence_pairs(codes: np.ndarray, lengths: np.ndarray, window: int):
    """Yield ``(a, b)`` position arrays of items at distance ``1..window`` in the same sequence (self-pairs dropped).

    One offset at a time, so peak memory stays at one interaction-sized array pair.
    """
    seq_id = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    for d in range(1, window + 1):
        if len(codes) <= d:
            break
        same = seq_id[d:] == seq_id[:-d]
        a, b = codes[:-d][same], codes[d:][same]
        keep = a != b
        yield a[keep], b[keep]


def cooccurrence_graph(codes: np.ndarray, lengths: np.ndarray, num_items: int, window: int) -> sp.csr_matrix:
    """Symmetric item × item co-occurrence counts (CSR, float32, no diagonal) from encoded training sequences."""
    graph = sp.csr_matrix((num_items, num_items), dtype=np.float32)
    for a, b in cooccurrence_pairs(codes, lengths, window):
        rows = np.concatenate([a, b]).astype(np.int32)
        cols = np.concatenate([b, a]).astype(np.int32)
        # coo -> csr sums the duplicate pairs, which turns pairs into counts.
        graph = graph + sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(num_items, num_items))
        del rows, cols
    graph.sum_duplicates()
    return graph


def water_fill(sizes: np.ndarray, extra: int) -> np.ndarray:
    """How many of ``extra`` new members each cluster gets so that the final sizes are as even as possible.

    Smallest clusters are filled first; leftover single members go to the lowest-numbered clusters at the lowest
    level. Used to place items with no co-occurrence signal deterministically.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if extra <= 0 or len(sizes) == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    lo, hi = int(sizes.min()), int(sizes.min()) + extra
    while lo < hi:  # the highest level L with sum(max(0, L - size)) <= extra
        mid = (lo + hi + 1) // 2
        if np.maximum(0, mid - sizes).sum() <= extra:
            lo = mid
        else:
            hi = mid - 1
    add = np.maximum(0, lo - sizes)
    leftover = extra - int(add.sum())
    at_level = np.flatnonzero(sizes + add == lo)
    add[at_level[:leftover]] += 1
    return add


def spectral_embedding(
    graph: sp.csr_matrix,
    degree: np.ndarray,
    k: int,
    regularization: float,
    eigen_tol: float,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` eigenpairs of the regularised normalised adjacency of ``graph``: ``(values (k,), vectors (n, k))``."""
    n = graph.shape[0]
    tau = regularization * float(degree.mean())
    scaled = degree + tau
    dinv = np.zeros(n)
    dinv[scaled > 0] = 1.0 / np.sqrt(scaled[scaled > 0])
    if n <= _DENSE_EIGEN_MAX:
        matrix = graph.toarray().astype(np.float64) * dinv[:, None] * dinv[None, :]  # (n, n), n <= 256
        values, vectors = np.linalg.eigh(matrix)
        return values[-k:], vectors[:, -k:]

    def matmat(x):  # float32 products keep the sparse matrix in its stored dtype (no per-call copy)
        x = np.asarray(x).reshape(n, -1)
        return (dinv[:, None] * (graph @ (dinv[:, None] * x).astype(np.float32))).astype(np.float64)

    operator = LinearOperator((n, n), matvec=lambda x: matmat(x).ravel(), matmat=matmat, dtype=np.float64)
    v0 = np.sqrt(scaled) + 1e-3  # close to the leading eigenvector; deterministic start
    ncv = min(n, max(3 * k, k + 20))
    for attempt in range(2):
        try:
            values, vectors = eigsh(operator, k=k, which="LA", tol=eigen_tol, v0=v0, ncv=ncv)
            break
        except ArpackNoConvergence as err:
            if stats is not None:
                stats["arpack_not_converged"] += 1
            logger.warning(
                "ARPACK did not converge on a cluster of %d items; using the %d converged vectors",
                n,
                err.eigenvectors.shape[1],
            )
            values, vectors = err.eigenvalues, err.eigenvectors
            break
        except ArpackError as err:  # e.g. "no shifts could be applied": a larger Krylov space helps
            if attempt or ncv >= n:
                raise
            logger.info("ARPACK failed on a cluster of %d items (%s); retrying with ncv=%d", n, err, min(n, 2 * ncv))
            ncv = min(n, 2 * ncv)
    return values, vectors


def collaborative_embeddings(
    item_ids: np.ndarray, train_sequences: list[list[str]], dim: int, window: int = 5, regularization: float = 1.0
) -> np.ndarray:
    """Unit-length item vectors (``(n, dim)``) from the training co-occurrence graph: the ``dim`` leading eigenvectors
    of its regularised normalised adjacency, each scaled by its eigenvalue so that the strongest co-occurrence
    structure weighs most. Items consumed together get nearby vectors; items with no co-occurrence get zeros.
    Fitted on training sequences only (no validation or test item is seen)."""
    n = len(item_ids)
    codes, lengths = flatten_sequences(item_ids, train_sequences)
    graph = cooccurrence_graph(codes.astype(np.int32), lengths, n, window)
    degree = np.asarray(graph.sum(axis=1), dtype=np.float64).ravel()
    k = min(dim, n - 2)
    values, vectors = spectral_embedding(graph, degree, k, regularization, 1e-4)
    vectors = vectors * np.abs(values)[None, :]
    vectors[degree == 0] = 0.0
    vectors = unit_rows(vectors)
    return np.pad(vectors, ((0, 0), (0, dim - k))).astype(np.float32)


@dataclass
class CollaborativeIndexerConfig(IndexerConfig):
    """Args:
    num_clusters (`int`, defaults to 20): clusters per level, *k* (OpenP5 ``--collaborative_cluster 20``).
    max_cluster_size (`int`, defaults to 200): a cluster with at most this many items becomes a leaf, *N*
        (OpenP5 ``--collaborative_token_size 200``).
    window (`int`, defaults to 5): two items co-occur when at most this many positions apart in a training sequence.
    token_prefix (`str`, defaults to ``"c"``): tokens are ``<{token_prefix}{level}_{n}>``, levels counted from 1.
    regularization (`float`, defaults to 1.0): degree regularisation τ as a multiple of the mean degree (0: none).
    max_levels (`int`, defaults to 8): deeper clusters are split into equal contiguous chunks instead.
    eigen_tol (`float`, defaults to 1e-4): ARPACK convergence tolerance for the spectral embedding.
    kmeans_n_init (`int`, defaults to 3): k-means restarts per split (the best inertia is kept).
    """

    num_clusters: int = field(default=20, metadata={"help": "Clusters per level, k (OpenP5 default 20)."})
    max_cluster_size: int = field(
        default=200, metadata={"help": "Clusters with at most this many items become leaves, N (OpenP5 default 200)."}
    )
    window: int = field(default=5, metadata={"help": "Items at most this many positions apart co-occur."})
    token_prefix: str = field(default="c", metadata={"help": "Tokens are <{token_prefix}{level}_{n}>."})
    regularization: float = field(
        default=1.0, metadata={"help": "Degree regularisation tau, as a multiple of the mean degree (0 disables)."}
    )
    max_levels: int = field(default=8, metadata={"help": "Clusters deeper than this are split into equal chunks."})
    eigen_tol: float = field(default=1e-4, metadata={"help": "ARPACK tolerance for the spectral embedding."})
    kmeans_n_init: int = field(default=3, metadata={"help": "k-means restarts per split."})

    def __post_init__(self):
        if self.num_clusters < 2:
            raise ValueError(f"num_clusters must be >= 2, got {self.num_clusters}")
        if self.max_cluster_size < 1:
            raise ValueError(f"max_cluster_size must be >= 1, got {self.max_cluster_size}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.regularization < 0:
            raise ValueError(f"regularization must be >= 0, got {self.regularization}")
        if self.max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {self.max_levels}")
        if self.kmeans_n_init < 1:
            raise ValueError(f"kmeans_n_init must be >= 1, got {self.kmeans_n_init}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", self.token_prefix):
            raise ValueError(f"token_prefix must be letters/digits starting with a letter, got {self.token_prefix!r}")


@register_indexer("collaborative")
class CollaborativeIndexer(Indexer):
    """Recursive spectral clustering of the training co-occurrence graph (P5 CID).

    Cold start (:meth:`extend`): a new item goes to the leaf its neighbours are in, when ``train_sequences`` that
    contain it are passed (the leaf with the largest co-occurrence weight with it); otherwise, or without any
    co-occurrence with indexed items, to the currently smallest leaf (ties: first leaf in identifier order). It gets
    the next free in-leaf number of that leaf.

    Example:
        >>> indexer = build_indexer("collaborative", num_clusters=20, max_cluster_size=200)  # doctest: +SKIP
        >>> index = indexer.fit(data.items, split.train)  # doctest: +SKIP
        >>> index.identifier("i3"), index.stats["levels"]  # doctest: +SKIP
        ('<c1_4><c2_0>', 2)
    """

    config_class = CollaborativeIndexerConfig

    def _token(self, level: int, number: int) -> str:
        return f"<{self.config.token_prefix}{level}_{number}>"

    # ------------------------------------------------------------------ clustering
    def _cluster_labels(self, graph: sp.csr_matrix, stats: dict) -> np.ndarray | None:
        """Labels in ``[0, k)`` for the members of ``graph``, or ``None`` if spectral clustering cannot split it."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        n, k = graph.shape[0], self.config.num_clusters
        degree = np.asarray(graph.sum(axis=1), dtype=np.float64).ravel()
        core = degree > 0
        n_core = int(core.sum())
        if n_core <= k:
            return None
        _, vectors = spectral_embedding(
            graph, degree, min(k, n - 1), self.config.regularization, self.config.eigen_tol, stats
        )
        embedding = vectors[core]
        norms = np.linalg.norm(embedding, axis=1)
        if embedding.shape[1] < 2 or not np.all(np.isfinite(embedding)) or norms.max() == 0:
            return None
        embedding = embedding / np.maximum(norms, 1e-12)[:, None]  # rows on the unit sphere (Ng, Jordan & Weiss)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than clusters: fine
            kmeans = KMeans(n_clusters=k, n_init=self.config.kmeans_n_init, random_state=self.config.seed)
            core_labels = kmeans.fit_predict(embedding)
        labels = np.empty(n, dtype=np.int64)
        labels[core] = core_labels
        extra = water_fill(np.bincount(core_labels, minlength=k), n - n_core)
        labels[~core] = np.repeat(np.arange(k), extra)  # loose items, in catalog order, to the smallest clusters
        if np.bincount(labels).max() == n:
            return None
        return labels

    def _chunk_labels(self, n: int) -> np.ndarray:
        """Equal contiguous chunks (fallback that always makes progress)."""
        return np.arange(n) * min(self.config.num_clusters, n) // n

    def _split(self, graph, members, path, leaves, stats, progress) -> None:
        """Recursively split ``members`` (catalog positions, sorted) whose subgraph is ``graph``."""
        n = len(members)
        if n <= self.config.max_cluster_size:
            leaves.append((path, members))
            progress.update(n)
            return
        labels = None
        if len(path) < self.config.max_levels:
            # Single-threaded BLAS/OpenMP: the embedding (hence the index) then does not depend on the thread count,
            # and small splits are not slowed by thread start-up/spinning (k-means on 11k x 20 points: 0.2 s with
            # one thread, 8 s with two on two busy cores).
            with threadpool_limits(limits=1):
                labels = self._cluster_labels(graph, stats)
        if labels is None:
            labels = self._chunk_labels(n)
            stats["chunk_splits"] += 1
        else:
            stats["spectral_splits"] += 1
        # Deterministic child numbering: largest cluster first, ties by first member.
        sizes = np.bincount(labels)
        first = np.full(len(sizes), n)
        np.minimum.at(first, labels, np.arange(n))
        order = [c for c in np.lexsort((first, -sizes)) if sizes[c] > 0]
        for child, c in enumerate(order):
            mask = labels == c
            self._split(graph[mask][:, mask], members[mask], path + (child,), leaves, stats, progress)

    # ------------------------------------------------------------------ Indexer API
    def fit(self, items: pd.DataFrame, train_sequences: list[list[str]]) -> ItemIndex:
        item_ids = items["item_id"].astype(str).to_numpy()
        n = len(item_ids)
        if n == 0:
            raise ValueError("cannot index an empty catalog")
        codes, lengths = flatten_sequences(item_ids, train_sequences)
        graph = cooccurrence_graph(codes.astype(np.int32), lengths, n, self.config.window)
        del codes
        isolated = int((np.diff(graph.indptr) == 0).sum())
        if isolated:
            logger.info("%d of %d items co-occur with no other item in training; placed by size balance", isolated, n)
        stats = {"chunk_splits": 0, "spectral_splits": 0, "arpack_not_converged": 0}
        leaves: list[tuple[tuple[int, ...], np.ndarray]] = []
        with tqdm(total=n, desc="collaborative indexing", unit="item", leave=False) as progress:
            self._split(graph, np.arange(n), (), leaves, stats, progress)

        identifiers = np.empty(n, dtype=object)
        tokens: set[tuple[int, int]] = set()
        for path, members in leaves:
            prefix = "".join(self._token(level, c) for level, c in enumerate(path, start=1))
            tokens.update(enumerate(path, start=1))
            leaf_level = len(path) + 1
            tokens.update((leaf_level, j) for j in range(len(members)))
            identifiers[members] = [prefix + self._token(leaf_level, j) for j in range(len(members))]
        leaf_sizes = np.array([len(m) for _, m in leaves])
        depths = np.array([len(p) + 1 for p, _ in leaves])
        stats.update(
            {
                "items": n,
                "graph_edges": int(graph.nnz // 2),
                "isolated_items": isolated,
                "levels": int(depths.max()),
                "identifier_lengths": {str(d): int(leaf_sizes[depths == d].sum()) for d in np.unique(depths)},
                "leaves": len(leaves),
                "leaf_size_min": int(leaf_sizes.min()),
                "leaf_size_mean": float(leaf_sizes.mean()),
                "leaf_size_max": int(leaf_sizes.max()),
                "num_tokens": len(tokens),
            }
        )
        new_tokens = [self._token(level, c) for level, c in sorted(tokens)]
        return self._make_index(item_ids, identifiers.tolist(), new_tokens=new_tokens, stats=stats)

    def extend(self, index: ItemIndex, new_items: pd.DataFrame, train_sequences=None, **kwargs) -> ItemIndex:
        """Add ``new_items`` to existing leaves (see the class docstring for the rule).

        Args:
            train_sequences (`list[list[str]]`, *optional*): sequences that contain the new items (and indexed
                ones); their co-occurrences choose each new item's leaf.
        """
        new_ids = new_items["item_id"].astype(str).tolist()
        split = [ident.rsplit("<", 1) for ident in index.identifiers]  # (leaf path, "c3_7>")
        try:
            numbers = np.array([int(last.rsplit("_", 1)[1].rstrip(">")) for _, last in split])
        except (IndexError, ValueError):
            raise ItemIndexError("this index does not hold collaborative identifiers (<prefix level_n>...)") from None
        leaf_of, leaf_paths = pd.factorize(pd.Series([path for path, _ in split]), sort=True)
        sizes = np.bincount(leaf_of, minlength=len(leaf_paths))
        next_number = np.zeros(len(leaf_paths), dtype=np.int64)
        np.maximum.at(next_number, leaf_of, numbers + 1)

        votes = self._leaf_votes(index, new_ids, leaf_of, len(leaf_paths), train_sequences)
        heap = [(int(s), leaf) for leaf, s in enumerate(sizes)]
        heapq.heapify(heap)
        identifiers, tokens = [], list(index.new_tokens)
        known_tokens = set(tokens)
        for i in range(len(new_ids)):
            row = votes[i] if votes is not None else None
            if row is not None and row.nnz:
                # most co-occurrence; ties: smaller leaf, then first leaf in identifier order
                weights, candidates = row.data, row.indices
                best = candidates[weights == weights.max()]
                leaf = int(best[np.lexsort((best, sizes[best]))[0]])
            else:
                while heap[0][0] != sizes[heap[0][1]]:  # drop entries made stale by later growth
                    heapq.heappop(heap)
                leaf = heap[0][1]
            sizes[leaf] += 1
            heapq.heappush(heap, (int(sizes[leaf]), leaf))
            path = leaf_paths[leaf]
            token = self._token(path.count("<") + 1, int(next_number[leaf]))
            next_number[leaf] += 1
            identifiers.append(path + token)
            if token not in known_tokens:
                known_tokens.add(token)
                tokens.append(token)
        return index.with_items(new_ids, identifiers, new_tokens=tokens)

    def _leaf_votes(self, index, new_ids, leaf_of, num_leaves, train_sequences) -> sp.csr_matrix | None:
        """Co-occurrence weight of each new item with each leaf: sparse (new items, leaves), or ``None``."""
        if not train_sequences:
            return None
        codes, lengths = flatten_sequences(list(index.item_ids) + new_ids, train_sequences)
        n_old = len(index.item_ids)
        rows, cols = [], []
        for a, b in cooccurrence_pairs(codes, lengths, self.config.window):
            for new, old in ((a, b), (b, a)):
                keep = (new >= n_old) & (old < n_old)
                rows.append(new[keep] - n_old)
                cols.append(leaf_of[old[keep]])
        rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        votes = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(new_ids), num_leaves))
        votes.sum_duplicates()
        return votes
