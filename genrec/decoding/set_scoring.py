"""SETRec decoding tables: each position's token ids, every item's token per position, and item scores as the
weighted sum of their tokens' log-probabilities (an exact top-K over the whole catalog; no beam search)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genrec.indexing.base import ItemIndex, ItemIndexError, identifier_tokens
from genrec.tokens import check_tokenizer_covers


@dataclass
class SetVocabulary:
    """Token ids of each position and every item's token per position, derived from a ``set`` index.

    Args:
        positions (`list[str]`): position names (``["cf", "s1", ...]``).
        token_ids (`list[list[int]]`): per position, the tokenizer ids of its vocabulary (local index → token id).
        item_table (`torch.LongTensor` of shape `(num_items, positions)`): local token index of each item.
    """

    positions: list[str]
    token_ids: list[list[int]]
    item_table: torch.Tensor

    @classmethod
    def from_index(cls, index: ItemIndex, tokenizer) -> SetVocabulary:
        """Raises ``ValueError`` for an index that is not a set index, ``ItemIndexError`` for a malformed one."""
        positions, sizes = index.state.get("positions"), index.state.get("position_sizes")
        if not positions or not sizes or len(positions) != len(sizes):
            raise ValueError(
                f"SETRec needs a `set` index (state with `positions` and `position_sizes`); got a {index.method!r} "
                "index. Fit one with index_method='set'."
            )
        check_tokenizer_covers(tokenizer, index)
        local = {}
        token_ids = []
        for p, (name, size) in enumerate(zip(positions, sizes)):
            tokens = [f"<{name}_{t}>" for t in range(size)]
            local.update({tok: (p, t) for t, tok in enumerate(tokens)})
            token_ids.append(tokenizer.convert_tokens_to_ids(tokens))
        table = torch.empty(len(index), len(positions), dtype=torch.long)
        for row, ident in enumerate(index.identifiers):
            found = [local.get(f"<{name}_{code}>") for name, code in identifier_tokens(ident)]
            if None in found or sorted(p for p, _ in found) != list(range(len(positions))):
                raise ItemIndexError(
                    f"identifier {ident!r} of item {index.item_ids[row]!r} is not one token per position {positions}"
                )
            for p, t in found:
                table[row, p] = t
        return cls(list(positions), token_ids, table)

    def position_weights(self, cf_weight: float) -> list[float]:
        """``cf_weight`` for the collaborative position, 1 for the semantic ones."""
        return [float(cf_weight) if name == "cf" else 1.0 for name in self.positions]


def score_set_items(log_probs: torch.Tensor, item_table: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """(B, num_items) scores from per-position log-probabilities ``log_probs`` (B, positions, Vmax) and the
    (num_items, positions) ``item_table`` of :class:`SetVocabulary`:
    ``sum_p weights[p] * log_probs[b, p, table[i, p]]``.
    """
    scores = torch.zeros(log_probs.shape[0], item_table.shape[0], device=log_probs.device)  # (B, I)
    for p, weight in enumerate(weights):
        if weight:
            scores += weight * log_probs[:, p].index_select(1, item_table[:, p])  # (B, I)
    return scores
