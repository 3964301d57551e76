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


ITEM_TOKEN_INITS = ("mean", "title", "cooccurrence", "title+cooccurrence")


def title_vectors(model, tokenizer, index: ItemIndex, titles: dict[str, str]) -> torch.Tensor:
    """Per item, the mean of the model's input embeddings of its title's tokens (zeros for an item with no title):
    what a pretrained model already knows of the item."""
    embeddings = model.get_input_embeddings().weight.detach()
    title_ids = tokenizer([titles.get(item) or "" for item in index.item_ids], add_special_tokens=False)["input_ids"]
    vectors = torch.zeros(len(index), embeddings.shape[1], dtype=embeddings.dtype)
    for row, words in enumerate(title_ids):
        if words:
            vectors[row] = embeddings[torch.tensor(words, device=embeddings.device)].mean(0).cpu()
    return vectors


def cooccurrence_vectors(index: ItemIndex, train_sequences, width: int, dims: int = 64, seed: int = 0) -> torch.Tensor:
    """Per item, its spectral co-occurrence embedding (training sequences only; see
    :func:`genrec.indexing.collaborative.collaborative_embeddings`) mapped to ``width`` dimensions by a random
    orthonormal projection, which keeps inner products: items watched together start with similar rows, so a tied
    output layer already scores an item's neighbours high."""
    import numpy as np

    from genrec.indexing.collaborative import collaborative_embeddings

    dims = min(dims, width, len(index) - 2)
    spectral = torch.from_numpy(collaborative_embeddings(np.asarray(index.item_ids), train_sequences, dims))
    generator = torch.Generator().manual_seed(seed)
    projection, _ = torch.linalg.qr(torch.randn(width, dims, generator=generator))
    return spectral @ projection.T


@torch.no_grad()
def init_item_rows(model, tokenizer, index: ItemIndex, item_vectors: torch.Tensor, all_tokens: bool = False) -> int:
    """Set each identifier token's input row to the mean of ``item_vectors`` over the items whose identifier uses
    the token (a code shared by similar items starts at their centroid), rescaled to the other rows' typical norm.
    With tied embeddings (SmolLM2, Qwen2.5, the scratch models) this is also the output row. Only the index's new
    tokens are set unless ``all_tokens`` (a scratch model, whose rows are all random: P5's numbers written as text
    start their sub-word pieces at the centroid of the items that use them). Items with a zero vector are skipped;
    returns the number of rows set."""
    embeddings = model.get_input_embeddings().weight
    identifiers = identifier_token_ids(tokenizer, index)
    if all_tokens:
        candidates = sorted({t for ids in identifiers for t in ids})
    else:
        candidates = tokenizer.convert_tokens_to_ids(index.new_tokens)
    sums = torch.zeros(embeddings.shape[0], embeddings.shape[1], dtype=torch.float32)
    counts = torch.zeros(embeddings.shape[0])
    for ids, vector in zip(identifiers, item_vectors.float()):
        if vector.any():
            for token in set(ids):
                sums[token] += vector
                counts[token] += 1
    rows = torch.tensor([t for t in candidates if counts[t] > 0], dtype=torch.long)
    if not len(rows):
        return 0
    centroids = sums[rows] / counts[rows, None]
    others = torch.ones(embeddings.shape[0], dtype=torch.bool)
    others[candidates] = False
    typical = embeddings[others.to(embeddings.device)].detach().float().norm(dim=1).mean().cpu()
    centroids = centroids * (typical / centroids.norm(dim=1, keepdim=True).clamp(min=1e-8))
    embeddings[rows.to(embeddings.device)] = centroids.to(embeddings.dtype).to(embeddings.device)
    return len(rows)


def init_identifier_rows(
    model, tokenizer, index: ItemIndex, how: str, titles, train_sequences, scratch: bool = False
) -> int:
    """Start the identifier rows per ``how`` (:data:`ITEM_TOKEN_INITS`): ``mean`` leaves transformers'
    mean-resized rows (a scratch model's random ones); ``title`` uses :func:`title_vectors`; ``cooccurrence``
    :func:`cooccurrence_vectors`; ``title+cooccurrence`` their sum, each part at unit norm. A ``scratch`` model
    has every identifier token's row set (:func:`init_item_rows`' ``all_tokens``)."""
    if how not in ITEM_TOKEN_INITS:
        raise ValueError(f"item_token_init must be one of {ITEM_TOKEN_INITS}, got {how!r}")
    if how == "mean":
        return 0
    width = model.get_input_embeddings().weight.shape[1]
    parts = []
    if "title" in how:
        parts.append(title_vectors(model, tokenizer, index, titles))
    if "cooccurrence" in how:
        parts.append(cooccurrence_vectors(index, train_sequences, width))
    vectors = sum(torch.nn.functional.normalize(p.float(), dim=1) for p in parts)
    return init_item_rows(model, tokenizer, index, vectors, all_tokens=scratch)


def check_tokenizer_covers(tokenizer, index: ItemIndex) -> None:
    """Raise if ``tokenizer`` lacks any identifier token of ``index`` (a model loaded with the wrong index)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in index.new_tokens if t not in vocab]
    if missing:
        raise ItemIndexError(
            f"the tokenizer lacks {len(missing)} of the index's {len(index.new_tokens)} identifier tokens "
            f"(e.g. {missing[:3]}); this tokenizer was not extended for this {index.method} index"
        )


class DecoderPrefixes:
    """The decoder inputs a T5 trained with ``decoder_last_item`` starts from: the decoder start token, then the last
    history item's identifier tokens, left-padded with start tokens to one width (1 + the longest identifier), so
    every row is as wide and the generated identifier starts at the same column. The decoder then continues the
    item sequence as a causal model does, and the newest item reaches the output through the decoder's residual
    path, not only through cross-attention (where a T5 trained from scratch tends to pool the history into a bag).
    """

    def __init__(self, tokenizer, index: ItemIndex, start_token_id: int):
        self.index = index
        self.item_tokens = identifier_token_ids(tokenizer, index)
        self.start_token_id = start_token_id
        self.width = 1 + max(len(ids) for ids in self.item_tokens)

    def __call__(self, last_item: str | None) -> list[int]:
        """The prefix after ``last_item`` (None or "": start tokens alone, for rows without a history)."""
        ids = self.item_tokens[self.index.position(last_item)] if last_item else []
        return [self.start_token_id] * (self.width - len(ids)) + list(ids)


def identifier_token_ids(tokenizer, index: ItemIndex) -> list[list[int]]:
    """Token ids of every item's identifier, tokenised alone: what the model is trained to emit and the trie allows."""
    check_tokenizer_covers(tokenizer, index)
    return tokenizer(list(index.identifiers), add_special_tokens=False)["input_ids"]
