"""Training recipes on tiny models: loss goes down, bundles reload exactly, the wrong index is refused."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from genrec.data import leave_one_out
from genrec.indexing import ItemIndex, ItemIndexError, build_indexer
from genrec.recommenders import GenerativeRecommender
from genrec.testing import TINY_T5
from genrec.tokens import check_tokenizer_covers
from genrec.training import recipe_from_dict, run_recipe

HISTORIES = [["i1", "i2", "i3"], ["i7"], ["i10", "i11", "i12", "i13"]]


def _losses(run_dir) -> list[float]:
    import json

    state = sorted(run_dir.glob("checkpoint-*/trainer_state.json"))[-1]
    return [entry["loss"] for entry in json.loads(state.read_text())["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from conftest import make_synthetic_data

    path = tmp_path_factory.mktemp("data")
    make_synthetic_data().save(path)
    return path


@pytest.fixture(scope="module")
def t5_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("t5")
    cfg = recipe_from_dict(
        dict(
            data=str(data_dir),
            output_dir=str(out),
            index_method="semantic-rq",
            index_options={"quantizer": "rqkmeans", "num_levels": 2, "codebook_size": 4, "embeddings_file": None},
            template_style="tiger",
            tasks="seqrec,item2index",
            inference_history_choices="20,2",
            num_train_epochs=4,
            per_device_train_batch_size=16,
            learning_rate=1e-2,
            logging_steps=2,
            eval_max_users=10,
            eval_num_beams=5,
            test_max_users=10,
            **TINY_T5,
        )
    )
    recommender, metrics = run_recipe(cfg)
    return out, recommender, metrics


@pytest.fixture(scope="module")
def llama_run(data_dir, tiny_causal_backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("llama")
    cfg = recipe_from_dict(
        dict(
            data=str(data_dir),
            output_dir=str(out),
            backbone=tiny_causal_backbone,
            index_method="independent",
            template_style="lcrec",
            tasks="seqrec,index2item",
            num_train_epochs=3,
            per_device_train_batch_size=16,
            learning_rate=1e-2,
            logging_steps=2,
            eval_max_users=10,
            eval_num_beams=5,
            test_max_users=10,
        )
    )
    recommender, metrics = run_recipe(cfg)
    return out, recommender, metrics


@pytest.mark.parametrize("run", ["t5_run", "llama_run"])
def test_loss_decreases_and_metrics_are_reported(run, request):
    out, _, metrics = request.getfixturevalue(run)
    losses = _losses(out)
    assert len(losses) >= 4
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
    assert metrics["invalid_rate"] == 0.0
    assert metrics["num_users"] == 10
    assert {"recall@10", "ndcg@10", "train_seconds", "best_valid_ndcg10"} <= set(metrics)


@pytest.mark.parametrize("run", ["t5_run", "llama_run"])
def test_bundle_reloads_with_identical_recommendations(run, request):
    out, recommender, _ = request.getfixturevalue(run)
    reloaded = GenerativeRecommender.from_pretrained(out / "bundle")
    before = recommender.recommend_scored(HISTORIES, k=5, num_beams=5)
    after = reloaded.recommend_scored(HISTORIES, k=5, num_beams=5)
    assert [[r.item_id for r in recs] for recs in before] == [[r.item_id for r in recs] for recs in after]
    for b, a in zip(before, after):
        assert [r.score for r in b] == pytest.approx([r.score for r in a], abs=1e-4)
    assert all(item in reloaded.index for recs in after for item in (r.item_id for r in recs))
    assert "Measured results" in (out / "bundle" / "README.md").read_text()


def test_lora_bundle_saves_adapter_and_trained_token_rows(llama_run, tiny_causal_backbone):
    out, recommender, _ = llama_run
    tensors = load_file(out / "bundle" / "adapter" / "adapter_model.safetensors")
    assert any("lora_A" in name for name in tensors)
    token_rows = {name: t for name, t in tensors.items() if "trainable_tokens" in name}
    assert token_rows, "identifier-token embeddings must be saved with the adapter"
    assert all(t.shape[0] == len(recommender.index.new_tokens) for t in token_rows.values())
    # The saved rows were trained: they differ from what a fresh resize of the base model gives.
    from genrec.models import load_backbone
    from genrec.tokens import add_item_tokens

    base, tokenizer, _ = load_backbone(tiny_causal_backbone)
    ids = add_item_tokens(tokenizer, recommender.index, base)
    fresh = base.get_input_embeddings().weight[ids]
    saved = next(t for name, t in token_rows.items() if "embed_tokens" in name)
    assert not torch.allclose(fresh, saved)


def test_loading_with_a_different_index_fails(t5_run, tiny_data):
    out, _, _ = t5_run
    other = build_indexer("independent").fit(tiny_data.items, leave_one_out(tiny_data).train)
    with pytest.raises(ItemIndexError, match="trained on item index"):
        GenerativeRecommender.from_pretrained(out / "bundle", index=other)


def test_tokenizer_without_index_tokens_is_refused(t5_run, tiny_data):
    out, recommender, _ = t5_run
    other = ItemIndex("independent", ["a"], ["<never_added>"], new_tokens=["<never_added>"])
    with pytest.raises(ItemIndexError, match="lacks 1"):
        check_tokenizer_covers(recommender.tokenizer, other)


def test_bad_histories(t5_run):
    _, recommender, _ = t5_run
    with pytest.raises(ValueError, match="empty"):
        recommender.recommend([[]], k=3)
    with pytest.raises(KeyError, match="not in the index"):
        recommender.recommend([["i1", "nope"]], k=3, unknown="error")
    dropped = recommender.recommend([["i1", "nope"]], k=3, num_beams=5)
    assert dropped == recommender.recommend([["i1"]], k=3, num_beams=5)
    seen = recommender.recommend([["i1", "i2"]], k=5, num_beams=10, exclude_seen=True)[0]
    assert "i1" not in seen and "i2" not in seen


def test_exclude_seen_forbids_the_whole_history_in_the_trie(t5_run):
    """Beam search never spends a beam on a seen item, so k items come back even when the history (longer than the
    prompt's max_history) covers the items the model likes most."""
    _, recommender, _ = t5_run
    favourites = recommender.recommend([["i1"]], k=10, num_beams=10)[0]
    others = [i for i in recommender.index.item_ids if i not in favourites]
    history = favourites + others[:-5]  # 5 items left; the favourites are older than what the prompt keeps
    assert len(history) > recommender.config.max_history
    recs = recommender.recommend([history], k=5, num_beams=5, exclude_seen=True)[0]
    assert sorted(recs) == sorted(others[-5:])
    assert recommender.recommend([recommender.index.item_ids], k=5, exclude_seen=True) == [[]]  # nothing left


def test_inference_history_is_chosen_on_validation_and_saved(t5_run, data_dir):
    from genrec.data import InteractionData
    from genrec.evaluation import evaluate

    out, recommender, metrics = t5_run
    scores = metrics["valid_ndcg10_by_history"]
    assert set(scores) == {"2", "20"}
    best = metrics["inference_max_history"]
    assert scores[str(best)] == max(scores.values())
    reloaded = GenerativeRecommender.from_pretrained(out / "bundle")
    assert reloaded.config.max_history == recommender.config.max_history == best
    split = leave_one_out(InteractionData.load(data_dir))
    assert evaluate(reloaded, split, "valid", max_users=10, num_beams=5)["ndcg@10"] == pytest.approx(scores[str(best)])
    assert "ranked best on validation" in (out / "bundle" / "README.md").read_text()


def test_inference_history_choices_must_fit_max_history():
    with pytest.raises(ValueError, match="inference_history_choices"):
        recipe_from_dict(dict(data="x", max_history=10, inference_history_choices=[5, 20]))


def test_recipe_rejects_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        recipe_from_dict(dict(data="x", tasks="seqrec,nonsense"))


@pytest.mark.parametrize("method", ["independent", "sequential"])
def test_scratch_backbones_start_item_rows_from_cooccurrence_but_have_no_title_embeddings(data_dir, method):
    """Every identifier token of a scratch model starts at its items' centroid: new tokens, and the sub-word pieces
    of P5's sequential numbers (written as text); the other rows stay as they were."""
    from genrec.tokens import identifier_token_ids
    from genrec.training.recipe import build_backbone, prepare_recipe

    fields = dict(data=str(data_dir), index_method=method, backbone="t5-scratch")
    recipe = recipe_from_dict({**fields, "item_token_init": "cooccurrence"})
    prepared = prepare_recipe(recipe)
    torch.manual_seed(0)
    plain = build_backbone(recipe_from_dict(fields).config, prepared).model.get_input_embeddings().weight
    torch.manual_seed(0)
    started = build_backbone(recipe.config, prepared)
    embeddings = started.model.get_input_embeddings().weight
    ids = sorted({t for item in identifier_token_ids(started.tokenizer, prepared.index) for t in item})
    others = [t for t in range(len(embeddings)) if t not in set(ids)]
    assert not torch.isclose(embeddings[ids], plain[ids]).all(dim=1).any()
    assert torch.equal(embeddings[others], plain[others])
    with pytest.raises(ValueError, match="scratch backbone has none"):
        recipe_from_dict(dict(data="x", backbone="t5-scratch", item_token_init="title+cooccurrence"))


def test_max_targets_per_user_selects_each_users_last_examples(data_dir):
    from genrec.training.recipe import prepare_recipe

    recipe = recipe_from_dict(dict(data=str(data_dir), index_method="independent", max_targets_per_user=2))
    prepared = prepare_recipe(recipe)
    pairs = prepared.prompter.examples("seqrec", prepared.split)
    assert len(pairs) == sum(min(2, len(seq) - 1) for seq in prepared.split.train)
    with pytest.raises(ValueError, match="max_targets_per_user"):
        recipe_from_dict(dict(data="x", mode="sequence", max_targets_per_user=2))


def test_history_crop_cuts_histories_to_recent_suffixes(data_dir):
    from genrec.training.recipe import prepare_recipe

    def examples(**fields):
        recipe = recipe_from_dict(
            dict(data=str(data_dir), index_method="independent", template_style="tiger", max_history=5, **fields)
        )
        prepared = prepare_recipe(recipe)
        return prepared.prompter.examples("seqrec", prepared.split)

    full = examples()
    cropped = examples(history_crop=1.0, seed=3)
    assert cropped == examples(history_crop=1.0, seed=3)  # fixed per seed
    assert cropped != examples(history_crop=1.0, seed=4)
    assert len(cropped) == len(full)
    lengths = []
    for (prompt, target, last), (full_prompt, full_target, full_last) in zip(cropped, full):
        assert target == full_target and last == full_last  # a cut history keeps its newest item
        kept, whole = prompt.split(", "), full_prompt.split(", ")
        assert 1 <= len(kept) <= len(whole) and whole[-len(kept) :] == kept  # the newest items, in order
        lengths.append(len(kept))
    assert min(lengths) == 1 and any(n < m for n, m in zip(lengths, (len(p.split(", ")) for p, _, _ in full)))
    half = examples(history_crop=0.5)
    assert 0 < sum(a != b for a, b in zip(half, full)) < len(full)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="history_crop"):
            recipe_from_dict(dict(data="x", history_crop=bad))
    with pytest.raises(ValueError, match="history_crop"):
        recipe_from_dict(dict(data="x", mode="sequence", history_crop=0.5))


def test_window_stride_is_checked_where_the_config_is_read():
    assert recipe_from_dict(dict(data="x", mode="sequence", template_style="sequence", window_stride=5)).config
    for bad in (dict(window_stride=5), dict(mode="sequence", template_style="sequence", window_stride=0)):
        with pytest.raises(ValueError, match="window_stride"):
            recipe_from_dict(dict(data="x", **bad))


def test_decoder_last_item_starts_the_t5_decoder_from_the_newest_items_identifier(tmp_path_factory, data_dir):
    """``decoder_last_item``: training rows and inference both give the decoder the last history item's identifier
    (left-padded with start tokens to one width); the loss skips that prefix and the bundle records it."""
    from _bundles import cached_bundle

    from genrec.tokens import identifier_token_ids
    from genrec.training.prefix import DecoderPrefixCollator
    from genrec.training.recipe import prepare_recipe, tokenize_pairs, validation_pairs

    recommender = GenerativeRecommender.from_pretrained(cached_bundle("t5-last-item", tmp_path_factory))
    assert recommender.config.decoder_last_item
    prefixes = recommender.decoder_prefixes
    item_tokens = identifier_token_ids(recommender.tokenizer, recommender.index)
    assert len({len(ids) for ids in item_tokens}) > 1  # P5 numbers of 1 and 2 pieces: some prefixes are padded
    start = recommender.model.config.decoder_start_token_id
    rows = recommender.encode(HISTORIES)["decoder_input_ids"].tolist()
    for history, row in zip(HISTORIES, rows):
        ids = item_tokens[recommender.index.position(history[-1])]
        assert len(row) == prefixes.width and row[-len(ids) :] == ids
        assert set(row[: prefixes.width - len(ids)]) == {start}
    recs = recommender.recommend_scored(HISTORIES, k=5, num_beams=5)
    assert all(len(r) == 5 for r in recs)
    # a decoded score is the log-likelihood the training rows teach: prefix + identifier + EOS, one forward pass
    encoded, eos = recommender.encode(HISTORIES), recommender.tokenizer.eos_token_id
    for row, ranked in enumerate(recs):
        target = item_tokens[recommender.index.position(ranked[0].item_id)] + [eos]
        decoder = torch.tensor([rows[row] + target[:-1]])
        with torch.no_grad():
            logits = recommender.model(
                input_ids=encoded["input_ids"][row : row + 1],
                attention_mask=encoded["attention_mask"][row : row + 1],
                decoder_input_ids=decoder,
            ).logits
        log_probs = logits[0, prefixes.width - 1 :].log_softmax(-1)
        assert ranked[0].score == pytest.approx(sum(log_probs[i, t].item() for i, t in enumerate(target)), abs=1e-4)

    recipe = recipe_from_dict(dict(data=str(data_dir), index_method="sequential", template_style="p5"))
    prepared = prepare_recipe(recipe)
    pairs = validation_pairs(prepared.prompter, prepared.split, recommender.index, limit=4)
    encoded = tokenize_pairs(pairs, recommender.tokenizer, "seq2seq", decoder_prefixes=prefixes)
    width = prefixes.width
    for pair, row in zip(pairs, encoded):
        target = recommender.tokenizer(pair["target"], add_special_tokens=False)["input_ids"]
        assert row["decoder_input_ids"] == prefixes(pair["last_item"]) + target
        assert row["labels"] == [-100] * (width - 1) + target + [eos]  # the prefix's last token predicts the target
    from transformers import DataCollatorForSeq2Seq

    batch = DecoderPrefixCollator(DataCollatorForSeq2Seq(recommender.tokenizer))(list(encoded))
    assert batch["decoder_input_ids"].shape == batch["labels"].shape

    with pytest.raises(ValueError, match="decoder_last_item .* needs mode 'prefix'"):
        recipe_from_dict(dict(data="x", mode="sequence", decoder_last_item=True))
