"""Collaborative (CID) indexer: co-occurring items share prefixes, no identifier is a prefix of another, cold start."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genrec.indexing import build_indexer
from genrec.indexing.collaborative import cooccurrence_graph, water_fill

TOKEN = re.compile(r"<[^<>]+>")


def _tokens(identifier: str) -> tuple[str, ...]:
    return tuple(TOKEN.findall(identifier))


def _assert_prefix_free(identifiers: list[str]) -> None:
    """No token sequence is a proper prefix of another (sorted order: a prefix would sit right before an extension)."""
    seqs = sorted(_tokens(i) for i in identifiers)
    assert all("".join(_tokens(i)) == i for i in identifiers), "identifiers must consist of tokens only"
    for a, b in zip(seqs, seqs[1:]):
        assert a != b, f"duplicate identifier {a}"
        assert b[: len(a)] != a, f"{''.join(a)} is a prefix of {''.join(b)}"


def _community_data(sizes=(6, 6, 6, 6), links=((0, 1), (2, 3)), users_per=30, length=8, seed=0):
    """Items of a community co-occur among themselves; linked communities share a few users; no other edges."""
    rng = np.random.default_rng(seed)
    communities, start = [], 0
    for size in sizes:
        communities.append([f"i{start + j}" for j in range(size)])
        start += size
    sequences = []
    for c, members in enumerate(communities):
        for _ in range(users_per):
            sequences.append([str(x) for x in rng.choice(members, size=length)])
    for a, b in links:  # a few users who mix two communities
        for _ in range(3):
            sequences.append([str(x) for x in rng.choice(communities[a] + communities[b], size=length)])
    items = pd.DataFrame({"item_id": [i for m in communities for i in m], "title": ""})
    return items, sequences, communities


def test_cooccurrence_graph_counts_window_pairs():
    codes = np.array([0, 1, 2, 1, 3, 0, 0], dtype=np.int32)  # sequences [0 1 2 1] and [3 0 0]
    graph = cooccurrence_graph(codes, np.array([4, 3]), num_items=4, window=2).toarray()
    expected = np.zeros((4, 4))
    for seq in ([0, 1, 2, 1], [3, 0, 0]):
        for i in range(len(seq)):
            for j in range(i + 1, min(len(seq), i + 3)):
                if seq[i] != seq[j]:
                    expected[seq[i], seq[j]] += 1
                    expected[seq[j], seq[i]] += 1
    np.testing.assert_array_equal(graph, expected)


def test_water_fill_evens_out_sizes():
    np.testing.assert_array_equal(water_fill(np.array([5, 1, 3]), 4), [0, 3, 1])
    np.testing.assert_array_equal(water_fill(np.array([2, 2, 2]), 4), [2, 1, 1])
    np.testing.assert_array_equal(water_fill(np.array([4, 0]), 0), [0, 0])
    assert water_fill(np.array([7, 1, 9, 3]), 100).sum() == 100


def test_co_occurring_items_share_prefixes():
    items, sequences, communities = _community_data()
    index = build_indexer("collaborative", num_clusters=2, max_cluster_size=6).fit(items, sequences)
    paths = {item: _tokens(index.identifier(item))[:-1] for item in items["item_id"]}
    for members in communities:  # each community is exactly one leaf
        assert len({paths[i] for i in members}) == 1
        assert len(paths[members[0]]) == 2
    first = lambda c: paths[communities[c][0]]  # noqa: E731
    assert first(0)[0] == first(1)[0] and first(2)[0] == first(3)[0]  # linked communities share the first level
    assert first(0)[0] != first(2)[0]
    assert len({first(c) for c in range(4)}) == 4
    assert index.stats["levels"] == 3 and index.stats["leaves"] == 4 and index.stats["spectral_splits"] == 3


def test_no_identifier_is_a_prefix_of_another_with_uneven_depths():
    # a large community (split over several levels) next to small ones (leaves right below the root)
    items, sequences, _ = _community_data(sizes=(40, 5, 4, 3), links=((0, 1),), users_per=40)
    index = build_indexer("collaborative", num_clusters=3, max_cluster_size=5).fit(items, sequences)
    lengths = {len(_tokens(i)) for i in index.identifiers}
    assert len(lengths) > 1, "the test needs identifiers of different lengths to mean something"
    assert index.stats["identifier_lengths"] == {
        str(n): sum(len(_tokens(i)) == n for i in index.identifiers) for n in sorted(lengths)
    }
    _assert_prefix_free(index.identifiers)
    leaves = pd.Series([i.rsplit("<", 1)[0] for i in index.identifiers]).value_counts()
    assert leaves.max() <= 5 and index.stats["leaf_size_max"] == leaves.max()
    extended = index.add_items(pd.DataFrame({"item_id": [f"new{j}" for j in range(12)], "title": ""}))
    _assert_prefix_free(extended.identifiers)


def test_tokens_are_level_specific():
    items, sequences, _ = _community_data()
    index = build_indexer("collaborative", num_clusters=2, max_cluster_size=6, token_prefix="cid").fit(
        items, sequences
    )
    for ident in index.identifiers:
        levels = [int(re.fullmatch(r"<cid(\d+)_\d+>", t).group(1)) for t in _tokens(ident)]
        assert levels == list(range(1, len(levels) + 1))
    assert index.stats["num_tokens"] == len(index.new_tokens)


def test_isolated_and_unseen_items_are_balanced():
    items, sequences, _ = _community_data(sizes=(6, 6), links=((0, 1),))
    cold = pd.DataFrame({"item_id": [f"cold{j}" for j in range(30)], "title": ""})
    catalog = pd.concat([items, cold], ignore_index=True)
    sequences = sequences + [["cold0"]]  # a one-item sequence: seen but co-occurring with nothing
    index = build_indexer("collaborative", num_clusters=4, max_cluster_size=6).fit(catalog, sequences)
    assert index.stats["isolated_items"] == 30
    assert sorted(index.item_ids) == sorted(catalog["item_id"])
    leaves = pd.Series([i.rsplit("<", 1)[0] for i in index.identifiers]).value_counts()
    assert leaves.max() <= 6
    _assert_prefix_free(index.identifiers)


def test_graph_without_edges_falls_back_to_chunks():
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(50)], "title": ""})
    index = build_indexer("collaborative", num_clusters=4, max_cluster_size=5).fit(
        items, [[f"i{j}"] for j in range(50)]
    )
    assert index.stats["spectral_splits"] == 0 and index.stats["chunk_splits"] > 0
    assert index.stats["leaf_size_max"] <= 5 and len(set(index.identifiers)) == 50
    # contiguous chunks: catalog neighbours share their path
    assert _tokens(index.identifier("i0"))[:-1] == _tokens(index.identifier("i1"))[:-1]


def test_cold_start_uses_cooccurrence_then_smallest_leaf():
    items, sequences, communities = _community_data()
    index = build_indexer("collaborative", num_clusters=2, max_cluster_size=6).fit(items, sequences)
    leaf_of = lambda ident: ident.rsplit("<", 1)[0]  # noqa: E731
    target = leaf_of(index.identifier(communities[2][0]))

    new = pd.DataFrame({"item_id": ["fresh", "lonely"], "title": ""})
    with_seqs = index.add_items(new, train_sequences=[[communities[2][1], "fresh", communities[2][3]], ["lonely"]])
    fresh = with_seqs.identifier("fresh")
    assert leaf_of(fresh) == target
    assert fresh == target + f"<c3_{6}>"  # next in-leaf number of a 6-item leaf
    assert "<c3_6>" in with_seqs.new_tokens and "<c3_6>" not in index.new_tokens
    # no co-occurrence: the smallest leaf (after "fresh" joined its leaf), first in identifier order on ties
    sizes = pd.Series([leaf_of(i) for i in with_seqs.identifiers[:-1]]).value_counts()
    smallest = sorted(sizes[sizes == sizes.min()].index)[0]
    assert leaf_of(with_seqs.identifier("lonely")) == smallest

    # without sequences: new items are dealt to the smallest leaves in turn
    many = index.add_items(pd.DataFrame({"item_id": [f"n{j}" for j in range(8)], "title": ""}))
    counts = pd.Series([leaf_of(i) for i in many.identifiers]).value_counts()
    assert counts.max() - counts.min() == 0  # 4 leaves of 6 + 8 new items -> 8 each
    assert many.identifiers[: len(index)] == index.identifiers


def test_deterministic_for_a_seed():
    items, sequences, _ = _community_data(sizes=(10, 10, 10), links=((0, 1), (1, 2)))
    make = lambda seed: build_indexer("collaborative", num_clusters=3, max_cluster_size=4, seed=seed)  # noqa: E731
    assert make(0).fit(items, sequences).fingerprint == make(0).fit(items, sequences).fingerprint


def test_config_validation():
    for bad in (
        {"num_clusters": 1},
        {"max_cluster_size": 0},
        {"window": 0},
        {"regularization": -1.0},
        {"token_prefix": "<c"},
        {"max_levels": 0},
    ):
        with pytest.raises(ValueError):
            build_indexer("collaborative", **bad)
    with pytest.raises(ValueError, match="not in the catalog"):
        build_indexer("collaborative").fit(pd.DataFrame({"item_id": ["a"], "title": ""}), [["a", "b"]])


def test_large_cluster_uses_sparse_eigensolver():
    """A 600-item catalog goes through ARPACK (above the small-cluster dense limit) and still splits sensibly."""
    items, sequences, communities = _community_data(sizes=(150, 150, 150, 150), links=(), users_per=60, length=20)
    index = build_indexer("collaborative", num_clusters=4, max_cluster_size=200).fit(items, sequences)
    assert index.stats["spectral_splits"] == 1 and index.stats["arpack_not_converged"] == 0
    for members in communities:
        assert len({_tokens(index.identifier(i))[0] for i in members}) == 1
