"""Beam-search output → a ranked list of unique catalog items per input."""

from __future__ import annotations

import torch

from genrec.decoding.trie import EMPTY_BEAM_SCORE, ItemTrie, check_token_ids


def rank_items(
    trie: ItemTrie,
    sequences: torch.Tensor,
    sequence_scores: torch.Tensor,
    num_return: int,
    k: int,
    *,
    prompt_length: int = 0,
) -> tuple[list[list[int]], list[list[float]]]:
    r"""Turn beam-search output into a top-``k`` list of unique catalog items per input.

    Args:
        trie (`ItemTrie`): the catalog trie used for decoding.
        sequences (`torch.LongTensor` of shape `(batch * num_return, T)`): ``generate(...).sequences`` with
            ``num_return_sequences=num_return``; rows of one input are consecutive.
        sequence_scores (`torch.Tensor` of shape `(batch * num_return,)`): ``generate(...).sequences_scores``
            (needs ``output_scores=True, return_dict_in_generate=True``).
        num_return (`int`): ``num_return_sequences`` used in ``generate``.
        k (`int`): how many items to return per input at most.
        prompt_length (`int`, *optional*, defaults to 0): leading positions of ``sequences`` that are not generated
            (1 for T5's decoder start token; the prompt width for decoder-only models).

    Returns:
        `(item_positions, scores)`: per input, a list of at most ``k`` item positions, best first, and their scores.
        Rows that are not a complete item, or whose score marks an empty beam slot (at or below
        ``EMPTY_BEAM_SCORE``: such rows may spell real items but were never finished hypotheses), are dropped; an
        item found by several rows is kept once, with its best score. Inputs with fewer valid rows get shorter
        lists (never padded).

    Example:

    ```python
    >>> import torch
    >>> from genrec.decoding import ItemTrie, rank_items
    >>> trie = ItemTrie([[5, 6], [5, 7], [8]], eos_token_id=1, pad_token_id=0)
    >>> seqs = torch.tensor([[0, 5, 7, 1], [0, 8, 1, 0], [0, 5, 5, 1], [0, 8, 1, 0]])  # 2 inputs x 2 beams
    >>> rank_items(trie, seqs, torch.tensor([-0.25, -0.5, -0.75, -0.125]), num_return=2, k=5, prompt_length=1)
    ([[1, 2], [2]], [[-0.25, -0.5], [-0.125]])

    ```
    """
    sequences = check_token_ids(sequences, "sequences")
    if num_return <= 0 or k <= 0:
        raise ValueError(f"`num_return` (={num_return}) and `k` (={k}) have to be positive integers")
    if sequence_scores is None:
        raise ValueError(
            "`sequence_scores` is None: call generate with output_scores=True, return_dict_in_generate=True"
        )
    n = sequences.shape[0]
    if sequence_scores.shape != (n,):
        raise ValueError(f"`sequence_scores` has shape {tuple(sequence_scores.shape)}, expected ({n},)")
    if n % num_return:
        raise ValueError(f"{n} sequences is not a multiple of `num_return` (={num_return})")
    if not 0 <= prompt_length <= sequences.shape[1]:
        raise ValueError(f"`prompt_length` (={prompt_length}) is outside [0, {sequences.shape[1]}]")
    items = trie.decode_tensor(sequences[:, prompt_length:]).cpu()
    scores = sequence_scores.detach().float().cpu()
    keep = (items >= 0) & torch.isfinite(scores) & (scores > EMPTY_BEAM_SCORE)
    num_inputs = n // num_return
    items_2d = torch.where(keep, items, -1).view(num_inputs, num_return).tolist()
    scores_2d = scores.view(num_inputs, num_return).tolist()
    out_items, out_scores = [], []
    for row_items, row_scores in zip(items_2d, scores_2d):
        best: dict[int, float] = {}
        for item, score in zip(row_items, row_scores):
            if item >= 0 and (item not in best or score > best[item]):
                best[item] = score
        ranked = sorted(best.items(), key=lambda pair: -pair[1])[:k]  # stable: ties keep beam order
        out_items.append([item for item, _ in ranked])
        out_scores.append([score for _, score in ranked])
    return out_items, out_scores
