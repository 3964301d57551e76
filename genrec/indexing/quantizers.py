"""Residual quantisers that turn item content vectors into code tuples, and collision rules that make them unique.

Both quantisers share one interface: ``fit(X) -> codes`` of shape ``(N, L)``, ``encode(X)`` for items added later
(nearest codeword at every level), ``codebooks`` (one ``(K, dim)`` array per level, in the space returned by
``latents(X)``) and a JSON-serialisable ``state_dict()`` / :func:`quantizer_from_state`.

- :class:`RQKMeans`: k-means per level on the residuals of the previous levels.
- :class:`RQVAE`: TIGER's residual-quantised variational autoencoder (MLP encoder → latent → L residual codebooks →
  MLP decoder), trained with reconstruction MSE + codebook loss + β·commitment and the straight-through estimator,
  k-means initialisation of the codebooks and restart of codes left unused over an epoch.

Collisions (two items with the same tuple) are resolved by :func:`dedup_suffix` (TIGER: an extra level numbering
the items that share a tuple) or :func:`dedup_sinkhorn` (LC-Rec's uniform semantic mapping: the last level of
colliding items is re-assigned by a Sinkhorn-Knopp balanced assignment over their distances to that level's
codewords, repeated until no collision is left).

Arrays in states are stored as base64 float32/int64 bytes rather than JSON lists: exact, and about 4x smaller than
numbers written as text (an RQ-VAE has a few hundred thousand weights).
"""

from __future__ import annotations

import base64
import logging
import warnings
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

logger = logging.getLogger(__name__)

_CHUNK = 65536  # rows per block when computing distances, to bound memory on large catalogs


class QuantizerError(ValueError):
    """Raised for a quantiser configuration or input that cannot work (e.g. fewer items than codewords)."""


# ---------------------------------------------------------------------------------------------------- arrays ↔ JSON
def array_to_state(array: np.ndarray) -> dict:
    """Exact, compact JSON form of an array (float arrays are stored as float32)."""
    array = np.asarray(array)
    dtype = "int64" if np.issubdtype(array.dtype, np.integer) else "float32"
    data = np.ascontiguousarray(array, dtype=dtype)
    return {"dtype": dtype, "shape": list(data.shape), "base64": base64.b64encode(data.tobytes()).decode("ascii")}


def array_from_state(state: dict) -> np.ndarray:
    raw = base64.b64decode(state["base64"])
    return np.frombuffer(raw, dtype=state["dtype"]).reshape(state["shape"]).copy()


# ---------------------------------------------------------------------------------------------------- shared maths
def squared_distances(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N, K) squared euclidean distances, computed in float64 for stable argmin ties."""
    X = X.astype(np.float64, copy=False)
    C = C.astype(np.float64, copy=False)
    d = (X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :]
    return np.maximum(d, 0.0)


def nearest_codes(Z: np.ndarray, codebooks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Greedy residual assignment: nearest codeword per level. Returns ``codes (N, L)`` and the final residual."""
    codes = np.zeros((len(Z), len(codebooks)), dtype=np.int64)
    residual = np.asarray(Z, dtype=np.float32).copy()
    for start in range(0, len(Z), _CHUNK):
        block = residual[start : start + _CHUNK]  # view: updated in place
        for level, C in enumerate(codebooks):
            idx = squared_distances(block, C).argmin(1)
            codes[start : start + len(block), level] = idx
            block -= C[idx]
    return codes, residual


def residual_before_level(Z: np.ndarray, codes: np.ndarray, codebooks: list[np.ndarray], level: int) -> np.ndarray:
    """``Z`` minus the codewords of levels ``< level``: what level ``level`` quantises."""
    residual = np.asarray(Z, dtype=np.float32).copy()
    for lvl in range(level):
        residual -= codebooks[lvl][codes[:, lvl]]
    return residual


def codebook_utilisation(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Fraction of each level's codewords used by at least one item."""
    return [float(len(np.unique(codes[:, lvl])) / codebook_size) for lvl in range(codes.shape[1])]


def kmeans(X: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means centres and labels; mini-batch k-means above 20k points so large catalogs stay fast."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(X) > 20000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_iter=100)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=1, max_iter=300)
    from threadpoolctl import threadpool_limits

    # Small problems: one thread is as fast and avoids OpenMP oversubscription on busy machines (10x slowdowns).
    threads = 1 if len(X) <= 20000 else None
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=threads):
        warnings.simplefilter("always")
        labels = model.fit_predict(X.astype(np.float32))
    for w in caught:  # e.g. "Number of distinct clusters found smaller than n_clusters" on duplicated vectors
        logger.info("k-means: %s", w.message)
    return model.cluster_centers_.astype(np.float32), labels.astype(np.int64)


def _check_input(X, num_items_min: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise QuantizerError(f"expected a non-empty 2-d array of item vectors, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise QuantizerError("item vectors contain NaN or inf")
    if num_items_min is not None and len(X) < num_items_min:
        raise QuantizerError(
            f"fewer items than codebook size: {len(X)} items but {num_items_min} codewords per level; use a smaller "
            "codebook_size (or auto_shrink=True)"
        )
    return X


# ---------------------------------------------------------------------------------------------------- quantisers
class ResidualQuantizer(ABC):
    """Common interface of residual quantisers (see module docstring)."""

    kind: ClassVar[str]

    def __init__(self, num_levels: int, codebook_size: int, seed: int = 0):
        if num_levels < 1:
            raise QuantizerError(f"num_levels must be >= 1, got {num_levels}")
        if codebook_size < 2:
            raise QuantizerError(f"codebook_size must be >= 2, got {codebook_size}")
        self.num_levels = num_levels
        self.codebook_size = codebook_size
        self.seed = seed
        self.codebooks: list[np.ndarray] = []
        self.stats: dict = {}

    @abstractmethod
    def fit(self, X: np.ndarray) -> np.ndarray:
        """Fit on item vectors ``X`` (N, dim) and return their codes (N, num_levels)."""

    @abstractmethod
    def latents(self, X: np.ndarray) -> np.ndarray:
        """The vectors the codebooks quantise (``X`` itself for RQ-KMeans, the encoder output for RQ-VAE)."""

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Codes of new vectors: the nearest codeword at every level (cold start)."""
        if not self.codebooks:
            raise QuantizerError(f"the {self.kind} quantiser is not fitted")
        return nearest_codes(self.latents(_check_input(X)), self.codebooks)[0]

    def _common_state(self) -> dict:
        return {
            "kind": self.kind,
            "num_levels": self.num_levels,
            "codebook_size": self.codebook_size,
            "seed": self.seed,
            "codebooks": [array_to_state(C) for C in self.codebooks],
        }

    @abstractmethod
    def state_dict(self) -> dict:
        """JSON-serialisable state from which :func:`quantizer_from_state` rebuilds an identical quantiser."""

    def _finish_stats(self, Z: np.ndarray, codes: np.ndarray, residual: np.ndarray) -> None:
        variance = float(((Z - Z.mean(0)) ** 2).sum(1).mean())
        self.stats.update(
            {
                "codebook_utilisation": codebook_utilisation(codes, self.codebook_size),
                # Share of the latent variance the codes do not explain (0 = exact, 1 = no better than the mean).
                "relative_quantisation_error": float((residual**2).sum(1).mean() / max(variance, 1e-12)),
            }
        )


class RQKMeans(ResidualQuantizer):
    """Residual k-means: level ``l`` is k-means with ``codebook_size`` centres on the residuals of levels ``< l``.

    Example:
        >>> q = RQKMeans(num_levels=2, codebook_size=8, seed=0)
        >>> codes = q.fit(np.random.default_rng(0).normal(size=(100, 16)))
        >>> codes.shape
        (100, 2)
    """

    kind = "rqkmeans"

    def fit(self, X: np.ndarray) -> np.ndarray:
        X = _check_input(X, self.codebook_size)
        residual = X.copy()
        self.codebooks = []
        codes = np.zeros((len(X), self.num_levels), dtype=np.int64)
        for level in range(self.num_levels):
            centres, labels = kmeans(residual, self.codebook_size, self.seed + level)
            self.codebooks.append(centres)
            codes[:, level] = labels
            residual -= centres[labels]
        # k-means labels are nearest centres at convergence; recompute so fit and encode agree exactly.
        codes, residual = nearest_codes(X, self.codebooks)
        self._finish_stats(X, codes, residual)
        return codes

    def latents(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32)

    def state_dict(self) -> dict:
        return self._common_state()

    @classmethod
    def from_state(cls, state: dict) -> RQKMeans:
        q = cls(state["num_levels"], state["codebook_size"], state["seed"])
        q.codebooks = [array_from_state(C) for C in state["codebooks"]]
        return q


class RQVAE(ResidualQuantizer):
    """TIGER's RQ-VAE, trained in torch on CPU or GPU.

    Args:
        num_levels (`int`): codebooks (TIGER: 3).
        codebook_size (`int`): codewords per codebook (TIGER: 256).
        seed (`int`, defaults to 0): the same seed gives the same weights and codes.
        latent_dim (`int`, defaults to 32): size of the quantised latent (TIGER: 32).
        hidden_dims (`list[int]`, defaults to ``[256, 128]``): encoder MLP widths; the decoder mirrors them
            (TIGER: ``[512, 256, 128]`` on 768-d sentence-T5 vectors).
        epochs (`int`, defaults to 100): passes over the items.
        batch_size (`int`, defaults to 256): items per step.
        lr (`float`, defaults to 3e-3): Adam learning rate.
        beta (`float`, defaults to 0.25): commitment weight (TIGER: 0.25).
        restart_dead_codes (`bool`, defaults to `True`): after each epoch, codewords no item chose during the epoch
            are re-seeded from randomly drawn residuals of that level.
        device (`str`, *optional*): torch device; defaults to CPU (the model is tiny).
        show_progress (`bool`, defaults to `True`): tqdm bar over epochs.
        num_threads (`int`, *optional*, defaults to 1): torch CPU threads while training (restored afterwards);
            ``None`` keeps torch's setting.

    Inputs are centred and scaled to unit average per-dimension variance before training (``mean`` and ``scale`` are
    part of the state), so ``reconstruction_mse`` in the stats reads as the share of variance not reconstructed.
    """

    kind = "rqvae"

    def __init__(
        self,
        num_levels: int,
        codebook_size: int,
        seed: int = 0,
        latent_dim: int = 32,
        hidden_dims: list[int] | tuple[int, ...] = (256, 128),
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 3e-3,
        beta: float = 0.25,
        restart_dead_codes: bool = True,
        device: str | None = None,
        show_progress: bool = True,
        num_threads: int | None = 1,
    ):
        super().__init__(num_levels, codebook_size, seed)
        if latent_dim < 1 or any(h < 1 for h in hidden_dims):
            raise QuantizerError(f"latent_dim and hidden_dims must be positive, got {latent_dim}, {list(hidden_dims)}")
        if epochs < 1 or batch_size < 1 or lr <= 0 or beta < 0:
            raise QuantizerError(
                f"need epochs >= 1, batch_size >= 1, lr > 0, beta >= 0; got {epochs}, {batch_size}, {lr}, {beta}"
            )
        self.latent_dim = latent_dim
        self.hidden_dims = [int(h) for h in hidden_dims]
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.restart_dead_codes = restart_dead_codes
        self.device = device or "cpu"
        self.show_progress = show_progress
        self.num_threads = num_threads
        self.input_dim: int | None = None
        self.mean: np.ndarray | None = None
        self.scale: float = 1.0
        self.net = None

    # ------------------------------------------------------------------ model
    def _build_net(self, input_dim: int):
        import torch.nn as nn

        def mlp(dims: list[int]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(dims) - 2:
                    layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        dims = [input_dim, *self.hidden_dims, self.latent_dim]
        return nn.ModuleDict({"encoder": mlp(dims), "decoder": mlp(dims[::-1])})

    def _standardise(self, X: np.ndarray):
        import torch

        return torch.from_numpy(((X - self.mean) / self.scale).astype(np.float32)).to(self.device)

    def latents(self, X: np.ndarray) -> np.ndarray:
        import torch

        if self.net is None:
            raise QuantizerError("the rqvae quantiser is not fitted")
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1] != self.input_dim:
            raise QuantizerError(f"vectors have dimension {X.shape[1]} but the RQ-VAE was trained on {self.input_dim}")
        out = []
        with torch.no_grad():
            for start in range(0, len(X), _CHUNK):
                out.append(self.net["encoder"](self._standardise(X[start : start + _CHUNK])).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    # ------------------------------------------------------------------ training
    def fit(self, X: np.ndarray) -> np.ndarray:
        import torch

        X = _check_input(X, self.codebook_size)
        self.input_dim = X.shape[1]
        self.mean = X.mean(0)
        self.scale = float(np.sqrt(((X - self.mean) ** 2).mean())) or 1.0
        threads = torch.get_num_threads()
        try:
            # The model is tiny: intra-op threads cost more than they give, and oversubscribe busy CPUs.
            if self.num_threads:
                torch.set_num_threads(self.num_threads)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._train(X)
        finally:
            torch.set_num_threads(threads)
        Z = self.latents(X)
        codes, residual = nearest_codes(Z, self.codebooks)
        self.stats["reconstruction_mse"] = self._reconstruction_mse(X, codes)
        self._finish_stats(Z, codes, residual)
        return codes

    def _train(self, X: np.ndarray) -> None:
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        n, K, L = len(X), self.codebook_size, self.num_levels
        rng = np.random.default_rng(self.seed)
        self.net = self._build_net(X.shape[1]).to(self.device)
        data = self._standardise(X)  # (N, d)
        codebooks = torch.nn.Parameter(torch.zeros(L, K, self.latent_dim, device=self.device))
        self._init_codebooks(data, codebooks, rng)
        optimiser = torch.optim.Adam([*self.net.parameters(), codebooks], lr=self.lr)
        history, restarts = [], [0] * L
        for epoch in tqdm(range(self.epochs), desc="training RQ-VAE", unit="epoch", disable=not self.show_progress):
            self.net.train()
            counts = torch.zeros(L, K, device=self.device)
            order = torch.from_numpy(rng.permutation(n)).to(self.device)
            total, steps = 0.0, 0
            for start in range(0, n, self.batch_size):
                x = data[order[start : start + self.batch_size]]  # (B, d)
                z = self.net["encoder"](x)  # (B, D)
                residual, quantised = z, torch.zeros_like(z)
                codebook_loss = commitment = 0.0
                for level in range(L):
                    C = codebooks[level]  # (K, D)
                    with torch.no_grad():
                        idx = torch.cdist(residual.detach(), C.detach()).argmin(1)  # (B,)
                        counts[level] += torch.bincount(idx, minlength=K)
                    q = C[idx]
                    codebook_loss = codebook_loss + F.mse_loss(q, residual.detach())
                    commitment = commitment + F.mse_loss(residual, q.detach())
                    quantised = quantised + q
                    residual = residual - q.detach()
                z_q = z + (quantised - z).detach()  # straight-through estimator
                loss = F.mse_loss(self.net["decoder"](z_q), x) + codebook_loss + self.beta * commitment
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                steps += 1
            history.append(total / steps)
            if self.restart_dead_codes and epoch < self.epochs - 1:
                for level, n_dead in enumerate(self._restart_dead(data, codebooks, counts, rng)):
                    restarts[level] += n_dead
        self.codebooks = [C.detach().cpu().numpy().astype(np.float32) for C in codebooks]
        self.net.eval()
        self.stats.update(
            {
                "loss_history": [round(v, 6) for v in history],
                "loss_first_epoch": history[0],
                "loss_last_epoch": history[-1],
                "dead_code_restarts": restarts,
            }
        )

    def _level_residuals(self, data, codebooks, level: int):
        """Residuals entering ``level`` for the standardised ``data`` under the current model."""
        import torch

        with torch.no_grad():
            residual = self.net["encoder"](data)
            for lvl in range(level):
                C = codebooks[lvl]
                residual = residual - C[torch.cdist(residual, C).argmin(1)]
        return residual

    def _init_codebooks(self, data, codebooks, rng: np.random.Generator) -> None:
        """k-means on the initial latents (TIGER), level by level on residuals, of a sample of items."""
        import torch

        sample = data[torch.from_numpy(rng.permutation(len(data))[: max(self.batch_size, 20 * self.codebook_size)])]
        with torch.no_grad():
            residual = self.net["encoder"](sample).cpu().numpy()
            for level in range(self.num_levels):
                centres, labels = kmeans(residual, self.codebook_size, self.seed + level)
                codebooks[level].copy_(torch.from_numpy(centres))
                residual = residual - centres[labels]

    def _restart_dead(self, data, codebooks, counts, rng: np.random.Generator) -> list[int]:
        """Re-seed codewords unused during the epoch with residuals of random items at their level."""
        import torch

        restarted = []
        for level in range(self.num_levels):
            dead = torch.nonzero(counts[level] == 0).flatten()
            restarted.append(int(len(dead)))
            if len(dead) == 0:
                continue
            pick = rng.choice(len(data), size=len(dead), replace=len(dead) > len(data))
            residual = self._level_residuals(data[torch.from_numpy(pick)], codebooks, level)
            with torch.no_grad():
                codebooks[level, dead] = residual
        return restarted

    def _reconstruction_mse(self, X: np.ndarray, codes: np.ndarray) -> float:
        import torch

        z_q = sum(torch.from_numpy(C[codes[:, lvl]]) for lvl, C in enumerate(self.codebooks)).to(self.device)
        with torch.no_grad():
            x_hat = self.net["decoder"](z_q)
        return float(((x_hat - self._standardise(X)) ** 2).mean())

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        if self.net is None:
            raise QuantizerError("the rqvae quantiser is not fitted")
        weights = {name: array_to_state(t.detach().cpu().numpy()) for name, t in self.net.state_dict().items()}
        return {
            **self._common_state(),
            "latent_dim": self.latent_dim,
            "hidden_dims": self.hidden_dims,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "beta": self.beta,
            "restart_dead_codes": self.restart_dead_codes,
            "input_dim": self.input_dim,
            "mean": array_to_state(self.mean),
            "scale": self.scale,
            "weights": weights,
        }

    @classmethod
    def from_state(cls, state: dict) -> RQVAE:
        import torch

        q = cls(
            state["num_levels"],
            state["codebook_size"],
            state["seed"],
            latent_dim=state["latent_dim"],
            hidden_dims=state["hidden_dims"],
            epochs=state["epochs"],
            batch_size=state["batch_size"],
            lr=state["lr"],
            beta=state["beta"],
            restart_dead_codes=state["restart_dead_codes"],
        )
        q.input_dim = state["input_dim"]
        q.mean = array_from_state(state["mean"])
        q.scale = state["scale"]
        q.codebooks = [array_from_state(C) for C in state["codebooks"]]
        q.net = q._build_net(q.input_dim)
        q.net.load_state_dict({k: torch.from_numpy(array_from_state(v)) for k, v in state["weights"].items()})
        q.net.eval()
        return q


QUANTIZERS: dict[str, type[ResidualQuantizer]] = {"rqkmeans": RQKMeans, "rqvae": RQVAE}


def quantizer_from_state(state: dict) -> ResidualQuantizer:
    """Rebuild a fitted quantiser from :meth:`ResidualQuantizer.state_dict` output."""
    try:
        cls = QUANTIZERS[state["kind"]]
    except KeyError:
        raise QuantizerError(f"unknown quantizer {state.get('kind')!r}; known: {sorted(QUANTIZERS)}") from None
    return cls.from_state(state)


# ---------------------------------------------------------------------------------------------------- collisions
def collision_stats(codes: np.ndarray) -> dict:
    """Share of items whose full code tuple is shared with another item, and the largest such group."""
    if len(codes) == 0:
        return {"collision_rate": 0.0, "max_group_size": 0, "colliding_items": 0}
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    sizes = counts[inverse.reshape(-1)]
    return {
        "collision_rate": float((sizes > 1).mean()),
        "max_group_size": int(counts.max()),
        "colliding_items": int((sizes > 1).sum()),
    }


def _group_ids(codes: np.ndarray) -> np.ndarray:
    """Dense id of each row's tuple (rows with equal tuples share an id); zero-width rows all share id 0."""
    if codes.shape[1] == 0:
        return np.zeros(len(codes), dtype=np.int64)
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for the rows of each group, in row order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    first = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(groups)), 0))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - group_start
    return rank


def _next_suffixes(all_codes: np.ndarray, all_suffix: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Suffixes for rows ``new`` of ``all_codes``: continue after the largest suffix already used by that tuple."""
    groups = _group_ids(all_codes)
    next_free = np.zeros(groups.max() + 1, dtype=np.int64)
    old = ~new
    np.maximum.at(next_free, groups[old], all_suffix[old] + 1)
    return next_free[groups[new]] + _rank_within_groups(groups[new])


def dedup_suffix(
    codes: np.ndarray, existing_codes: np.ndarray | None = None, existing_suffix: np.ndarray | None = None
) -> np.ndarray:
    """TIGER's collision level: the n items sharing a tuple get suffixes 0..n-1 (in item order).

    With ``existing_*`` (cold start), new items continue after the suffixes already used by their tuple.
    Returns the suffix of every row of ``codes``.
    """
    if existing_codes is None or len(existing_codes) == 0:
        return _rank_within_groups(_group_ids(codes))
    all_codes = np.vstack([existing_codes, codes])
    all_suffix = np.r_[existing_suffix, np.full(len(codes), -1)]
    new = np.r_[np.zeros(len(existing_codes), bool), np.ones(len(codes), bool)]
    return _next_suffixes(all_codes, all_suffix, new)


def sinkhorn(
    cost: np.ndarray,
    epsilon: float,
    iterations: int,
    row_mass: np.ndarray | None = None,
    col_mass: np.ndarray | None = None,
) -> np.ndarray:
    """Entropic optimal transport plan (log-domain Sinkhorn-Knopp); marginals default to uniform.

    ``row_mass`` and ``col_mass`` must have equal sums; the plan's rows and columns sum to them (up to convergence).
    """
    n, m = cost.shape
    row_mass = np.full(n, 1.0 / n) if row_mass is None else np.asarray(row_mass, dtype=np.float64)
    col_mass = np.full(m, 1.0 / m) if col_mass is None else np.asarray(col_mass, dtype=np.float64)
    log_r, log_c = np.log(row_mass), np.log(col_mass)
    log_kernel = -cost / epsilon
    f, g = np.zeros(n), np.zeros(m)
    for _ in range(iterations):
        f = log_r - logsumexp(log_kernel + g[None, :], axis=1)
        g = log_c - logsumexp(log_kernel + f[:, None], axis=0)
    return np.exp(log_kernel + f[:, None] + g[None, :])


def _capacity_plan(cost: np.ndarray, epsilon: float, iterations: int) -> np.ndarray:
    """Transport plan sending each of n items (mass 1) to m >= n codewords of capacity 1 each.

    A zero-cost dummy row absorbs the m - n spare capacity, so the problem is balanced and Sinkhorn-Knopp applies;
    the returned (n, m) block is the entropic relaxation of the min-cost assignment of items to distinct codewords.
    """
    n, m = cost.shape
    if m == n:
        return sinkhorn(cost, epsilon, iterations)
    padded = np.vstack([cost, np.zeros((1, m))])
    row_mass = np.r_[np.ones(n), m - n] / m
    return sinkhorn(padded, epsilon, iterations, row_mass, np.full(m, 1.0 / m))[:n]


def _sinkhorn_unique(
    residuals: np.ndarray,
    codebook: np.ndarray,
    forbidden: np.ndarray,
    epsilon: float,
    iterations: int,
    max_rounds: int,
) -> tuple[np.ndarray, int, int]:
    """Distinct last-level codes (not in ``forbidden``) for ``residuals`` by repeated balanced assignment.

    Each round solves the balanced transport of the still-unassigned items to the still-free codewords (capacity
    one each, :func:`_capacity_plan`) and gives every item its most likely codeword; where several items pick the
    same codeword, the one with the largest transport mass keeps it and the others go to the next round. Items left
    after ``max_rounds`` take free codewords greedily by transport mass. Returns ``(codes, rounds, greedy_items)``.
    """
    available = np.setdiff1d(np.arange(len(codebook)), forbidden)
    if len(residuals) > len(available):
        raise QuantizerError(f"{len(residuals)} items but only {len(available)} free codewords")
    cost = squared_distances(residuals, codebook[available])  # (m, A)
    span = cost.max() - cost.min()
    cost = (cost - cost.mean()) / (span if span > 0 else 1.0)  # scale-free, as LC-Rec normalises distances
    result = np.full(len(residuals), -1, dtype=np.int64)
    remaining = np.arange(len(residuals))
    free = np.ones(len(available), dtype=bool)
    rounds = 0
    while len(remaining) and rounds < max_rounds:
        rounds += 1
        cols = np.flatnonzero(free)
        plan = _capacity_plan(cost[np.ix_(remaining, cols)], epsilon, iterations)  # (r, c)
        choice = plan.argmax(1)
        mass = plan[np.arange(len(remaining)), choice]
        order = np.lexsort((-mass, choice))  # by chosen column, largest mass first
        winner = np.r_[True, choice[order][1:] != choice[order][:-1]]
        won = order[winner]
        result[remaining[won]] = available[cols[choice[won]]]
        free[cols[choice[won]]] = False
        remaining = remaining[np.sort(order[~winner])]
    greedy = len(remaining)
    if greedy:
        cols = np.flatnonzero(free)
        plan = _capacity_plan(cost[np.ix_(remaining, cols)], epsilon, iterations)
        for flat in np.argsort(-plan, axis=None, kind="stable"):
            row, col = divmod(int(flat), len(cols))
            if result[remaining[row]] == -1 and free[cols[col]]:
                result[remaining[row]] = available[cols[col]]
                free[cols[col]] = False
    return result, rounds, greedy


def dedup_sinkhorn(
    codes: np.ndarray,
    last_residuals: np.ndarray,
    last_codebook: np.ndarray,
    existing_codes: np.ndarray | None = None,
    existing_suffix: np.ndarray | None = None,
    fallback_prefixes: list[list[int]] | None = None,
    epsilon: float = 0.003,
    iterations: int = 50,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray, list[list[int]], dict]:
    """LC-Rec uniform semantic mapping: re-assign the last level of colliding items with balanced Sinkhorn assignments.

    Items are grouped by their first ``L-1`` codes (the prefix); within a prefix, the non-colliding items keep their
    codes and the colliding ones share the remaining codewords of the last level (:func:`_sinkhorn_unique`), which
    leaves no collision. A prefix with more items than codewords cannot be made unique that way: its items keep
    their nearest codes and all get a suffix level (TIGER-style), and the prefix is listed in ``fallback_prefixes``
    so that items added later to it also get suffixes.

    With ``existing_*`` (cold start) only the new rows move; a new item whose tuple is taken is re-assigned among the
    free codewords of its prefix. A full prefix raises :class:`QuantizerError`.

    Returns:
        ``(codes, suffix, fallback_prefixes, stats)`` for the rows of ``codes``; ``suffix`` is -1 where there is none.
    """
    n_new, L = codes.shape
    K = len(last_codebook)
    n_old = 0 if existing_codes is None else len(existing_codes)
    all_codes = codes if n_old == 0 else np.vstack([existing_codes, codes])
    all_codes = all_codes.copy()
    all_suffix = np.r_[np.full(n_old, -1) if existing_suffix is None else existing_suffix, np.full(n_new, -1)]
    new = np.r_[np.zeros(n_old, bool), np.ones(n_new, bool)]
    fallback = {tuple(p) for p in (fallback_prefixes or [])}

    full = _group_ids(all_codes)
    colliding = np.bincount(full)[full] > 1
    moving = colliding & new
    prefixes = _group_ids(all_codes[:, : L - 1])
    stats = {"sinkhorn_groups": 0, "sinkhorn_reassigned": 0, "sinkhorn_max_rounds": 0, "sinkhorn_greedy_items": 0}
    suffix_rows = np.zeros(len(all_codes), dtype=bool)
    order = np.argsort(prefixes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, prefixes[order][1:] != prefixes[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        members = order[lo:hi]
        if not moving[members].any():
            continue
        prefix = tuple(int(c) for c in all_codes[members[0], : L - 1])
        if prefix in fallback or (n_old == 0 and len(members) > K):
            fallback.add(prefix)
            suffix_rows[members[new[members]]] = True
            continue
        movers = members[moving[members]]
        stayers = members[~moving[members]]
        if len(movers) > K - len(stayers):
            raise QuantizerError(
                f"prefix {list(prefix)} has no free last-level codeword for {len(movers)} new item(s) "
                f"({len(stayers)} of {K} taken); refit the index with a larger codebook_size"
            )
        last, rounds, greedy = _sinkhorn_unique(
            last_residuals[movers - n_old], last_codebook, all_codes[stayers, -1], epsilon, iterations, max_rounds
        )
        all_codes[movers, -1] = last
        stats["sinkhorn_groups"] += 1
        stats["sinkhorn_reassigned"] += int((last != codes[movers - n_old, -1]).sum())
        stats["sinkhorn_max_rounds"] = max(stats["sinkhorn_max_rounds"], rounds)
        stats["sinkhorn_greedy_items"] += greedy
    if suffix_rows.any():
        all_suffix[suffix_rows] = _next_suffixes(all_codes, all_suffix, suffix_rows)
    stats["suffix_fallback_groups"] = len(fallback)
    stats["suffix_fallback_items"] = int(suffix_rows.sum())
    return all_codes[n_old:], all_suffix[n_old:], sorted(list(p) for p in fallback), stats
