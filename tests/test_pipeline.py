"""The "next-item-recommendation" pipeline on tiny T5, causal and LoRA-adapter bundles."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from _bundles import cached_bundle
from transformers import pipeline

import genrec  # noqa: F401  (registers the task)
from genrec import GenerativeRecommender
from genrec.indexing.base import ItemIndex, ItemIndexError
from genrec.pipeline import TASK, NextItemRecommendationPipeline

KINDS = ["t5", "t5-last-item", "causal-lora", "causal-full", "sequence"]
HISTORIES = [["i1", "i2", "i3"], ["i5"], ["i7", "i8", "i9", "i10", "i11"], ["i20", "i21"], ["i3"]]
KEYS = {"item_id", "title", "score", "identifier"}


@pytest.fixture(scope="module", params=KINDS)
def bundle(request, tmp_path_factory):
    return cached_bundle(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def t5_bundle(tmp_path_factory):
    return cached_bundle("t5", tmp_path_factory)


@pytest.fixture(scope="module")
def t5_pipe(t5_bundle):
    return pipeline(TASK, model=str(t5_bundle), device="cpu")


@pytest.fixture(scope="module")
def t5_rec(t5_bundle):
    return GenerativeRecommender.from_pretrained(t5_bundle)


def _ids(output):
    return [[d["item_id"] for d in items] for items in output]


def _assert_same_ranking(a, b):
    """Same items in the same order; scores equal up to float noise (batch padding changes the arithmetic)."""
    assert _ids(a) == _ids(b)
    for x, y in zip(a, b):
        assert [d["score"] for d in x] == pytest.approx([d["score"] for d in y], abs=1e-4)


def test_pipeline_loads_every_bundle_kind_and_matches_recommend_scored(bundle):
    pipe = pipeline(TASK, model=str(bundle), device="cpu")
    assert isinstance(pipe, NextItemRecommendationPipeline)
    output = pipe(HISTORIES, top_k=4, num_beams=6, batch_size=2)
    reference = GenerativeRecommender.from_pretrained(bundle).recommend_scored(
        HISTORIES, k=4, num_beams=6, batch_size=2
    )
    assert len(output) == len(HISTORIES)
    for items, recs in zip(output, reference):
        assert len(items) == 4 and all(set(d) == KEYS for d in items)
        assert items == [
            {"item_id": r.item_id, "title": r.title, "score": r.score, "identifier": r.identifier} for r in recs
        ]
        scores = [d["score"] for d in items]
        assert scores == sorted(scores, reverse=True)
        assert all(d["title"].startswith("Movie ") for d in items)


def test_single_history_dict_and_list_inputs(t5_pipe):
    single = t5_pipe(["i1", "i2", "i3"], top_k=3)
    assert isinstance(single, list) and len(single) == 3 and set(single[0]) == KEYS
    with_user = t5_pipe({"user_id": "u7", "history": ["i1", "i2", "i3"]}, top_k=3)
    assert with_user == {"user_id": "u7", "items": single}
    assert t5_pipe({"history": ["i1", "i2", "i3"]}, top_k=3) == {"items": single}
    mixed = t5_pipe([{"user_id": 1, "history": ["i5"]}, ["i1", "i2", "i3"]], top_k=3)
    assert mixed[0]["user_id"] == 1 and mixed[1] == single


def test_batching_does_not_change_the_ranking(t5_pipe):
    _assert_same_ranking(t5_pipe(HISTORIES, top_k=5, batch_size=1), t5_pipe(HISTORIES, top_k=5, batch_size=3))


def test_parameters_at_construction_apply_to_calls(t5_bundle, t5_pipe):
    pipe = pipeline(TASK, model=str(t5_bundle), device="cpu", top_k=2, batch_size=4)
    assert [len(items) for items in pipe(HISTORIES)] == [2] * len(HISTORIES)
    _assert_same_ranking(pipe(HISTORIES), t5_pipe(HISTORIES, top_k=2, batch_size=4))


def test_exclude_seen(t5_pipe, t5_rec):
    history = ["i8", "i9", "i10", "i16", "i4"]
    output = t5_pipe(history, top_k=5, num_beams=20, exclude_seen=True)
    assert output and not {d["item_id"] for d in output} & set(history)
    reference = t5_rec.recommend_scored([history], k=5, num_beams=20, exclude_seen=True)[0]
    assert [d["item_id"] for d in output] == [r.item_id for r in reference]


def test_unknown_items_dropped_and_counted_or_rejected(t5_pipe, caplog):
    clean = t5_pipe(["i1", "i2"], top_k=3)
    before = t5_pipe.unknown_dropped
    with caplog.at_level(logging.WARNING, logger="genrec.pipeline"):
        noisy = t5_pipe([["nope", "i1", "zz", "i2"]], top_k=3)[0]
    assert noisy == clean
    assert t5_pipe.unknown_dropped - before == 2
    assert "dropped 2 history item(s)" in caplog.text
    with pytest.raises(KeyError, match="not in the index"):
        t5_pipe(["nope", "i1"], unknown="error")


@pytest.mark.parametrize("history", [[], ["unknown-only"], {"user_id": "u1", "history": []}])
def test_empty_history_raises(t5_pipe, history):
    with pytest.raises(ValueError, match="empty history"):
        t5_pipe(history)


def test_too_long_history_keeps_the_most_recent_items(t5_pipe, t5_rec):
    max_history = t5_rec.config.max_history
    long = [f"i{i % 30}" for i in range(max_history + 13)]
    assert t5_pipe(long, top_k=5) == t5_pipe(long[-max_history:], top_k=5)


def test_fingerprint_mismatch_fails_loudly(t5_bundle, t5_rec, tmp_path):
    index = t5_rec.index
    shuffled = dataclasses.replace(index, identifiers=list(reversed(index.identifiers)))  # same tokens, other mapping
    path = shuffled.save(tmp_path / "other_index.json")
    with pytest.raises(ItemIndexError, match="trained on item index"):
        pipeline(TASK, model=str(t5_bundle), device="cpu", index=str(path))
    with pytest.raises(ItemIndexError, match="trained on item index"):
        NextItemRecommendationPipeline(model=t5_rec, index=ItemIndex.load(path), device="cpu")


def test_recommender_object_and_bundle_path_constructors(t5_bundle, t5_rec, t5_pipe):
    direct = NextItemRecommendationPipeline(model=str(t5_bundle), device="cpu")
    from_object = pipeline(TASK, model=t5_rec, device="cpu")
    assert direct(HISTORIES, top_k=3) == from_object(HISTORIES, top_k=3) == t5_pipe(HISTORIES, top_k=3)


def test_plain_model_directory_is_rejected(tmp_path_factory):
    base = cached_bundle("causal-lora", tmp_path_factory).parent.parent / "llama-base"
    with pytest.raises(TypeError, match="genrec bundle"):
        pipeline(TASK, model=str(base), device="cpu")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"top_k": 0}, ValueError),
        ({"num_beams": -1}, ValueError),
        ({"unknown": "ignore"}, ValueError),
        ({"empty_history": "popular"}, TypeError),
    ],
)
def test_bad_parameters(t5_pipe, kwargs, error):
    with pytest.raises(error):
        t5_pipe(["i1"], **kwargs)


def test_bad_inputs(t5_pipe):
    with pytest.raises(ValueError, match="'history'"):
        t5_pipe({"user_id": "u1"})
    with pytest.raises(TypeError, match="history"):
        t5_pipe([["i1"], 3.5])


def test_save_pretrained_writes_a_loadable_bundle(t5_pipe, tmp_path):
    t5_pipe.save_pretrained(tmp_path / "copy")
    again = pipeline(TASK, model=str(tmp_path / "copy"), device="cpu")
    assert again(HISTORIES, top_k=3) == t5_pipe(HISTORIES, top_k=3)
