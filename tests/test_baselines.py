"""Popularity and SASRec baselines on the tiny synthetic catalog (items mostly follow i → i+1)."""

from __future__ import annotations

import pytest
import torch

from genrec.baselines import (
    PopularityRecommender,
    SASRec,
    SASRecConfig,
    SASRecRecommender,
    fit_baseline,
)
from genrec.baselines.sasrec import _TrainingExamples
from genrec.evaluation import evaluate

# Small and fast: the defaults (RecBole's) are for real data, not 40 users × 30 items.
TINY = dict(
    hidden_size=32,
    num_heads=1,
    inner_size=64,
    hidden_dropout=0.1,
    attn_dropout=0.1,
    learning_rate=1e-2,
    batch_size=32,
    max_epochs=25,
    patience=25,
    show_progress=False,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: on a shared 2-core machine OpenMP threads mostly spin-wait (40x slower), so use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ popularity
def test_popularity_orders_by_training_count(tiny_split):
    pop = PopularityRecommender().fit(tiny_split)
    counts = tiny_split.train_item_counts()
    ranked = pop.recommend([["i0"]], k=len(tiny_split.catalog))[0]
    assert sorted(ranked) == sorted(tiny_split.catalog)
    values = [counts.get(item, 0) for item in ranked]
    assert values == sorted(values, reverse=True)
    # Only training interactions count: validation/test items do not change the ranking.
    assert pop.counts == {item: counts.get(item, 0) for item in tiny_split.catalog}


def test_popularity_same_list_for_everyone_and_exclude_seen(tiny_split):
    pop = fit_baseline("pop", tiny_split)
    top = pop.recommend([[], ["i1"]], k=5)
    assert top[0] == top[1] and len(top[0]) == 5
    history = top[0][:3]
    filtered = pop.recommend([history], k=5, exclude_seen=True)[0]
    assert len(filtered) == 5 and not set(filtered) & set(history)
    assert filtered[:2] == top[0][3:5]  # the next most popular items move up


def test_popularity_errors(tiny_split):
    with pytest.raises(ValueError, match="not fitted"):
        PopularityRecommender().recommend([["i1"]], k=3)
    assert fit_baseline("pop", tiny_split, seed=3).ranking == PopularityRecommender().fit(tiny_split).ranking
    with pytest.raises(ValueError, match="no options"):
        fit_baseline("pop", tiny_split, max_epochs=1)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("bpr", tiny_split)


# ------------------------------------------------------------------------------------------------ SASRec
def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="training_mode"):
        SASRecConfig(training_mode="bert")
    with pytest.raises(ValueError, match="valid_metric"):
        SASRecConfig(valid_metric="mrr@10")
    with pytest.raises(ValueError, match="unknown SASRec option"):
        SASRecConfig.from_dict({"hidden": 64})


def test_training_examples_match_every_prefix(tiny_split):
    """prefix mode = RecBole's augmentation: one example per (history → next item), history ≤ max_len."""
    sequences = [torch.arange(1, 8).numpy(), torch.arange(10, 13).numpy()]
    examples = _TrainingExamples(sequences, max_len=4, mode="prefix")
    assert len(examples) == 6 + 2
    inputs, targets = examples.batch(torch.arange(len(examples)).numpy())
    assert inputs[5].tolist() == [3, 4, 5, 6] and targets[5].item() == 7 - 1  # last 4 items, class = index - 1
    assert inputs[0].tolist() == [1, 0, 0, 0] and targets[0].item() == 2 - 1  # right padding
    # seq2seq: windows aligned to the end cover every (input, next) pair exactly once.
    windows = _TrainingExamples(sequences, max_len=4, mode="seq2seq")
    inputs, targets = windows.batch(torch.arange(len(windows)).numpy())
    assert sorted(t for t in targets.flatten().tolist() if t >= 0) == sorted([i - 1 for i in range(2, 8)] + [10, 11])
    assert inputs[0].tolist() == [3, 4, 5, 6] and targets[0].tolist() == [3, 4, 5, 6]


def test_overlapping_windows_train_each_pair_once_with_the_most_history():
    """window_stride: every (history → next) pair trained exactly once, with ≥ max_len - stride items before it."""
    sequence = torch.arange(1, 31).numpy()  # 29 (input, next) pairs
    windows = _TrainingExamples([sequence], max_len=8, mode="seq2seq", stride=3)
    inputs, targets = windows.batch(torch.arange(len(windows)).numpy())
    trained = [(row, col) for row in range(len(windows)) for col in range(inputs.shape[1]) if targets[row, col] >= 0]
    assert sorted(targets[r, c].item() + 1 for r, c in trained) == list(range(2, 31))  # each target once
    for row, col in trained:
        target = targets[row, col].item() + 1  # class index → item index
        assert inputs[row, col].item() == target - 1  # the input at col is the item just before its target
        assert min(target - 1, 8 - 3) <= col + 1 <= min(target - 1, 8)  # items before it in the window
    assert len(windows) == len(range(29, 8, -3)) + 1  # windows ending every 3 pairs, then one at the start
    with pytest.raises(ValueError, match="window_stride"):
        SASRecConfig(window_stride=51)


def test_causal_mask(tiny_split):
    """The hidden state at position t must not change when items after t change."""
    torch.manual_seed(0)
    model = SASRec(num_items=30, config=SASRecConfig(**TINY)).eval()
    seq = torch.tensor([[3, 4, 5, 6, 7, 8]])
    changed = seq.clone()
    changed[0, 4:] = torch.tensor([20, 21])
    with torch.no_grad():
        a, b = model(seq), model(changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("mode", ["prefix", "seq2seq"])
def test_sasrec_learns_and_beats_popularity(tiny_split, mode):
    model = SASRecRecommender().fit(tiny_split, SASRecConfig(**{**TINY, "training_mode": mode}))
    losses = [h["loss"] for h in model.history]
    assert losses[-1] < 0.6 * losses[0]
    sasrec_ndcg = evaluate(model, tiny_split, "valid", progress=False)["ndcg@10"]
    pop_ndcg = evaluate(PopularityRecommender().fit(tiny_split), tiny_split, "valid", progress=False)["ndcg@10"]
    assert sasrec_ndcg > pop_ndcg + 0.2
    # The i → i+1 structure: after i3, i4 should be the top recommendation.
    assert model.recommend([["i1", "i2", "i3"]], k=1)[0] == ["i4"]


def test_early_stopping_restores_best_epoch(tiny_split):
    config = SASRecConfig(**{**TINY, "max_epochs": 40, "patience": 3, "learning_rate": 5e-2})
    model = SASRecRecommender().fit(tiny_split, config)
    values = [h["ndcg@10"] for h in model.history]
    best = max(range(len(values)), key=lambda e: (values[e], -e))  # first epoch reaching the maximum
    assert model.best_epoch == best
    assert len(values) == min(config.max_epochs, best + config.patience + 1)
    # The restored weights are the best epoch's: re-evaluating gives its validation metric, not the last one.
    assert evaluate(model, tiny_split, "valid", ks=(10,), progress=False)["ndcg@10"] == pytest.approx(values[best])


def test_deterministic_for_a_seed(tiny_split):
    config = SASRecConfig(**{**TINY, "max_epochs": 3})
    a = SASRecRecommender().fit(tiny_split, config)
    b = SASRecRecommender().fit(tiny_split, config)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    histories = tiny_split.histories("test")
    assert a.recommend(histories, k=10) == b.recommend(histories, k=10)


def test_save_load_round_trip(tiny_split, tmp_path):
    model = fit_baseline("sasrec", tiny_split, **{**TINY, "max_epochs": 3})
    model.save(tmp_path / "sasrec")
    loaded = SASRecRecommender.load(tmp_path / "sasrec")
    histories = tiny_split.histories("test")
    assert loaded.recommend(histories, k=10) == model.recommend(histories, k=10)
    assert loaded.recommend(histories, k=10, exclude_seen=True) == model.recommend(histories, k=10, exclude_seen=True)
    assert loaded.config == model.config and loaded.best_epoch == model.best_epoch
    with pytest.raises(FileNotFoundError):
        SASRecRecommender.load(tmp_path / "missing")


def test_recommend_exclude_seen_and_bad_input(tiny_split):
    model = fit_baseline("sasrec", tiny_split, **{**TINY, "max_epochs": 2})
    history = ["i1", "i2", "i3"]
    ranked = model.recommend([history], k=10, exclude_seen=True)[0]
    assert len(ranked) == 10 and not set(ranked) & set(history)
    assert len(model.recommend([history], k=100)[0]) == len(tiny_split.catalog)  # k capped at the catalog size
    with pytest.raises(ValueError, match="no item known"):
        model.recommend([["unknown"]], k=5)
    with pytest.raises(ValueError, match="positive"):
        model.recommend([history], k=0)
