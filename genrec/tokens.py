"""Vocabulary extension: add an index's identifier tokens to a tokenizer and model.

New embedding rows are initialised from the distribution of the existing rows (transformers' ``mean_resizing``),
not zeros, so a pretrained backbone starts from plausible vectors. Under LoRA they are trained and saved through
peft's ``trainable_token_indices`` (see :mod:`genrec.models`).
"""

from __future__ import annotations

import logging

import torch

from genrec.indexing.base import ItemIndex, ItemIndexError

logger = logging.getLogger(__name__)


def add_item_tokens(tokenizer, index: ItemIndex, model=None) -> list[int]:
    """Add ``index.new_tokens`` missing from ``tokenizer``; resize ``model``'s embeddings if given.

    Returns the token ids of all ``index.new_tokens`` (in index order).
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in index.new_tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing)
        logger.info("added %d identifier tokens to the tokenizer (now %d)", len(missing), len(tokenizer))
    if model is not None:
        resize_embeddings(model, len(tokenizer))
    return tokenizer.convert_tokens_to_ids(index.new_tokens)


def resize_embeddings(model, vocab_size: int) -> None:
    """Grow the input/output embeddings to ``vocab_size`` rows; never shrinks (a model may pad its vocab)."""
    if model.get_input_embeddings().num_embeddings < vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=True)


@torch.no_grad()
def init_from_titles(model, tokenizer, index: ItemIndex, titles: dict[str, str]) -> int:
    """Start each identifier token's input row at what the pretrained model already knows of its items: the mean of
    the model's embeddings of the item's title tokens, averaged over the items whose identifier uses the token (a
    code shared by similar films starts at their centroid). With tied embeddings this is also the output row, so
    the first scores already follow the titles. Tokens of items without titles keep their rows.

    Returns the number of rows set.
    """
    embeddings = model.get_input_embeddings().weight
    token_ids = identifier_token_ids(tokenizer, index)
    title_ids = tokenizer([titles.get(item) or "" for item in index.item_ids], add_special_tokens=False)["input_ids"]
    sums = torch.zeros_like(embeddings)
    counts = torch.zeros(embeddings.shape[0], dtype=embeddings.dtype, device=embeddings.device)
    for ids, words in zip(token_ids, title_ids):
        if not words:
            continue
        vector = embeddings[torch.tensor(words, device=embeddings.device)].mean(0)
        for token in set(ids):
            sums[token] += vector
            counts[token] += 1
    rows = counts.nonzero().squeeze(1)
    rows = rows[torch.isin(rows, torch.tensor(tokenizer.convert_tokens_to_ids(index.new_tokens)))]
    # keep the new rows at the scale of the vocabulary's rows (a mean of many vectors is shorter than each)
    centroids = sums[rows] / counts[rows, None]
    scale = embeddings[: rows.min()].norm(dim=1).mean() / centroids.norm(dim=1).clamp(min=1e-8)
    embeddings[rows] = centroids * scale[:, None]
    return len(rows)


def check_tokenizer_covers(tokenizer, index: ItemIndex) -> None:
    """Raise if ``tokenizer`` lacks any identifier token of ``index`` (a model loaded with the wrong index)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in index.new_tokens if t not in vocab]
    if missing:
        raise ItemIndexError(
            f"the tokenizer lacks {len(missing)} of the index's {len(index.new_tokens)} identifier tokens "
            f"(e.g. {missing[:3]}); this tokenizer was not extended for this {index.method} index"
        )


def identifier_token_ids(tokenizer, index: ItemIndex) -> list[list[int]]:
    """Token ids of every item's identifier, tokenised alone: what the model is trained to emit and the trie allows."""
    check_tokenizer_covers(tokenizer, index)
    return tokenizer(list(index.identifiers), add_special_tokens=False)["input_ids"]
