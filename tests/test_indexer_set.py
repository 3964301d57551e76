"""set indexer (SETRec): one token per position, uniqueness, CF tokens from training interactions only, cold start."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genrec.data import DataError
from genrec.indexing import ItemIndex, build_indexer
from genrec.indexing.quantizers import array_from_state

OPTIONS = {"num_cf_clusters": 4, "cf_dim": 4, "num_semantic": 2, "semantic_codebook_size": 4, "semantic_dim": 8}


def content(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def parse(identifier: str) -> list[tuple[str, int]]:
    return [(a, int(b)) for a, b in re.findall(r"<(cf|s\d+)_(\d+)>", identifier)]


def test_one_token_per_position_and_unique(tiny_data, tiny_split):
    X = content(tiny_data.num_items)
    X[1:4] = X[0]  # identical content → identical semantic tokens, must still be told apart
    index = build_indexer("set", **OPTIONS).fit(tiny_data.items, tiny_split.train, embeddings=X)
    positions = index.state["positions"]
    assert positions == ["cf", "s1", "s2"]
    assert index.state["position_sizes"] == [4, 4, 4]
    for ident in index.identifiers:
        parsed = parse(ident)
        assert [name for name, _ in parsed] == positions  # canonical order, exactly one token per position
        assert all(0 <= t < size for (_, t), size in zip(parsed, index.state["position_sizes"]))
    assert len(set(index.identifiers)) == len(index)
    assert index.stats["collision_rate_before_dedup"] > 0 and index.stats["reassigned_items"] > 0
    assert set(index.new_tokens) == {f"<{p}_{t}>" for p in positions for t in range(4)}


def test_cf_tokens_come_from_training_interactions_only(tiny_data, tiny_split):
    X = content(tiny_data.num_items)
    train = [list(seq) for seq in tiny_split.train]
    held_out = {"i0", "i1"}  # pretend these items were only ever seen in validation/test
    train = [[i for i in seq if i not in held_out] for seq in train]
    index = build_indexer("set", **OPTIONS).fit(tiny_data.items, train, embeddings=X)
    assert index.stats["cold_items"] == 2 and index.stats["warm_items"] == tiny_data.num_items - 2

    # Cold items take the CF cluster whose content centroid is closest (documented rule).
    projection = array_from_state(index.state["projection"])
    mean = array_from_state(index.state["content_mean"])
    centroids = array_from_state(index.state["cf_content_centroids"])
    for item in held_out:
        y = (X[tiny_data.items["item_id"].tolist().index(item)] - mean) @ projection
        assert parse(index.identifier(item))[0] == ("cf", int(np.argmax(centroids @ (y / np.linalg.norm(y)))))

    # Same content, different training interactions: semantic tokens identical, CF tokens change.
    reversed_train = [seq[::-1][: max(2, len(seq) // 2)] for seq in train[::2]]
    other = build_indexer("set", **OPTIONS).fit(tiny_data.items, reversed_train, embeddings=X)
    again = build_indexer("set", **OPTIONS).fit(tiny_data.items, train, embeddings=X)
    assert again.identifiers == index.identifiers  # deterministic for a seed
    semantic = lambda idx: [parse(i)[1:] for i in idx.identifiers]  # noqa: E731
    cf = lambda idx: [parse(i)[0] for i in idx.identifiers]  # noqa: E731
    moved = sum(a != b for a, b in zip(semantic(index), semantic(other)))
    assert moved <= index.stats["reassigned_items"] + other.stats["reassigned_items"]
    assert cf(index) != cf(other)


def test_cold_start_and_save_load(tmp_path, tiny_data, tiny_split):
    X = content(tiny_data.num_items)
    index = build_indexer("set", **OPTIONS).fit(tiny_data.items, tiny_split.train, embeddings=X)
    loaded = ItemIndex.load(index.save(tmp_path / "set.json"))
    assert loaded.identifiers == index.identifiers and loaded.state == index.state
    new_items = pd.DataFrame({"item_id": ["n0", "n1", "n2"], "title": ["a", "b", "c"]})
    new = np.vstack([X[[5, 5]], content(1, seed=9)])  # two copies of an existing item's content
    extended = index.add_items(new_items, embeddings=new)
    assert extended.identifiers == loaded.add_items(new_items, embeddings=new).identifiers
    assert extended.identifiers[: len(index)] == index.identifiers
    assert len(set(extended.identifiers)) == len(extended)
    assert extended.new_tokens == index.new_tokens  # full vocabularies were added at fit time
    # Without a collision, a new item's semantic tokens are the nearest codewords of its own sub-vectors.
    y = (new[2] - array_from_state(index.state["content_mean"])) @ array_from_state(index.state["projection"])
    bounds = index.state["subvector_bounds"]
    expected = [
        int(((array_from_state(C) - y[lo:hi]) ** 2).sum(1).argmin())
        for lo, hi, C in zip(bounds[:-1], bounds[1:], index.state["semantic_codebooks"])
    ]
    got = parse(extended.identifier("n2"))
    if got not in [parse(i) for i in index.identifiers]:
        assert [t for _, t in got[1:]] == expected


def test_set_errors(tiny_data, tiny_split):
    X = content(tiny_data.num_items)
    with pytest.raises(ValueError, match="fewer items than codebook size"):
        build_indexer("set", **{**OPTIONS, "semantic_codebook_size": 64}).fit(
            tiny_data.items, tiny_split.train, embeddings=X
        )
    X[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or inf"):
        build_indexer("set", **OPTIONS).fit(tiny_data.items, tiny_split.train, embeddings=X)
    with pytest.raises(ValueError, match="semantic_dim"):
        build_indexer("set", num_semantic=4, semantic_dim=2)


def test_zero_cf_clusters_gives_every_warm_item_its_own_cf_token(tiny_data, tiny_split):
    X = content(tiny_data.num_items)
    held_out = {"i0"}
    train = [[i for i in seq if i not in held_out] for seq in tiny_split.train]
    index = build_indexer("set", **{**OPTIONS, "num_cf_clusters": 0}).fit(tiny_data.items, train, embeddings=X)
    warm = [item for item in index.item_ids if item not in held_out]
    assert index.state["position_sizes"][0] == len(warm) == index.stats["warm_items"]
    assert len({parse(index.identifier(item))[0] for item in warm}) == len(warm)  # no two warm items share one
    assert len(set(index.identifiers)) == len(index)  # the cold item borrows a CF token but stays unique
