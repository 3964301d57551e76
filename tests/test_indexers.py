"""Shared checks run on every registered indexer (the INDEXER_TEST_CASES matrix), plus small per-method checks
for the sequential, title and hybrid indexers (collaborative has its own file)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genrec.data import InteractionData, leave_one_out
from genrec.indexing import ItemIndex, build_indexer

SMALL_CID = {"num_clusters": 3, "max_cluster_size": 5}
# Content-based methods: small-data options; they read synthetic item vectors from an embeddings file.
CONTENT_CASES = {
    "semantic-rq": {"codebook_size": 4, "num_levels": 2, "quantizer": "rqkmeans"},
    "set": {"num_cf_clusters": 4, "cf_dim": 4, "num_semantic": 2, "semantic_codebook_size": 4, "semantic_dim": 8},
}

INDEXER_TEST_CASES = [
    ("random", {}),
    ("independent", {}),
    ("sequential", {}),
    ("sequential", {"start": 0}),
    ("title", {}),
    ("title", {"max_words": 2}),
    ("collaborative", SMALL_CID),
    ("collaborative", {}),  # paper defaults: the 30-item catalog is a single leaf
    ("hybrid", {"parts": ["collaborative", "independent"], "part_options": {"collaborative": SMALL_CID}}),
    ("hybrid", {"parts": ["sequential", "title"], "separator": " "}),
    *[(method, options) for method, options in CONTENT_CASES.items()],
    (
        "hybrid",
        {"parts": ["semantic-rq", "independent"], "part_options": {"semantic-rq": CONTENT_CASES["semantic-rq"]}},
    ),
]
TOKEN = re.compile(r"<[^<>]+>")


def _case_id(case) -> str:
    method, options = case
    return method + ("" if not options else "-" + "-".join(f"{k}={v}" for k, v in sorted(options.items())))[:60]


def _build(method: str, options: dict, data: InteractionData, tmp_path):
    """The indexer of a case; content-based methods (and hybrid parts) get synthetic embeddings."""
    if method == "hybrid":
        part_options = {
            part: _with_embeddings(part, opts, data, tmp_path)
            for part, opts in options.get("part_options", {}).items()
        }
        return build_indexer(method, **{**options, "part_options": part_options})
    return build_indexer(method, **_with_embeddings(method, options, data, tmp_path))


def _with_embeddings(method: str, options: dict, data: InteractionData, tmp_path) -> dict:
    """``options`` plus ``embeddings_file`` pointing at synthetic item vectors for content-based methods."""
    if method not in CONTENT_CASES:
        return options
    # keyed by item_id and covering the cold-start items too, so `add_items` finds their vectors
    ids = data.items["item_id"].tolist() + [f"new{i}" for i in range(1, 5)]
    frame = pd.DataFrame(_embeddings(len(ids)), columns=[f"e{j}" for j in range(32)]).assign(item_id=ids)
    path = tmp_path / "embeddings.parquet"
    frame.to_parquet(path, index=False)
    return {**options, "embeddings_file": str(path)}


def _embeddings(n: int, dim: int = 32) -> np.ndarray:
    """Synthetic content embeddings with genre structure (row i belongs to genre i % 5, like the tiny catalog)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, dim))
    return (centres[np.arange(n) % 5] + 0.1 * rng.normal(size=(n, dim))).astype(np.float32)


def _new_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["new1", "new2", "new3"],
            "title": ["Brand new film", "Movie 0 Action story", ""],
            "genre": ["Drama", "Action", "Comedy"],
        }
    )


@pytest.fixture(params=INDEXER_TEST_CASES, ids=[_case_id(c) for c in INDEXER_TEST_CASES])
def case(request, tiny_data, tiny_split, tmp_path):
    method, options = request.param
    indexer = _build(method, options, tiny_data, tmp_path)
    return method, indexer, indexer.fit(tiny_data.items, tiny_split.train)


class IndexerTesterMixin:
    """Shared checks: every registered indexer must pass all of them."""

    def test_every_item_indexed_uniquely(self, case, tiny_data):
        _, _, index = case
        catalog = tiny_data.items["item_id"].tolist()
        assert sorted(index.item_ids) == sorted(catalog)
        assert len(set(index.identifiers)) == len(catalog)
        assert all(isinstance(x, str) and x for x in index.identifiers)
        for item in catalog:  # decode(encode(i)) == i
            assert index.item_id(index.identifier(item)) == item
        assert index.item_id("<no such identifier>") is None

    def test_deterministic_for_a_seed(self, case, tiny_data, tiny_split, tmp_path):
        method, _, index = case
        again = _build(method, dict(index.options), tiny_data, tmp_path).fit(tiny_data.items, tiny_split.train)
        assert again.fingerprint == index.fingerprint
        assert again.new_tokens == index.new_tokens

    def test_save_load_round_trip(self, case, tmp_path):
        _, _, index = case
        loaded = ItemIndex.load(index.save(tmp_path / "index.json"))
        assert loaded.fingerprint == index.fingerprint
        assert loaded.identifiers == index.identifiers and loaded.new_tokens == index.new_tokens
        assert loaded.options == index.options and loaded.state == index.state

    def test_new_tokens_are_the_tokens_in_identifiers(self, case):
        method, _, index = case
        used = {t for ident in index.identifiers for t in TOKEN.findall(ident)}
        assert set(index.new_tokens) == used
        assert len(index.new_tokens) == len(set(index.new_tokens))
        if method in ("random", "sequential", "title"):
            assert index.new_tokens == []

    def test_cold_start_keeps_old_identifiers(self, case, tmp_path):
        method, _, index = case
        new = _new_items()
        extended = index.add_items(new)
        assert extended.identifiers[: len(index)] == index.identifiers
        assert extended.item_ids[len(index) :] == new["item_id"].tolist()
        assert len(set(extended.identifiers)) == len(extended)
        used = {t for ident in extended.identifiers for t in TOKEN.findall(ident)}
        assert set(extended.new_tokens) == used
        assert set(index.new_tokens) <= set(extended.new_tokens)
        # the extended index survives a round trip and can be extended again
        reloaded = ItemIndex.load(extended.save(tmp_path / "extended.json"))
        again = reloaded.add_items(pd.DataFrame({"item_id": ["new4"], "title": ["Another one"], "genre": ["Drama"]}))
        assert again.identifiers[: len(extended)] == extended.identifiers and len(set(again.identifiers)) == len(again)

    def test_fitted_on_training_data_only(self, case, tiny_data, tiny_split, tmp_path):
        """Changing every user's validation and test items leaves the index unchanged."""
        method, _, index = case
        inter = tiny_data.interactions.copy()
        last_two = inter.groupby("user_id").cumcount(ascending=False) < 2
        catalog = tiny_data.items["item_id"].to_numpy()
        rng = np.random.default_rng(1)
        inter.loc[last_two, "item_id"] = catalog[rng.integers(len(catalog), size=int(last_two.sum()))]
        changed = InteractionData(inter, tiny_data.items, name="changed")
        split = leave_one_out(changed)
        assert split.train == tiny_split.train and split.test_items != tiny_split.test_items
        again = _build(method, dict(index.options), changed, tmp_path).fit(changed.items, split.train)
        assert again.fingerprint == index.fingerprint


class TestIndexers(IndexerTesterMixin):
    pass


# ---------------------------------------------------------------------------------------------- sequential
def test_sequential_numbers_follow_first_appearance():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"], "title": ""})
    index = build_indexer("sequential", start=1001).fit(items, [["c", "a", "c"], ["b", "a", "d"]])
    assert [index.identifier(i) for i in ["c", "a", "b", "d", "e"]] == ["1001", "1002", "1003", "1004", "1005"]
    assert index.stats == {"items_seen_in_training": 4, "items_unseen": 1}
    extended = index.add_items(pd.DataFrame({"item_id": ["z"], "title": ""}))
    assert extended.identifier("z") == "1006"


def test_sequential_rejects_unknown_items():
    items = pd.DataFrame({"item_id": ["a"], "title": ""})
    with pytest.raises(ValueError, match="not in the catalog"):
        build_indexer("sequential").fit(items, [["a", "zzz"]])
    with pytest.raises(ValueError, match="start"):
        build_indexer("sequential", start=-1)


# ---------------------------------------------------------------------------------------------- title
def test_title_normalises_truncates_and_dedups():
    items = pd.DataFrame(
        {
            "item_id": ["1", "2", "3", "4", "5", "6"],
            "title": ["  The   Movie\tTitle ", "The Movie Title", "The Movie Title (2)", "", "   ", "The Movie Title"],
        }
    )
    index = build_indexer("title", max_words=3).fit(items, [])
    assert index.identifiers == [
        "The Movie Title",
        "The Movie Title (2)",
        "The Movie Title (3)",  # its own truncated title "The Movie Title" is taken; "(2)" is taken too
        "item 4",
        "item 5",
        "The Movie Title (4)",
    ]
    assert index.stats["suffixed_titles"] == 3
    extended = index.add_items(pd.DataFrame({"item_id": ["7"], "title": ["The Movie Title and more"]}))
    assert extended.identifier("7") == "The Movie Title (5)"
    with pytest.raises(ValueError, match="max_words"):
        build_indexer("title", max_words=0)


# ---------------------------------------------------------------------------------------------- hybrid
def test_hybrid_concatenates_parts(tiny_data, tiny_split):
    options = {"collaborative": SMALL_CID}
    hybrid = build_indexer("hybrid", parts=["collaborative", "independent"], part_options=options)
    index = hybrid.fit(tiny_data.items, tiny_split.train)
    cid = build_indexer("collaborative", **SMALL_CID).fit(tiny_data.items, tiny_split.train)
    iid = build_indexer("independent").fit(tiny_data.items, tiny_split.train)
    for item in tiny_data.items["item_id"]:
        assert index.identifier(item) == cid.identifier(item) + iid.identifier(item)
    assert set(index.new_tokens) == set(cid.new_tokens) | set(iid.new_tokens)
    assert index.stats["collaborative"]["levels"] == cid.stats["levels"]
    # cold start extends every part the way the part itself would
    new = _new_items()
    extended = index.add_items(new)
    cid_new, iid_new = cid.add_items(new), iid.add_items(new)
    for item in new["item_id"]:
        assert extended.identifier(item) == cid_new.identifier(item) + iid_new.identifier(item)


def test_hybrid_validates_parts():
    with pytest.raises(ValueError, match="at least 2 parts"):
        build_indexer("hybrid", parts=["independent"])
    with pytest.raises(ValueError, match="not among the parts"):
        build_indexer("hybrid", parts=["sequential", "independent"], part_options={"title": {}})
    with pytest.raises(ValueError, match="unknown indexing method"):
        build_indexer("hybrid", parts=["sequential", "nope"]).fit(pd.DataFrame({"item_id": ["a"], "title": ""}), [])


def test_scratch_tokenizer_writes_sequential_ids_as_shared_multi_digit_pieces():
    """P5 sequential indexing relies on neighbouring numbers sharing sub-word pieces, as in pretrained T5's tokenizer;
    splitting every digit would make each ID one token per digit."""
    from genrec.models import train_sentencepiece_tokenizer

    numbers = [str(n) for n in range(1001, 1400)]
    tokenizer = train_sentencepiece_tokenizer(numbers + ["a film title", "another title"], 300)
    pieces = [tokenizer.tokenize(n) for n in numbers]
    assert max(len(p) for p in pieces) < 5  # "▁" + 4 digits would be 5
    assert any(len(p[0].lstrip("▁")) >= 2 for p in pieces)  # multi-digit leading pieces exist
    leading = {p[0] for p in pieces}
    assert len(leading) < len(numbers) // 2  # neighbours share their first piece
