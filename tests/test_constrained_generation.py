"""Trie-constrained `generate` on tiny random T5 and Llama models: every returned row is a catalog item."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList, T5Config, T5ForConditionalGeneration

from genrec.decoding import (
    EMPTY_BEAM_SCORE,
    ItemTrie,
    TrieConstrainedLogitsProcessor,
    make_prefix_allowed_tokens_fn,
    rank_items,
)

PAD, EOS, BOS = 0, 1, 2
VOCAB = 64


def make_catalog(seed: int = 0) -> list[list[int]]:
    """~50 token sequences of length 3-4: groups sharing 2-token prefixes, random ones, and a prefix pair."""
    rng = np.random.default_rng(seed)
    catalog: dict[tuple[int, ...], None] = {}
    for _ in range(8):
        prefix = rng.integers(3, VOCAB, size=2).tolist()
        for _ in range(int(rng.integers(2, 6))):
            catalog[tuple(prefix + rng.integers(3, VOCAB, size=int(rng.integers(1, 3))).tolist())] = None
    while len(catalog) < 48:
        catalog[tuple(rng.integers(3, VOCAB, size=int(rng.integers(3, 5))).tolist())] = None
    catalog[(40, 41, 42)] = None  # one identifier is a prefix of another
    catalog[(40, 41, 42, 43)] = None
    return [list(c) for c in catalog]


CATALOG = make_catalog()


@pytest.fixture(scope="module")
def t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=PAD,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )
    return T5ForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
    )
    return LlamaForCausalLM(config).eval()


def _encoder_inputs(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, 6), generator=torch.Generator().manual_seed(seed))


def _beam_search(model, trie, inputs: dict, prompt_length: int, num_beams: int, **kwargs):
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=prompt_length)
    with torch.inference_mode():
        return model.generate(
            **inputs,
            logits_processor=LogitsProcessorList([processor]),
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=trie.max_length + 1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            **kwargs,
        )


def test_catalog_shape():
    assert 45 <= len(CATALOG) <= 55
    assert {len(c) for c in CATALOG} == {3, 4}


@pytest.mark.parametrize("num_beams", [4, 20])
def test_t5_beam_search_returns_only_catalog_items(t5, num_beams):
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    out = _beam_search(t5, trie, {"input_ids": _encoder_inputs(3)}, prompt_length=1, num_beams=num_beams)
    assert out.sequences.shape[0] == 3 * num_beams
    assert out.sequences_scores.shape == (3 * num_beams,)
    decoded = trie.decode(out.sequences[:, 1:])
    assert all(item is not None for item in decoded), decoded  # 50 items: enough for every beam
    assert (out.sequences_scores > EMPTY_BEAM_SCORE).all()
    items, scores = rank_items(
        trie, out.sequences, out.sequences_scores, num_return=num_beams, k=num_beams, prompt_length=1
    )
    for row_items, row_scores in zip(items, scores):
        assert len(row_items) == len(set(row_items)) == num_beams
        assert row_scores == sorted(row_scores, reverse=True)


def test_t5_heavy_beams_find_exactly_the_best_items(t5):
    """More beams than items: the search is exhaustive, so it must return every item, ranked exactly by the
    constrained sequence log-probability computed by teacher forcing (length_penalty=0: plain sums)."""
    small = [c for c in CATALOG if c[:2] == CATALOG[0][:2]] + [[40, 41, 42], [40, 41, 42, 43], CATALOG[-5]]
    trie = ItemTrie(small, eos_token_id=EOS, pad_token_id=PAD)
    encoder_ids = _encoder_inputs(2, seed=3)
    out = _beam_search(t5, trie, {"input_ids": encoder_ids}, prompt_length=1, num_beams=20, length_penalty=0.0)
    # transformers fills the slots beyond the 20 - len(small) real hypotheses with unfinished candidates scored
    # -1e9, whose tokens can spell real items: rank_items must drop them by score
    empty_slots = (out.sequences_scores <= EMPTY_BEAM_SCORE).view(2, 20).sum(dim=1)
    assert empty_slots.tolist() == [20 - len(small)] * 2
    items, scores = rank_items(trie, out.sequences, out.sequences_scores, num_return=20, k=20, prompt_length=1)
    with torch.inference_mode():
        for user in range(2):
            expected = {}
            for position, seq in enumerate(small):
                target = torch.tensor([seq + [EOS]])
                decoder_input = torch.tensor([[PAD] + seq])
                logits = t5(input_ids=encoder_ids[user : user + 1], decoder_input_ids=decoder_input).logits
                log_probs = logits.log_softmax(-1).gather(-1, target[..., None]).sum()
                expected[position] = log_probs.item()
            assert sorted(items[user]) == list(range(len(small)))  # every item found once, nothing else
            ranked = sorted(expected, key=expected.get, reverse=True)
            assert items[user] == ranked
            np.testing.assert_allclose(scores[user], [expected[i] for i in ranked], rtol=1e-4, atol=1e-4)


def test_t5_unconstrained_generates_invalid_items(t5):
    """Sanity check that the constraint is doing the work: the random model alone rarely spells an item."""
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    with torch.inference_mode():
        out = t5.generate(
            input_ids=_encoder_inputs(3), num_beams=8, num_return_sequences=8, max_new_tokens=trie.max_length + 1
        )
    assert sum(item is None for item in trie.decode(out[:, 1:])) > 12


def test_t5_same_result_as_prefix_allowed_tokens_fn(t5):
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    inputs = {"input_ids": _encoder_inputs(2, seed=5)}
    ours = _beam_search(t5, trie, inputs, prompt_length=1, num_beams=6)
    with torch.inference_mode():
        reference = t5.generate(
            **inputs,
            prefix_allowed_tokens_fn=make_prefix_allowed_tokens_fn(trie, prompt_length=1),
            num_beams=6,
            num_return_sequences=6,
            max_new_tokens=trie.max_length + 1,
            output_scores=True,
            return_dict_in_generate=True,
        )
    assert torch.equal(ours.sequences, reference.sequences)
    torch.testing.assert_close(ours.sequences_scores, reference.sequences_scores)


@pytest.mark.parametrize("do_sample", [False, True])
def test_t5_greedy_and_sampling(t5, do_sample):
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    torch.manual_seed(0)
    with torch.inference_mode():
        out = t5.generate(
            input_ids=_encoder_inputs(4),
            logits_processor=LogitsProcessorList([processor]),
            do_sample=do_sample,
            num_return_sequences=5 if do_sample else 1,
            max_new_tokens=trie.max_length + 1,
        )
    assert all(item is not None for item in trie.decode(out[:, 1:]))


def _left_padded_prompts(lengths: list[int], seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), PAD)
    attention_mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, width - length :] = torch.tensor([BOS] + rng.integers(3, VOCAB, size=length - 1).tolist())
        attention_mask[row, width - length :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def test_llama_left_padded_prompts(llama):
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    inputs = _left_padded_prompts([3, 7, 5])
    width = inputs["input_ids"].shape[1]
    out = _beam_search(llama, trie, inputs, prompt_length=width, num_beams=20)
    assert torch.equal(out.sequences[:, :width], inputs["input_ids"].repeat_interleave(20, dim=0))
    assert all(item is not None for item in trie.decode(out.sequences[:, width:]))
    items, _ = rank_items(trie, out.sequences, out.sequences_scores, num_return=20, k=10, prompt_length=width)
    assert all(len(row) == len(set(row)) == 10 for row in items)


def test_llama_padding_does_not_change_the_exhaustive_ranking(llama):
    """With more beams than items the ranking is exact, so a left-padded batch must equal each prompt alone."""
    small = [c for c in CATALOG if c[:2] == CATALOG[0][:2]] + [[40, 41, 42], [40, 41, 42, 43]]
    trie = ItemTrie(small, eos_token_id=EOS, pad_token_id=PAD)
    lengths = [3, 6]
    batch = _left_padded_prompts(lengths, seed=11)
    width = batch["input_ids"].shape[1]
    out = _beam_search(llama, trie, batch, prompt_length=width, num_beams=16, length_penalty=0.0)
    items, scores = rank_items(trie, out.sequences, out.sequences_scores, num_return=16, k=16, prompt_length=width)
    for row, length in enumerate(lengths):
        alone = {key: value[row : row + 1, width - length :] for key, value in batch.items()}
        single = _beam_search(llama, trie, alone, prompt_length=length, num_beams=16, length_penalty=0.0)
        single_items, single_scores = rank_items(
            trie, single.sequences, single.sequences_scores, num_return=16, k=16, prompt_length=length
        )
        assert sorted(items[row]) == list(range(len(small)))
        assert dict(zip(items[row], scores[row])) == pytest.approx(
            dict(zip(single_items[0], single_scores[0])), abs=1e-4
        )
