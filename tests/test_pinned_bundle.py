"""A tiny T5 bundle saved by genrec before the package was reorganised (recommender.py/setrec.py/training.py →
bundle.py, recommenders/, training/): it must still load, and recommend exactly what it recommended then."""

import json
from pathlib import Path

import pytest

from genrec.recommenders import GenerativeRecommender, TrieRecommender

PINNED = Path(__file__).parent / "fixtures" / "pinned_t5"


def test_old_bundle_gives_the_pinned_recommendations():
    expected = json.loads((PINNED / "expected.json").read_text())
    rec = GenerativeRecommender.from_pretrained(PINNED / "bundle")
    assert isinstance(rec, TrieRecommender)
    recs = rec.recommend_scored(expected["histories"], k=5)
    assert [[r.item_id for r in rs] for rs in recs] == expected["items"]
    for got, want in zip(recs, expected["scores"]):
        assert [r.score for r in got] == pytest.approx(want, abs=1e-4)
