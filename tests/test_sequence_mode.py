"""Sequence mode: whole histories as one token sequence for a causal LM (loss on every identifier token), decoded
by continuing the sequence with the trie."""

from __future__ import annotations

import pytest
import torch
from _bundles import save_synthetic_data

from genrec.decoding import ItemTrie, TrieConstrainedLogitsProcessor
from genrec.indexing import build_indexer
from genrec.models import train_sentencepiece_tokenizer
from genrec.recommenders import GenerativeRecommender, TrieRecommender
from genrec.tasks import SequenceFormat
from genrec.testing import TINY_SEQUENCE_RECIPE
from genrec.tokens import add_item_tokens
from genrec.training import recipe_from_dict, run_recipe

SEQUENCE_TINY = dict(
    **TINY_SEQUENCE_RECIPE,
    max_history=6,
    num_train_epochs=3,
    per_device_train_batch_size=8,
    learning_rate=1e-2,
    logging_steps=1000,
    eval_num_beams=5,
    eval_max_users=10,
    test_max_users=10,
)


def _format(index, data):
    tokenizer = train_sentencepiece_tokenizer(list(data.items["title"]), 60)
    add_item_tokens(tokenizer, index)
    return tokenizer, SequenceFormat(tokenizer, index)


@pytest.mark.parametrize("method", ["independent", "semantic-rq"])
def test_targets_line_up_with_identifier_tokens_and_each_item_is_a_target_once(tiny_data, tiny_split, method):
    options = {"quantizer": "rqkmeans", "num_levels": 2, "codebook_size": 4} if method == "semantic-rq" else {}
    if method == "semantic-rq":
        import numpy as np

        options["embeddings"] = np.random.default_rng(0).normal(size=(tiny_data.num_items, 8)).astype("float32")
    embeddings = options.pop("embeddings", None)
    indexer = build_indexer(method, **options)
    index = indexer.fit(
        tiny_data.items, tiny_split.train, **({"embeddings": embeddings} if embeddings is not None else {})
    )
    tokenizer, fmt = _format(index, tiny_data)
    sequence = tiny_split.train[0]
    rows = fmt.training_rows([sequence], window=3)
    labelled = []
    for ids, labels in zip(rows["input_ids"], rows["labels"]):
        assert ids[0] == fmt.start and labels[0] == -100 and len(ids) == len(labels)
        # each labelled span is exactly one item's identifier tokens, at its place in the sequence
        position = 1
        while position < len(ids):
            for item, tokens in fmt.item_tokens.items():
                if ids[position : position + len(tokens)] == tokens:
                    break
            else:
                raise AssertionError(f"no identifier at {position}")
            span = labels[position : position + len(tokens)]
            assert span in (tokens, [-100] * len(tokens))
            if span == tokens:
                labelled.append(item)
            position += len(tokens)
    assert labelled == sequence[1:]  # every item after the first is a target exactly once, in order


def test_window_stride_trains_each_target_once_with_the_history_it_promises(tiny_data, tiny_split):
    index = build_indexer("independent").fit(tiny_data.items, tiny_split.train)
    _, fmt = _format(index, tiny_data)
    sequence = list(fmt.item_tokens)[:12]
    for stride in (None, 1, 2, 3):
        targets = []
        windows = list(fmt.windows([sequence], window=4, stride=stride))
        assert [begin for _, begin, _, _ in windows].count(0) == 1  # the history's start is encoded once
        for _, begin, end, first_target in windows:
            for position in range(first_target, end):
                targets.append(position)
                assert position - begin >= min(position, 4 - (stride or 2))  # items before it in its window
        assert targets == list(range(1, len(sequence)))  # every item after the first, once, in order
    with pytest.raises(ValueError, match="stride"):
        list(fmt.windows([sequence], window=4, stride=4))


def test_windows_hold_only_training_items(tiny_data, tiny_split):
    index = build_indexer("independent").fit(tiny_data.items, tiny_split.train)
    tokenizer, fmt = _format(index, tiny_data)
    item_of = {tuple(t): i for i, t in fmt.item_tokens.items()}
    for user, sequence in enumerate(tiny_split.train):
        rows = fmt.training_rows([sequence], window=4)
        for ids in rows["input_ids"]:
            items = [item_of[(t,)] for t in ids[1:]]
            text = ",".join(sequence)
            assert ",".join(items) in text  # a contiguous slice of this user's training sequence
            assert tiny_split.test_items[user] not in items or tiny_split.test_items[user] in sequence
            assert tiny_split.valid_items[user] not in items or tiny_split.valid_items[user] in sequence


def test_free_eos_makes_closing_an_identifier_cost_nothing():
    trie = ItemTrie([[5, 6], [5, 7], [8]], eos_token_id=1, pad_token_id=0)
    scores = torch.full((3, 10), -2.0)
    input_ids = torch.tensor([[9, 5], [9, 8], [9, 9]])[:, :]  # prompt width 1: generated [5], [8], [9 -> invalid]
    plain = TrieConstrainedLogitsProcessor(trie, 1)(input_ids[:2], scores[:2])
    free = TrieConstrainedLogitsProcessor(trie, 1, free_eos=True)(input_ids[:2], scores[:2])
    assert plain[1, 1] == -2.0 and free[1, 1] == 0.0  # a complete identifier: EOS is free
    assert torch.equal(plain[0], free[0])  # mid-identifier rows are untouched


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sequence")
    recipe = recipe_from_dict(
        dict(
            data=str(save_synthetic_data(root)),
            output_dir=str(root / "run"),
            index_method="independent",
            **SEQUENCE_TINY,
        )
    )
    recommender, metrics = run_recipe(recipe)
    return root / "run" / "bundle", recommender, metrics


def test_sequence_recipe_trains_saves_and_reloads_identically(sequence_run, tiny_split):
    bundle, recommender, metrics = sequence_run
    assert metrics["invalid_rate"] == 0.0 and metrics["steps"] > 0
    loaded = GenerativeRecommender.from_pretrained(bundle)
    assert isinstance(loaded, TrieRecommender) and loaded.sequence_format is not None
    histories = tiny_split.histories("test")[:5]
    before = recommender.recommend_scored(histories, k=5)
    after = loaded.recommend_scored(histories, k=5)
    assert [[r.item_id for r in rs] for rs in before] == [[r.item_id for r in rs] for rs in after]
    for a, b in zip(before, after):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)


def test_batched_decoding_equals_one_user_at_a_time(sequence_run, tiny_split):
    _, recommender, _ = sequence_run
    histories = [h[-n:] for h, n in zip(tiny_split.histories("test")[:6], (1, 6, 2, 5, 3, 4))]  # ragged: padding
    batched = recommender.recommend_scored(histories, k=5, batch_size=6)
    single = [recommender.recommend_scored([h], k=5)[0] for h in histories]
    assert [[r.item_id for r in rs] for rs in batched] == [[r.item_id for r in rs] for rs in single]
    for a, b in zip(batched, single):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-4)


def test_sequence_mode_refuses_what_it_cannot_train(tmp_path):
    with pytest.raises(ValueError, match="template_style: sequence"):
        run_recipe(recipe_from_dict(dict(data=str(tmp_path), **{**SEQUENCE_TINY, "template_style": "tiger"})))


@pytest.mark.parametrize("bundle_kind", ["sequence", "causal-lora"])
def test_prefill_once_gives_what_plain_generate_gives(bundle_kind, sequence_run, tiny_split, tmp_path_factory):
    """Encoding each prompt once and repeating its cache for the beams must not change a ranking or a score."""
    from _bundles import cached_bundle

    if bundle_kind == "sequence":
        recommender = sequence_run[1]
    else:
        recommender = GenerativeRecommender.from_pretrained(cached_bundle(bundle_kind, tmp_path_factory))
    histories = [h[-n:] for h, n in zip(tiny_split.histories("test")[:4], (1, 5, 2, 4))]  # ragged: left padding
    fast = recommender.recommend_scored(histories, k=5, num_beams=5)
    recommender.prefill = lambda *args: None  # no cache: generate encodes every prompt once per beam
    try:
        plain = recommender.recommend_scored(histories, k=5, num_beams=5)
    finally:
        del recommender.prefill
    assert [[r.item_id for r in rs] for rs in fast] == [[r.item_id for r in rs] for rs in plain]
    for a, b in zip(fast, plain):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-4)


def test_the_prefilled_cache_goes_by_the_name_the_installed_transformers_takes():
    """transformers 5 renamed ``past_key_values`` to ``cache`` in its later releases; both are supported."""
    from genrec.recommenders.trie import kv_cache_argument

    class Earlier(torch.nn.Module):
        def forward(self, input_ids, past_key_values=None): ...

    class Later(torch.nn.Module):
        def forward(self, input_ids, cache=None): ...

    class PeftWrapper(torch.nn.Module):  # forwards **kwargs; the base model's signature decides
        def forward(self, *args, **kwargs): ...

        def get_base_model(self):
            return Earlier()

    assert kv_cache_argument(Earlier()) == "past_key_values"
    assert kv_cache_argument(Later()) == "cache"
    assert kv_cache_argument(PeftWrapper()) == "past_key_values"


def test_stopping_at_the_identifier_end_changes_nothing(sequence_run, tiny_split):
    """Identifiers of one length need no closing EOS step: the step it would cost adds nothing to any score."""
    _, recommender, _ = sequence_run
    assert recommender.trie.uniform_length  # one token per item
    histories = tiny_split.histories("test")[:6]
    short = recommender.recommend_scored(histories, k=5, num_beams=5)
    recommender.trie.uniform_length = False  # decode one more step, closing every beam with its free EOS
    try:
        closed = recommender.recommend_scored(histories, k=5, num_beams=5)
    finally:
        recommender.trie.uniform_length = True
    assert [[r.item_id for r in rs] for rs in short] == [[r.item_id for r in rs] for rs in closed]
    for a, b in zip(short, closed):
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)
