"""Shared fixtures: a tiny synthetic catalog with structure a model can learn, built in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrec.data import InteractionData, leave_one_out

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


def save_tiny_causal_backbone(directory, texts=None, vocab_size: int = 300, seed: int = 0):
    """A tiny Llama + byte-level BPE tokenizer saved to ``directory``: a stand-in for a pretrained causal LM.

    Built offline (no hub): the tokenizer is trained on ``texts`` with the `tokenizers` library.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = texts or [f"Movie {i} {g} story, item {i} next: answer" for i in range(50) for g in GENRES]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_causal_backbone(tmp_path_factory):
    return save_tiny_causal_backbone(tmp_path_factory.mktemp("tiny_llama"))
