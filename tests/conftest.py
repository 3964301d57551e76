"""Shared fixtures: a tiny synthetic catalog with structure a model can learn, built in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrec.data import InteractionData, leave_one_out
from genrec.testing import save_tiny_causal_backbone

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def make_synthetic_data(num_users: int = 40, num_items: int = 30, length: int = 8, seed: int = 0) -> InteractionData:
    """Users walk through items mostly in catalog order (item i → i+1), so next-item structure is learnable."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        start = int(rng.integers(num_items))
        for t in range(length):
            step = 1 if rng.random() < 0.8 else int(rng.integers(2, 5))
            start = (start + step) % num_items
            rows.append((f"u{u}", f"i{start}", 1000 * u + t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(num_items)],
            "title": [f"Movie {i} {GENRES[i % len(GENRES)]} story" for i in range(num_items)],
            "genre": [GENRES[i % len(GENRES)] for i in range(num_items)],
        }
    )
    return InteractionData(interactions, items, name="synthetic")


@pytest.fixture
def tiny_data() -> InteractionData:
    return make_synthetic_data()


@pytest.fixture
def tiny_split(tiny_data):
    return leave_one_out(tiny_data)


@pytest.fixture(scope="session")
def tiny_causal_backbone(tmp_path_factory):
    return save_tiny_causal_backbone(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(autouse=True, scope="session")
def _genrec_cache(tmp_path_factory):
    """Tests never write genrec's on-disk cache in the user's home directory."""
    import os

    old = os.environ.get("GENREC_CACHE")
    os.environ["GENREC_CACHE"] = str(tmp_path_factory.mktemp("genrec-cache"))
    yield
    if old is None:
        os.environ.pop("GENREC_CACHE", None)
    else:
        os.environ["GENREC_CACHE"] = old
