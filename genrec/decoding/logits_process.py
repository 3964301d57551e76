"""The trie constraint as a transformers `LogitsProcessor`, plus the naive `prefix_allowed_tokens_fn` reference."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers.generation import LogitsProcessor

from genrec.decoding.trie import ItemTrie

logger = logging.getLogger(__name__)


class TrieConstrainedLogitsProcessor(LogitsProcessor):
    r"""[`LogitsProcessor`] that only lets generation spell identifiers of catalog items, followed by EOS.

    At every step the generated part of each row (``input_ids[:, prompt_length:]``) is walked through the
    :class:`ItemTrie` and every token that does not continue a catalog identifier is set to ``-inf``. All rows of the
    batch × beams are handled together with tensor ops; nothing loops over rows in Python.

    Per-step cost for ``N = batch * num_beams`` rows, ``T`` generated tokens so far, ``E`` trie edges and vocabulary
    ``V``: the walk is ``T`` batched ``searchsorted`` calls, O(N T log E); the mask is one scatter of the children of
    the distinct nodes the rows are at (rows at the same node share it), O(N log N + sum of their children), plus
    one (N, V) ``torch.where``, which is as large as ``scores`` itself. Trie size only enters through ``log E``.

    Rows that already finished (EOS after a complete identifier) may only emit pad (EOS when the trie has no pad
    token), so beam search and sampling can carry them. Rows that left the trie (only possible when the processor
    was not applied at an earlier step, or beam search picked a ``-inf`` candidate because fewer valid continuations
    than beams existed) may only emit EOS, which ends them with a ``-inf`` score.

    Args:
        trie (`ItemTrie`):
            the catalog, as token ids of each item's identifier.
        prompt_length (`int`):
            number of leading positions of ``input_ids`` that are not generated tokens: 1 for encoder-decoder models
            (the decoder start token), the (left-padded) prompt width for decoder-only models.
        free_eos (`bool`, *optional*, defaults to `False`):
            when EOS is the only token allowed (a complete identifier that is no prefix of another), give it log-
            probability 0, so ending an identifier costs nothing. For models that never learned to emit EOS after an
            identifier (sequence mode, where the next identifier follows instead); scores then rank items by the
            probability of their identifier tokens alone.
        banned (`list[list[int]]`, *optional*):
            per batch entry, catalog positions of items that must not be generated (e.g. the user's history, for
            ``exclude_seen``): their last transitions are removed from the trie for that entry's rows
            (:meth:`ItemTrie.blocked_transitions`), so beam search spends no beam on them.
        num_beams (`int`, *optional*, defaults to 1):
            rows per batch entry (beam search lays rows out entry-major), used to match rows to ``banned``.

    Examples:

    ```python
    >>> import torch
    >>> from genrec.decoding import ItemTrie, TrieConstrainedLogitsProcessor
    >>> trie = ItemTrie([[5, 6], [5, 7], [8]], eos_token_id=1, pad_token_id=0)
    >>> processor = TrieConstrainedLogitsProcessor(trie, prompt_length=1)
    >>> input_ids = torch.tensor([[0], [0]])  # decoder start token only: nothing generated yet
    >>> scores = torch.zeros(2, 10)
    >>> processor(input_ids, scores)[0]  # only the first tokens of the identifiers survive
    tensor([-inf, -inf, -inf, -inf, -inf, 0., -inf, -inf, 0., -inf])
    >>> processor(torch.tensor([[0, 5], [0, 8]]), scores).isfinite().nonzero().tolist()  # (row, allowed token)
    [[0, 6], [0, 7], [1, 1]]

    ```

    With a model, pass it to ``generate`` and allow one step more than the longest identifier (for EOS):

    ```python
    >>> out = model.generate(
    ...     **inputs, logits_processor=LogitsProcessorList([processor]), num_beams=20, num_return_sequences=20,
    ...     max_new_tokens=trie.max_length + 1, output_scores=True, return_dict_in_generate=True,
    ... )  # doctest: +SKIP

    ```
    """

    # Needs each row's full generated history and a fixed prompt width, which continuous batching does not give.
    supports_continuous_batching = False

    def __init__(
        self,
        trie: ItemTrie,
        prompt_length: int,
        free_eos: bool = False,
        banned: Sequence[Sequence[int]] | None = None,
        num_beams: int = 1,
    ):
        if not isinstance(trie, ItemTrie):
            raise ValueError(f"`trie` has to be an `ItemTrie`, got {type(trie).__name__}")
        if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) or prompt_length < 0:
            raise ValueError(f"`prompt_length` (={prompt_length!r}) has to be a non-negative integer")
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"`num_beams` (={num_beams!r}) has to be a positive integer")
        self.trie = trie
        self.prompt_length = prompt_length
        self.free_eos = free_eos
        self.num_beams = num_beams
        self._blocked_keys, self._blocked_tokens = self._blocked(banned or [])

    def _blocked(self, banned: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys ``entry * num_nodes + node`` and tokens of the transitions each batch entry may not take."""
        keys, tokens = [], []
        for entry, items in enumerate(banned):
            nodes, entry_tokens = self.trie.blocked_transitions(items)
            keys.append(entry * self.trie.num_nodes + nodes)
            tokens.append(entry_tokens)
        if not keys:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        return torch.from_numpy(np.concatenate(keys)), torch.from_numpy(np.concatenate(tokens))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.dim() != 2 or scores.dim() != 2 or input_ids.shape[0] != scores.shape[0]:
            raise ValueError(
                f"expected input_ids (rows, length) and scores (rows, vocab) with the same rows, got "
                f"{tuple(input_ids.shape)} and {tuple(scores.shape)}"
            )
        if input_ids.shape[1] < self.prompt_length:
            raise ValueError(
                f"input_ids has {input_ids.shape[1]} positions, fewer than `prompt_length` (={self.prompt_length}): "
                "use 1 for encoder-decoder models and the padded prompt width for decoder-only models"
            )
        if self.trie.device != scores.device:
            logger.info("moving the item trie to %s", scores.device)
            self.trie = self.trie.to(scores.device)
        nodes = self.trie.walk(input_ids[:, self.prompt_length :])  # (B * beams,)
        mask = self.trie.allowed_mask(nodes, scores.shape[1])  # (B * beams, V)
        has_allowed = mask.any(dim=1)
        if not has_allowed.all():
            empty = (~has_allowed).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"the trie allows no token below the vocabulary size {scores.shape[1]} for rows {empty}: the trie "
                "was built with token ids the model's vocabulary does not have (different tokenizer, or the "
                "embeddings were not resized after adding the identifier tokens)"
            )
        if self._blocked_keys.numel():
            self._remove_blocked(mask, nodes)
        # a new tensor; `scores` is left untouched
        scores_processed = torch.where(mask, scores, -float("inf"))
        if self.free_eos:
            eos = self.trie.eos_token_id
            only_eos = mask[:, eos] & (mask.sum(dim=1) == 1)
            scores_processed[only_eos, eos] = 0.0
        return scores_processed

    def _remove_blocked(self, mask: torch.Tensor, nodes: torch.Tensor) -> None:
        """Clear the banned transitions of each row's batch entry in ``mask`` (in place)."""
        device = mask.device
        if self._blocked_keys.device != device:  # once, like the trie itself
            self._blocked_keys, self._blocked_tokens = self._blocked_keys.to(device), self._blocked_tokens.to(device)
        keys, tokens = self._blocked_keys, self._blocked_tokens
        entry = torch.arange(mask.shape[0], device=device) // self.num_beams
        row_keys = torch.where(nodes >= 0, entry * self.trie.num_nodes + nodes, -1)  # (N,)
        rows, blocked = (row_keys[:, None] == keys[None, :]).nonzero(as_tuple=True)
        keep = tokens[blocked] < mask.shape[1]
        mask[rows[keep], tokens[blocked][keep]] = False
        nothing_left = ~mask.any(dim=1)  # every item was banned (a history that covers the catalog)
        mask[nothing_left, self.trie.eos_token_id] = True  # EOS here ends the row as invalid: it ranks nothing


def make_prefix_allowed_tokens_fn(trie: ItemTrie, prompt_length: int) -> Callable[[int, torch.Tensor], list[int]]:
    r"""The same constraint as a ``prefix_allowed_tokens_fn`` for ``generate`` (one Python call per row and step).

    This is the reference the benchmark compares against: transformers' `PrefixConstrainedLogitsProcessor` loops over
    every batch × beam row in Python and calls this function, which walks :meth:`ItemTrie.allowed` token by token.

    Args:
        trie (`ItemTrie`): the catalog trie.
        prompt_length (`int`): as in :class:`TrieConstrainedLogitsProcessor`.

    Example:

    ```python
    >>> import torch
    >>> from genrec.decoding import ItemTrie, make_prefix_allowed_tokens_fn
    >>> fn = make_prefix_allowed_tokens_fn(ItemTrie([[5, 6], [8]], eos_token_id=1), prompt_length=1)
    >>> fn(0, torch.tensor([0, 5]))
    [6]

    ```
    """
    if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) or prompt_length < 0:
        raise ValueError(f"`prompt_length` (={prompt_length!r}) has to be a non-negative integer")

    def prefix_allowed_tokens_fn(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        return trie.allowed(input_ids[prompt_length:].tolist())

    return prefix_allowed_tokens_fn
