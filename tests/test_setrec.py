"""SETRec set decoding: attention mask, one-pass scoring of every item, brute-force ranking, training, bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _bundles import T5_TINY, save_synthetic_data

from genrec.decoding import SetVocabulary
from genrec.indexing import ItemIndexError, build_indexer
from genrec.models import (
    CAUSAL,
    SEQ2SEQ,
    T5ArchConfig,
    apply_lora,
    build_t5,
    load_backbone,
    train_sentencepiece_tokenizer,
)
from genrec.models.set_head import SetRecModel, causal_set_mask, diagonal_query_mask
from genrec.recommenders import GenerativeRecommender, SetBundleConfig, SetRecommender
from genrec.tasks import Prompter, SequenceFormat
from genrec.testing import save_tiny_causal_backbone
from genrec.tokens import add_item_tokens
from genrec.training.set import SetCollator, set_training_dataset

SET_OPTIONS = {"num_cf_clusters": 4, "cf_dim": 4, "num_semantic": 2, "semantic_codebook_size": 6, "semantic_dim": 8}


@pytest.fixture(scope="module")
def set_index():
    from conftest import make_synthetic_data

    from genrec.data import leave_one_out

    data = make_synthetic_data()
    split = leave_one_out(data)
    embeddings = np.random.default_rng(0).normal(size=(data.num_items, 16)).astype(np.float32)
    return build_indexer("set", **SET_OPTIONS).fit(data.items, split.train, embeddings=embeddings), data, split


def tiny_t5(index, data, seed=0):
    torch.manual_seed(seed)
    tokenizer = train_sentencepiece_tokenizer(list(data.items["title"]) + ["next item history"], 60)
    add_item_tokens(tokenizer, index)
    arch = T5ArchConfig(
        num_layers=1, num_decoder_layers=2, d_model=32, num_heads=2, d_kv=16, d_ff=64, dropout_rate=0.0
    )
    return build_t5(tokenizer, arch), tokenizer


def tiny_llama(index, backbone_dir, seed=0):
    torch.manual_seed(seed)
    model, tokenizer, kind = load_backbone(backbone_dir)
    add_item_tokens(tokenizer, index, model)
    tokenizer.padding_side = "left"
    return model, tokenizer


def set_model(backbone, kind, index, tokenizer, cf_weight=1.0):
    vocab = SetVocabulary.from_index(index, tokenizer)
    return SetRecModel(backbone, kind, vocab.token_ids, vocab.position_weights(cf_weight)).eval(), vocab


def prompts(index, data, histories):
    prompter = Prompter(index, data.titles(), "tiger", max_history=5)
    return [prompter.seqrec_prompt(h) for h in histories]


@pytest.fixture(scope="module")
def t5_setup(set_index):
    index, data, _ = set_index
    backbone, tokenizer = tiny_t5(index, data)
    model, vocab = set_model(backbone, SEQ2SEQ, index, tokenizer)
    return model, tokenizer, vocab


@pytest.fixture(scope="module")
def llama_setup(set_index, tiny_causal_backbone):
    index, _, _ = set_index
    backbone, tokenizer = tiny_llama(index, tiny_causal_backbone)
    model, vocab = set_model(backbone, CAUSAL, index, tokenizer)
    return model, tokenizer, vocab


def encode(tokenizer, texts):
    return tokenizer(texts, return_tensors="pt", padding=True)


# ---------------------------------------------------------------------------------------------- attention mask
def test_causal_set_mask_pattern():
    attention = torch.tensor([[0, 1, 1], [1, 1, 1]])  # row 0 is left-padded
    mask, position_ids = causal_set_mask(attention, 2, torch.float32)
    allowed = (mask[:, 0] == 0).int()
    assert allowed[0].tolist() == [
        [1, 0, 0, 0, 0],  # a pad row sees only itself (never a fully masked row)
        [0, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],  # query 1: all real history + itself
        [0, 1, 1, 0, 1],  # query 2: all real history + itself, not query 1
    ]
    assert position_ids.tolist() == [[0, 0, 1, 2, 2], [0, 1, 2, 3, 3]]


@pytest.mark.parametrize("setup", ["t5_setup", "llama_setup"])
def test_queries_see_history_but_not_each_other(setup, set_index, request):
    model, tokenizer, _ = request.getfixturevalue(setup)
    index, data, split = set_index
    batch = encode(tokenizer, prompts(index, data, split.histories("valid")[:3]))
    with torch.no_grad():
        base = model.query_logits(batch["input_ids"], batch["attention_mask"])  # (B, n, V)
        original = model.queries.detach().clone()
        model.queries[1] += 1.0  # perturb one query vector
        perturbed = model.query_logits(batch["input_ids"], batch["attention_mask"])
        model.queries.copy_(original)
        others = [p for p in range(model.num_positions) if p != 1]
        assert torch.allclose(perturbed[:, others], base[:, others], atol=1e-5)
        assert not torch.allclose(perturbed[:, 1], base[:, 1], atol=1e-3)

        # every query sees the history: changing one history token changes all queries' outputs
        ids = batch["input_ids"].clone()
        real = batch["attention_mask"][0].nonzero().flatten()
        middle = real[len(real) // 2]
        ids[0, middle] = 5 if ids[0, middle] != 5 else 6  # an ordinary vocabulary token
        changed = model.query_logits(ids, batch["attention_mask"])
        for p in range(model.num_positions):
            assert (changed[0, p] - base[0, p]).abs().max() > 1e-4
        assert torch.allclose(changed[1:], base[1:], atol=1e-5)  # other rows of the batch unaffected


@pytest.mark.parametrize("setup", ["t5_setup", "llama_setup"])
def test_each_query_equals_a_plain_forward_with_only_that_query(setup, set_index, request):
    """Query p's output must equal the backbone run on the history followed by query p alone (ordinary masks)."""
    model, tokenizer, _ = request.getfixturevalue(setup)
    index, data, split = set_index
    batch = encode(tokenizer, prompts(index, data, [split.histories("valid")[4]]))
    with torch.no_grad():
        joint = model.query_logits(batch["input_ids"], batch["attention_mask"])
        for p in range(model.num_positions):
            query = model.queries[p].view(1, 1, -1)
            if model.kind == SEQ2SEQ:
                alone = model.backbone(**batch, decoder_inputs_embeds=query, use_cache=False).logits[:, -1]
            else:
                embeds = torch.cat([model.backbone.get_input_embeddings()(batch["input_ids"]), query], dim=1)
                alone = model.backbone(inputs_embeds=embeds, use_cache=False).logits[:, -1]
            assert torch.allclose(joint[:, p], alone, atol=1e-4)


@pytest.mark.parametrize("setup", ["t5_setup", "llama_setup"])
def test_padding_does_not_change_scores(setup, set_index, request):
    model, tokenizer, _ = request.getfixturevalue(setup)
    index, data, split = set_index
    short, long = split.histories("valid")[0][:2], split.histories("valid")[1][:6]
    with torch.no_grad():
        alone = model(**encode(tokenizer, prompts(index, data, [short]))).logits
        padded = model(**encode(tokenizer, prompts(index, data, [short, long]))).logits[:1]
    assert torch.allclose(alone, padded, atol=1e-4)


# ---------------------------------------------------------------------------------------------- decoding
def recommender_for(model, tokenizer, index, data, kind, cf_score_weight=1.0):
    config = SetBundleConfig(
        kind=kind,
        index_fingerprint=index.fingerprint,
        template_style="tiger",
        max_history=5,
        positions=index.state["positions"],
        cf_score_weight=cf_score_weight,
    )
    return SetRecommender(model, tokenizer, index, config, data.titles())


@pytest.mark.parametrize("setup", ["t5_setup", "llama_setup"])
def test_one_forward_pass_scores_every_item_and_matches_brute_force(setup, set_index, request):
    model, tokenizer, vocab = request.getfixturevalue(setup)
    index, data, split = set_index
    rec = recommender_for(model, tokenizer, index, data, model.kind, cf_score_weight=0.5)
    histories = split.histories("test")[:3]
    batch = rec.encode(histories)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        scores = rec.score_items(batch)
    finally:
        hook.remove()
    assert len(calls) == 1  # the whole set, for every item, from ONE forward pass of the backbone
    assert scores.shape == (3, len(index)) and torch.isfinite(scores).all()

    # brute force: loop over items, log-softmax of the full logits restricted to each position's token ids
    with torch.no_grad():
        full = model.query_logits(batch["input_ids"], batch["attention_mask"])  # (B, n, V)
    reference = torch.zeros(3, len(index))
    for item, ident in enumerate(index.identifiers):
        for p, (name, token) in enumerate(zip(vocab.positions, tokenizer.tokenize(ident))):
            assert token.startswith(f"<{name}_")
            logp = full[:, p, vocab.token_ids[p]].log_softmax(-1)
            local = vocab.token_ids[p].index(tokenizer.convert_tokens_to_ids(token))
            reference[:, item] += (0.5 if name == "cf" else 1.0) * logp[:, local]
    assert torch.allclose(scores, reference, atol=1e-4)
    recs = rec.recommend_scored(histories, k=7)
    for row, ranked in enumerate(recs):
        # the exact top-7 scores (ties among equal scores may come in any order), each the item's brute-force score
        position = {item: i for i, item in enumerate(index.item_ids)}
        assert [r.score for r in ranked] == pytest.approx(reference[row].topk(7).values.tolist(), abs=1e-4)
        assert all(abs(r.score - reference[row, position[r.item_id]].item()) < 1e-4 for r in ranked)
        assert all(index.identifiers[position[r.item_id]] == r.identifier for r in ranked)


def test_exclude_seen_and_bad_inputs(t5_setup, set_index):
    model, tokenizer, _ = t5_setup
    index, data, split = set_index
    rec = recommender_for(model, tokenizer, index, data, SEQ2SEQ)
    history = split.histories("test")[0]
    ranked = rec.recommend([history], k=10, exclude_seen=True)[0]
    assert len(ranked) == 10 and not set(ranked) & set(history)
    assert rec.recommend([history + ["not-an-item"]], k=5) == rec.recommend([history], k=5)  # unknown dropped
    with pytest.raises(KeyError, match="not in the index"):
        rec.recommend([history + ["not-an-item"]], k=5, unknown="error")
    with pytest.raises(ValueError, match="empty"):
        rec.recommend([["not-an-item"]], k=5)
    other = build_indexer("set", **{**SET_OPTIONS, "seed": 7}).fit(
        data.items, split.train, embeddings=np.random.default_rng(1).normal(size=(data.num_items, 16))
    )
    with pytest.raises(ItemIndexError, match="trained on item index"):
        SetRecommender(model, tokenizer, other, rec.config, data.titles())


def test_needs_a_set_index_and_identifier_tasks(t5_setup, set_index):
    model, tokenizer, vocab = t5_setup
    index, data, split = set_index
    plain = build_indexer("random", seed=0).fit(data.items, split.train)
    with pytest.raises(ValueError, match="`set` index"):
        SetVocabulary.from_index(plain, tokenizer)
    prompter = Prompter(index, data.titles(), "tiger")
    with pytest.raises(ValueError, match="text targets"):
        set_training_dataset(prompter, split, ["seqrec", "index2item"], tokenizer, vocab)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind", [SEQ2SEQ, CAUSAL])
def test_loss_decreases_and_trains_queries_and_item_tokens(kind, set_index, tiny_causal_backbone):
    index, data, split = set_index
    if kind == SEQ2SEQ:
        backbone, tokenizer = tiny_t5(index, data, seed=1)
    else:
        backbone, tokenizer = tiny_llama(index, tiny_causal_backbone, seed=1)
        backbone = apply_lora(backbone, CAUSAL, tokenizer.convert_tokens_to_ids(index.new_tokens))
    model, vocab = set_model(backbone, kind, index, tokenizer, cf_weight=2.0)
    model.train()
    prompter = Prompter(index, data.titles(), "tiger", max_history=5)
    rows = set_training_dataset(prompter, split, ["seqrec"], tokenizer, vocab, max_examples=32)
    batch = SetCollator(tokenizer)([rows[i] for i in range(len(rows))])
    assert batch["set_labels"].shape == (32, 3)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    queries_before = model.queries.detach().clone()
    item_rows = torch.tensor(vocab.token_ids[0] + vocab.token_ids[1])
    head_before = model.backbone.get_output_embeddings().weight.detach()[item_rows].clone()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses
    assert not torch.allclose(model.queries, queries_before)
    # the LM-head rows of the item tokens (what the queries are scored against) are trained, LoRA included
    head_after = model.backbone.get_output_embeddings().weight.detach()[item_rows]
    assert not torch.allclose(head_after, head_before)


def test_cf_weight_weights_the_cf_position(t5_setup, set_index):
    model, tokenizer, vocab = t5_setup
    index, data, split = set_index
    prompter = Prompter(index, data.titles(), "tiger", max_history=5)
    rows = set_training_dataset(prompter, split, ["seqrec"], tokenizer, vocab, max_examples=8)
    batch = SetCollator(tokenizer)([rows[i] for i in range(len(rows))])
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"]).logits
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["set_labels"].flatten(), reduction="none")
        ce = ce.view(8, 3).mean(0)
        weighted = SetRecModel(model.backbone, SEQ2SEQ, vocab.token_ids, [3.0, 1.0, 1.0], model.queries.detach())
        loss = weighted.eval()(**batch).loss
    assert torch.isclose(loss, (3 * ce[0] + ce[1] + ce[2]) / 5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("tied", "anchor"), [(False, False), (True, False), (True, True)])
def test_window_query_groups_equal_inference_on_each_prefix(tied, anchor, set_index, tmp_path):
    """A window row trains every target at once: group g's logits must equal the model run on the prompt that
    inference writes for the history before target g, for tied (restricted rows) and untied output layers, with
    and without queries anchored on the last item."""
    index, _, split = set_index
    backbone, tokenizer = tiny_llama(index, save_tiny_causal_backbone(tmp_path, tie_word_embeddings=tied), seed=3)
    backbone = apply_lora(backbone, CAUSAL, tokenizer.convert_tokens_to_ids(index.new_tokens))
    with torch.no_grad():  # non-zero LoRA and new-token updates, so the restricted rows must include them
        for p in backbone.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    vocab = SetVocabulary.from_index(index, tokenizer)
    model = SetRecModel(backbone, CAUSAL, vocab.token_ids, vocab.position_weights(2.0), anchor_last_item=anchor).eval()
    assert model.tied_output == tied
    sequence_format = SequenceFormat(tokenizer, index)
    table = vocab.item_table.tolist()
    labels = {item: table[row] for row, item in enumerate(index.item_ids)}
    sequences = split.train[:3]
    rows = sequence_format.set_training_rows(sequences, 5, labels)
    features = [dict(zip(rows, values)) for values in zip(*rows.values())]
    assert len({len(f["query_cuts"]) for f in features}) > 1  # windows with different target counts get padded
    batch = SetCollator(tokenizer)(features)
    seq = sequences[0]  # its first window starts at the history's beginning: targets are items 1, 2, ...
    for g, cut in enumerate(rows["query_cuts"][0]):
        assert rows["input_ids"][0][:cut] == sequence_format.encode(seq[: g + 1])
        assert rows["set_labels"][0][g] == labels[seq[g + 1]]
    with torch.no_grad():
        out = model(**batch)
        for row, feature in enumerate(features):
            for g, cut in enumerate(feature["query_cuts"]):
                prefix = torch.tensor([feature["input_ids"][:cut]])
                alone = model(prefix, torch.ones_like(prefix)).logits[0]  # (n, Vmax), the inference path
                assert torch.allclose(out.logits[row, g], alone, atol=1e-4)
        # the loss averages the real groups only (padding groups carry label -100)
        weights, losses = torch.tensor([2.0, 1.0, 1.0]), []
        for row, feature in enumerate(features):
            for g in range(len(feature["query_cuts"])):
                ce = torch.nn.functional.cross_entropy(
                    out.logits[row, g], batch["set_labels"][row, g], reduction="none"
                )
                losses.append((ce * weights).sum() / weights.sum())
        assert torch.isclose(out.loss, torch.stack(losses).mean(), atol=1e-5)


def test_anchored_queries_start_at_the_last_items_tokens(set_index, tiny_causal_backbone):
    index, _, split = set_index
    backbone, tokenizer = tiny_llama(index, tiny_causal_backbone)
    vocab = SetVocabulary.from_index(index, tokenizer)
    n = len(vocab.positions)
    model = SetRecModel(backbone, CAUSAL, vocab.token_ids, queries=torch.zeros(n, 32), anchor_last_item=True)
    history = split.histories("test")[0]
    ids = torch.tensor([SequenceFormat(tokenizer, index).encode(history)])
    embed = backbone.get_input_embeddings()
    inputs_embeds, _, _ = model._causal_inputs(ids, torch.ones_like(ids), torch.tensor([[ids.shape[1]]]))
    inputs = inputs_embeds[:, -n:]  # (1, n, d): the queries after the history
    last_item = torch.tensor(vocab.item_table[index.position(history[-1])])  # local index per position
    expected = embed(torch.tensor([vocab.token_ids[p][int(last_item[p])] for p in range(n)]))
    assert torch.allclose(inputs[0], expected)  # query p starts at the last item's token of position p


def test_anchored_t5_queries_start_at_the_last_items_tokens_before_eos(set_index):
    """T5 histories end with the end-of-sequence token and are right-padded: the anchor skips both."""
    index, data, split = set_index
    backbone, tokenizer = tiny_t5(index, data)
    vocab = SetVocabulary.from_index(index, tokenizer)
    n = len(vocab.positions)
    model = SetRecModel(backbone, SEQ2SEQ, vocab.token_ids, queries=torch.zeros(n, 32), anchor_last_item=True).eval()
    histories = [split.histories("test")[0], split.histories("test")[1][-1:]]  # the second row is padded
    prompter = Prompter(index, data.titles(), "tiger", max_history=5, separator="")
    batch = encode(tokenizer, [prompter.seqrec_prompt(h) for h in histories])
    assert batch["attention_mask"][1].sum() < batch["attention_mask"].shape[1]
    embed = backbone.get_input_embeddings()
    last_items = [vocab.item_table[index.position(h[-1])] for h in histories]
    expected = embed(torch.tensor([[vocab.token_ids[p][int(row[p])] for p in range(n)] for row in last_items]))
    with torch.no_grad():
        plain = backbone(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_inputs_embeds=expected,
            decoder_attention_mask=diagonal_query_mask(2, n, expected.dtype, "cpu"),
        ).logits
        anchored = model.query_logits(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(anchored, plain, atol=1e-5)


# ---------------------------------------------------------------------------------------------- bundles
@pytest.fixture(scope="module")
def trained_set_bundle(tmp_path_factory, set_index):
    from genrec.training import recipe_from_dict, run_recipe

    index, _, _ = set_index
    root = tmp_path_factory.mktemp("setrec")
    index_file = index.save(root / "index.json")
    cfg = recipe_from_dict(
        dict(
            data=str(save_synthetic_data(root)),
            output_dir=str(root / "run"),
            **{
                **T5_TINY,
                "index_method": "set",
                "num_train_epochs": 2,
                "eval_max_users": None,
                "test_max_users": None,
            },
            index_file=str(index_file),
            decoder="set",
            set_cf_weight=2.0,
            set_cf_score_weight=0.5,
            learning_rate=5e-3,
            history_separator="",
            set_anchor_last_item=True,  # T5 queries anchored on the last item (setrec_t5)
            item_token_init="cooccurrence",
        )
    )
    recommender, metrics = run_recipe(cfg)
    return root / "run" / "bundle", recommender, metrics


def test_recipe_trains_with_harness_and_bundle_round_trips(trained_set_bundle, set_index):
    bundle, trained, metrics = trained_set_bundle
    _, _, split = set_index
    assert isinstance(trained, SetRecommender)
    assert metrics["invalid_rate"] == 0.0 and metrics["num_users"] == len(split.test_items)
    assert metrics["best_valid_ndcg10"] is not None and metrics["steps"] > 0
    saved = json.loads((bundle / "genrec_config.json").read_text())
    assert saved["decoder"] == "set" and saved["cf_weight"] == 2.0 and saved["cf_score_weight"] == 0.5
    assert saved["anchor_last_item"]
    assert "SETRec set decoding" in (bundle / "README.md").read_text()

    histories = split.histories("test")[:8]
    expected = trained.recommend_scored(histories, k=10)
    for loaded in (SetRecommender.from_pretrained(bundle), GenerativeRecommender.from_pretrained(bundle)):
        assert isinstance(loaded, SetRecommender)
        got = loaded.recommend_scored(histories, k=10)
        assert [[r.item_id for r in recs] for recs in got] == [[r.item_id for r in recs] for recs in expected]
        assert np.allclose(
            [[r.score for r in recs] for recs in got], [[r.score for r in recs] for recs in expected], atol=1e-5
        )
    with pytest.raises(ItemIndexError, match="trained on item index"):
        SetRecommender.from_pretrained(bundle, index=_shifted_index(set_index[0]))


def _shifted_index(index):
    """The same set index with two items' identifiers swapped: a different fingerprint."""
    from genrec.indexing import ItemIndex

    identifiers = list(index.identifiers)
    identifiers[0], identifiers[1] = identifiers[1], identifiers[0]
    return ItemIndex(index.method, index.item_ids, identifiers, index.new_tokens, index.options, index.state)


def test_lora_causal_bundle_round_trips(tmp_path, set_index, tiny_causal_backbone):
    index, data, split = set_index
    backbone, tokenizer = tiny_llama(index, tiny_causal_backbone, seed=2)
    backbone = apply_lora(backbone, CAUSAL, tokenizer.convert_tokens_to_ids(index.new_tokens))
    model, vocab = set_model(backbone, CAUSAL, index, tokenizer)
    with torch.no_grad():  # move away from the initialisation so the round trip checks real weights
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    config = SetBundleConfig(
        kind=CAUSAL,
        index_fingerprint=index.fingerprint,
        template_style="tiger",
        max_history=5,
        base_model=tiny_causal_backbone,
        adapter=True,
        positions=vocab.positions,
    )
    rec = SetRecommender(model, tokenizer, index, config, data.titles())
    histories = split.histories("test")[:4]
    expected = rec.recommend_scored(histories, k=5)
    rec.save_pretrained(tmp_path / "bundle")
    assert (tmp_path / "bundle" / "adapter").is_dir() and (tmp_path / "bundle" / "set_head.safetensors").is_file()
    loaded = GenerativeRecommender.from_pretrained(tmp_path / "bundle")
    got = loaded.recommend_scored(histories, k=5)
    assert [[r.item_id for r in recs] for recs in got] == [[r.item_id for r in recs] for recs in expected]
    assert np.allclose(
        [[r.score for r in recs] for recs in got], [[r.score for r in recs] for recs in expected], atol=1e-5
    )


def test_set_bundle_through_the_pipeline_and_batch_script(trained_set_bundle, set_index, tmp_path):
    from transformers import pipeline

    import genrec  # noqa: F401  registers the pipeline task
    from genrec.inference import recommend_jsonl

    bundle, trained, _ = trained_set_bundle
    _, _, split = set_index
    history = split.histories("test")[0]
    expected = trained.recommend_scored([history], k=5)[0]
    recommend = pipeline("next-item-recommendation", model=str(bundle), device="cpu")
    got = recommend(history, top_k=5)
    assert [r["item_id"] for r in got] == [r.item_id for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r.score for r in expected], abs=1e-4)

    source, output = tmp_path / "users.jsonl", tmp_path / "recs.jsonl"
    source.write_text(json.dumps({"user_id": "u", "history": history}) + "\n")
    recommend_jsonl(trained, source, output, k=5)
    line = json.loads(output.read_text())
    assert [r["item_id"] for r in line["items"]] == [r.item_id for r in expected]
