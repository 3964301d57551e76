"""Sequence mode on a pretrained causal LM (a tiny local Llama stands in for SmolLM2/Qwen): LC-Rec's alignment
tasks mixed into the history sequences, identifier rows started at their titles, and a backbone cut to its first
layers, all saved and reloaded as one bundle."""

from __future__ import annotations

import pytest
import torch
from _bundles import save_synthetic_data

from genrec.indexing import build_indexer
from genrec.models import load_backbone
from genrec.recommenders import GenerativeRecommender
from genrec.tasks import SequenceFormat
from genrec.testing import TINY_SEQUENCE_RECIPE
from genrec.tokens import add_item_tokens, init_identifier_rows
from genrec.training import recipe_from_dict, run_recipe
from genrec.training.recipe import prepare_recipe
from genrec.training.sequence import alignment_dataset, training_dataset

ALIGNMENT = "seqrec,item2index,index2item,titles2index,history2title"


def _recipe(root, backbone, **overrides):
    values = dict(
        TINY_SEQUENCE_RECIPE,  # sequence mode; the pretrained backbone below replaces its scratch one
        data=str(save_synthetic_data(root)),
        output_dir=str(root / "run"),
        backbone=backbone,
        index_method="semantic-rq",
        index_options={"quantizer": "rqkmeans", "num_levels": 2, "codebook_size": 4},
        tasks=ALIGNMENT,
        max_task_examples=12,
        max_history=6,
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=1000,
        eval_num_beams=5,
        eval_max_users=10,
        test_max_users=10,
        train_sampling_strategy="group_by_length",
    )
    return recipe_from_dict({**values, **overrides})


def test_alignment_rows_put_the_loss_on_the_target_only(tmp_path, tiny_causal_backbone):
    recipe = _recipe(tmp_path, tiny_causal_backbone)
    prepared = prepare_recipe(recipe)
    _, tokenizer, _ = load_backbone(tiny_causal_backbone)
    add_item_tokens(tokenizer, prepared.index)
    rows = alignment_dataset(prepared, tokenizer, recipe.config.tasks, 12, seed=0)
    assert len(rows) == 4 * 12  # every task but seqrec, capped
    identifier_rows = 0
    for ids, labels in zip(rows["input_ids"], rows["labels"]):
        first = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label == -100 for label in labels[:first])  # no loss on the prompt
        assert labels[first:] == ids[first:] and ids[-1] == tokenizer.eos_token_id  # the target, then EOS
        target = tokenizer.decode(ids[first:-1])
        identifier_rows += target in prepared.index.identifiers
    assert identifier_rows == 2 * 12  # item2index and titles2index target identifiers; the others titles

    dataset = training_dataset(prepared, SequenceFormat(tokenizer, prepared.index), recipe.config, seed=0)
    assert dataset["length"] == [len(ids) for ids in dataset["input_ids"]]
    assert len(dataset) == len(rows) + len(
        SequenceFormat(tokenizer, prepared.index).training_rows(prepared.split.train, recipe.config.max_history + 1)[
            "input_ids"
        ]
    )


def test_title_init_starts_each_identifier_row_at_its_titles(tiny_data, tiny_split, tiny_causal_backbone):
    model, tokenizer, _ = load_backbone(tiny_causal_backbone)
    model.requires_grad_(False)
    index = build_indexer("independent").fit(tiny_data.items, tiny_split.train)
    add_item_tokens(tokenizer, index, model)
    titles = tiny_data.titles()
    assert init_identifier_rows(model, tokenizer, index, "title", titles, tiny_split.train) == len(index)
    embeddings = model.get_input_embeddings().weight
    for item, token in list(zip(index.item_ids, index.new_tokens))[:5]:
        words = tokenizer(titles[item], add_special_tokens=False)["input_ids"]
        centroid = embeddings[words].mean(0)
        row = embeddings[tokenizer.convert_tokens_to_ids(token)]
        assert torch.nn.functional.cosine_similarity(row, centroid, dim=0) > 0.999
        # rescaled to the vocabulary's typical row norm, not the shorter norm of an average
        typical = embeddings[: len(tokenizer) - len(index)].norm(dim=1).mean()
        assert row.norm().item() == pytest.approx(typical.item(), rel=1e-4)


def test_cooccurrence_init_puts_items_watched_together_closer(tiny_data, tiny_split, tiny_causal_backbone):
    model, tokenizer, _ = load_backbone(tiny_causal_backbone)
    model.requires_grad_(False)
    index = build_indexer("independent").fit(tiny_data.items, tiny_split.train)
    add_item_tokens(tokenizer, index, model)
    init_identifier_rows(model, tokenizer, index, "cooccurrence", {}, tiny_split.train)
    rows = model.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids(index.new_tokens)]
    rows = torch.nn.functional.normalize(rows, dim=1)
    position = {item: n for n, item in enumerate(index.item_ids)}
    # synthetic users mostly walk i -> i+1: consecutive items must start closer than items half a catalog apart
    near = [rows[position[f"i{i}"]] @ rows[position[f"i{i + 1}"]] for i in range(29)]
    far = [rows[position[f"i{i}"]] @ rows[position[f"i{(i + 15) % 30}"]] for i in range(29)]
    assert torch.stack(near).mean() > torch.stack(far).mean() + 0.2


def test_llm_sequence_recipe_with_tasks_and_first_layers_reloads_identically(
    tmp_path, tiny_causal_backbone, tiny_split
):
    recipe = _recipe(tmp_path, tiny_causal_backbone, backbone_layers=1, item_token_init="title+cooccurrence")
    recommender, metrics = run_recipe(recipe)
    assert metrics["invalid_rate"] == 0.0 and metrics["steps"] > 0
    assert recommender.model.get_base_model().config.num_hidden_layers == 1
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "run" / "bundle")
    assert loaded.config.adapter and loaded.config.base_model_layers == 1
    assert len(loaded.model.get_base_model().model.layers) == 1
    histories = tiny_split.histories("test")[:5]
    before = recommender.recommend_scored(histories, k=5)
    after = loaded.recommend_scored(histories, k=5)
    assert [[r.item_id for r in rs] for rs in before] == [[r.item_id for r in rs] for rs in after]
    for a, b in zip(before, after):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)


def test_first_layers_refuses_impossible_counts(tiny_causal_backbone):
    with pytest.raises(ValueError, match=r"num_layers must be in \[1, 2\]"):
        load_backbone(tiny_causal_backbone, num_layers=3)


def test_set_mode_windows_on_a_pretrained_llm_train_and_reload_identically(tmp_path, tiny_causal_backbone, tiny_split):
    """SETRec on a causal LLM with history windows (template ``sequence``), alignment rows, LoRA, first layers and
    queries anchored on the last item; the anchor needs histories written as token ids."""
    recipe = _recipe(
        tmp_path,
        tiny_causal_backbone,
        mode="set",
        index_method="set",
        index_options={"num_cf_clusters": 4, "cf_dim": 4, "num_semantic": 2, "semantic_codebook_size": 6},
        tasks="seqrec,item2index,titles2index",
        backbone_layers=1,
        item_token_init="title+cooccurrence",
        set_anchor_last_item=True,
    )
    recommender, metrics = run_recipe(recipe)
    assert metrics["invalid_rate"] == 0.0 and metrics["steps"] > 0
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "run" / "bundle")
    assert loaded.config.decoder == "set" and loaded.config.template_style == "sequence"
    assert loaded.model.anchor_last_item and loaded.config.anchor_last_item
    histories = tiny_split.histories("test")[:5]
    encoded = loaded.encode(histories)  # the history as token ids, as the training windows wrote it
    assert encoded["input_ids"][0][encoded["attention_mask"][0].bool()].tolist() == loaded.sequence_format.encode(
        histories[0]
    )
    before = recommender.recommend_scored(histories, k=5)
    after = loaded.recommend_scored(histories, k=5)
    assert [[r.item_id for r in rs] for rs in before] == [[r.item_id for r in rs] for rs in after]
    for a, b in zip(before, after):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)
    with pytest.raises(ValueError, match="set_anchor_last_item .* needs mode 'set', template_style 'sequence'"):
        recipe_from_dict({**TINY_SEQUENCE_RECIPE, "mode": "set", "template_style": "p5", "set_anchor_last_item": True})
