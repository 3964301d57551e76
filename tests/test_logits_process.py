"""TrieConstrainedLogitsProcessor in the transformers LogitsProcessorTest style: uniform logits, hand-written
input_ids, exact masked positions, never in place."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation import LogitsProcessorList, PrefixConstrainedLogitsProcessor

from genrec.decoding import ItemTrie, TrieConstrainedLogitsProcessor, make_prefix_allowed_tokens_fn

EOS, PAD, BOS = 1, 0, 2
VOCAB = 16
# item positions:    0        1          2       3          4           5
CATALOG = [[5, 6], [5, 6, 7], [5, 8], [9, 10, 11], [9, 10, 12], [13]]


def _get_uniform_logits(batch_size: int, length: int) -> torch.Tensor:
    return torch.ones((batch_size, length), dtype=torch.float) / length


def _allowed(scores: torch.Tensor) -> list[list[int]]:
    return [row.isfinite().nonzero().flatten().tolist() for row in scores]


@pytest.fixture
def trie() -> ItemTrie:
    return ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)


def test_first_step_encoder_decoder(trie):
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    input_ids = torch.full((3, 1), PAD)  # T5: decoder start token only
    scores = _get_uniform_logits(3, VOCAB)
    processed = processor(input_ids, scores)
    assert _allowed(processed) == [[5, 9, 13]] * 3
    # allowed positions keep their value, the rest is -inf
    assert torch.equal(processed[:, [5, 9, 13]], scores[:, [5, 9, 13]])
    assert processed[0, 6].item() == -math.inf
    # processor should not change logits in-place
    assert torch.equal(scores, _get_uniform_logits(3, VOCAB))


def test_rows_at_different_depths(trie):
    """batch 2 x beams 3 = 6 rows, each at its own place in the trie (input_ids all have the same width)."""
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    input_ids = torch.tensor(
        [
            [PAD, 5, 6],  # item 0 complete and prefix of item 1: EOS or 7
            [PAD, 9, 10],  # 11 or 12
            [PAD, 13, EOS],  # finished: pad only
            [PAD, 5, 8],  # leaf: EOS only
            [PAD, 5, 6],  # same node as row 0
            [PAD, 13, 4],  # left the trie: EOS only
        ]
    )
    scores = _get_uniform_logits(6, VOCAB)
    processed = processor(input_ids, scores)
    assert _allowed(processed) == [[EOS, 7], [11, 12], [PAD], [EOS], [EOS, 7], [EOS]]
    # processor should not change logits in-place
    assert torch.equal(scores, _get_uniform_logits(6, VOCAB))


def test_keeps_non_uniform_scores_and_dtype(trie):
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    scores = torch.randn(2, VOCAB, dtype=torch.bfloat16)
    original = scores.clone()
    processed = processor(torch.tensor([[PAD, 9], [PAD, 5]]), scores)
    assert processed.dtype == torch.bfloat16
    assert processed[0, 10] == scores[0, 10]
    assert torch.equal(processed[1, [6, 8]], scores[1, [6, 8]])
    assert processed.isfinite().sum().item() == 3
    assert torch.equal(scores, original)


def test_causal_prompt_with_left_padding(trie):
    """Decoder-only: input_ids = left-padded prompt (width 4) + generated tokens; prompt tokens are ignored."""
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=4)
    prompts = torch.tensor([[PAD, PAD, BOS, 9], [BOS, 13, 5, 6]])  # prompt tokens that look like catalog tokens
    step0 = processor(prompts, _get_uniform_logits(2, VOCAB))
    assert _allowed(step0) == [[5, 9, 13]] * 2
    step2 = processor(torch.cat([prompts, torch.tensor([[9, 10], [5, 6]])], dim=1), _get_uniform_logits(2, VOCAB))
    assert _allowed(step2) == [[11, 12], [EOS, 7]]


def test_prompt_length_zero_and_too_short(trie):
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=0)
    assert (
        _allowed(processor(torch.zeros((2, 0), dtype=torch.long), _get_uniform_logits(2, VOCAB))) == [[5, 9, 13]] * 2
    )
    with pytest.raises(ValueError, match="prompt_length"):
        TrieConstrainedLogitsProcessor(trie, prompt_length=3)(
            torch.zeros((2, 2), dtype=torch.long), torch.zeros(2, 16)
        )


def test_finished_rows_without_pad_token():
    trie = ItemTrie(CATALOG, eos_token_id=EOS)
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    processed = processor(torch.tensor([[PAD, 13, EOS, EOS], [PAD, 9, 10, 12]]), _get_uniform_logits(2, VOCAB))
    assert _allowed(processed) == [[EOS], [EOS]]


def test_vocab_larger_than_trie(trie):
    """The model's vocabulary is often padded (e.g. to a multiple of 64): extra columns are masked."""
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    processed = processor(torch.tensor([[PAD, 9]]), _get_uniform_logits(1, 128))
    assert processed.shape == (1, 128)
    assert _allowed(processed) == [[10]]


def test_unsatisfiable_constraint_raises(trie):
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    # a vocabulary of 10 cannot hold tokens 11/12 allowed after [9, 10]
    with pytest.raises(ValueError, match="allows no token"):
        processor(torch.tensor([[PAD, 5], [PAD, 9]]), _get_uniform_logits(2, 10))
    with pytest.raises(ValueError, match="no token.*rows \\[1\\]"):
        processor(torch.tensor([[PAD, 5, 6], [PAD, 9, 10]]), _get_uniform_logits(2, 11))


def test_init_validation(trie):
    with pytest.raises(ValueError, match="ItemTrie"):
        TrieConstrainedLogitsProcessor(CATALOG, prompt_length=1)
    with pytest.raises(ValueError, match="prompt_length"):
        TrieConstrainedLogitsProcessor(trie, prompt_length=-1)
    with pytest.raises(ValueError, match="prompt_length"):
        make_prefix_allowed_tokens_fn(trie, prompt_length=1.5)
    with pytest.raises(ValueError, match="same rows"):
        TrieConstrainedLogitsProcessor(trie, prompt_length=1)(
            torch.zeros((2, 1), dtype=torch.long), torch.zeros(3, 16)
        )


def test_composes_in_logits_processor_list(trie):
    processors = LogitsProcessorList([TrieConstrainedLogitsProcessor(trie, prompt_length=1)])
    processed = processors(torch.tensor([[PAD, 5]]), _get_uniform_logits(1, VOCAB))
    assert _allowed(processed) == [[6, 8]]


def test_same_mask_as_prefix_allowed_tokens_fn(trie):
    """The vectorised processor and transformers' per-beam PrefixConstrainedLogitsProcessor agree row by row."""
    input_ids = torch.tensor(
        [[PAD, 5, 6], [PAD, 9, 10], [PAD, 13, EOS], [PAD, 5, 8], [PAD, 13, 4], [PAD, 9, 10], [PAD, 5, 6], [PAD, 6, 6]]
    )
    scores = torch.randn(8, VOCAB)
    ours = TrieConstrainedLogitsProcessor(trie, prompt_length=1)(input_ids, scores)
    reference = PrefixConstrainedLogitsProcessor(make_prefix_allowed_tokens_fn(trie, prompt_length=1), num_beams=4)
    theirs = reference(input_ids, scores)
    assert torch.equal(ours, theirs)


def test_banned_items_per_batch_entry():
    """Rows are laid out entry-major (beam search): entry 0's ban applies to its 2 beams only."""
    trie = ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)
    processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1, banned=[[5, 2], []], num_beams=2)
    root = processor(torch.full((4, 1), PAD), _get_uniform_logits(4, VOCAB))
    assert _allowed(root) == [[5, 9]] * 2 + [[5, 9, 13]] * 2
    after_5 = processor(torch.tensor([[PAD, 5]] * 4), _get_uniform_logits(4, VOCAB))
    assert _allowed(after_5) == [[6]] * 2 + [[6, 8]] * 2
    with pytest.raises(ValueError, match="num_beams"):
        TrieConstrainedLogitsProcessor(trie, prompt_length=1, num_beams=0)
