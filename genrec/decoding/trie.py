"""A flattened, tensorised trie over the token ids of item identifiers, and ranking of beam-search outputs.

Every item identifier (new tokens such as ``<a_12><b_3>``, a number, a title) is tokenised once with the model's
tokenizer (``add_special_tokens=False``); the trie is built from those id lists, so one decoder serves every indexing
method on T5 and causal models alike. The trie has no knowledge of the model.

Layout (all int64 tensors, nothing per node in Python):

- nodes are numbered depth by depth (root = 0); within a depth in lexicographic order of their prefix;
- edge ``j`` goes from ``_edge_parent[j]`` to node ``j + 1`` with token ``_edge_token[j]``. Because of the numbering,
  ``_edge_key = parent * vocab_span + token`` is strictly increasing, so a transition is one ``torch.searchsorted``,
  and the children of a node are the contiguous edges ``_child_ptr[node] : _child_ptr[node + 1]`` (CSR);
- ``_terminal_item[node]`` is the catalog position of the item whose sequence ends at ``node`` (-1 if none). A
  complete sequence must be followed by EOS, so EOS is allowed exactly at terminal nodes.

Building sorts the padded id matrix once (``np.lexsort``) and derives the nodes from the first column where
consecutive sorted rows differ: O(M L log M) for M items of at most L tokens, with one vectorised pass per depth.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

# When fewer finished hypotheses than `num_return_sequences` exist (more beams than items under the explored
# prefixes), transformers' beam search fills the remaining output slots with unfinished candidates scored with its
# -1e9 placeholder penalty. Their tokens can spell real items (often duplicates), so rank_items drops rows scored at or
# below this threshold; no real sequence log-probability comes near it.
EMPTY_BEAM_SCORE = -1.0e8


class ItemTrie:
    r"""Trie over the token-id sequences of all catalog items, queried with batched tensor ops.

    Args:
        sequences (`list[list[int]]`):
            token ids of each item's identifier, in catalog order (position ``i`` is item ``i``). A 2-D integer
            `np.ndarray`/`torch.Tensor` (all identifiers of the same length) is also accepted.
        eos_token_id (`int`):
            token that must follow a complete identifier.
        pad_token_id (`int`, *optional*):
            token that fills finished rows. When `None`, finished rows may only repeat EOS.

    Raises:
        ValueError: no sequences, an empty sequence, a negative token, EOS or pad inside a sequence, or two items
            with the same token ids (colliding identifiers; the message names their positions).

    Example:

    ```python
    >>> import torch
    >>> from genrec.decoding import ItemTrie
    >>> trie = ItemTrie([[5, 6], [5, 6, 7], [8]], eos_token_id=1, pad_token_id=0)
    >>> trie.allowed([5, 6])  # item 0 is complete (EOS) and item 1 continues with 7
    [1, 7]
    >>> trie.decode(torch.tensor([[5, 6, 1, 0], [5, 6, 7, 1], [8, 8, 1, 0]]))
    [0, 1, None]

    ```
    """

    INVALID = -1  # the consumed tokens left the trie
    FINISHED = -2  # a complete identifier was followed by EOS

    def __init__(self, sequences: Sequence[Sequence[int]], eos_token_id: int, pad_token_id: int | None = None):
        start = time.perf_counter()
        eos_token_id = _as_token_id(eos_token_id, "eos_token_id")
        pad_token_id = None if pad_token_id is None else _as_token_id(pad_token_id, "pad_token_id")
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id

        padded, lengths = _pad_sequences(sequences)  # (M, L) int64 with -1 after the end, (M,)
        num_items, max_length = padded.shape
        _check_special_tokens(padded, eos_token_id, pad_token_id)

        # Sort rows lexicographically; -1 padding sorts first, so a prefix comes right before its extensions.
        order = np.lexsort(padded.T[::-1])
        rows = padded[order]
        row_lengths = lengths[order]
        # First column where each sorted row differs from the previous one (row 0 differs everywhere).
        first_diff = np.zeros(num_items, dtype=np.int64)
        if num_items > 1:
            differs = rows[1:] != rows[:-1]  # (M - 1, L)
            any_diff = differs.any(axis=1)
            if not any_diff.all():
                dup = np.flatnonzero(~any_diff)
                pairs = ", ".join(f"{int(order[i])} and {int(order[i + 1])}" for i in dup[:5])
                more = f" (and {len(dup) - 5} more)" if len(dup) > 5 else ""
                raise ValueError(
                    f"{len(dup)} pair(s) of items have identical token ids, e.g. items at positions {pairs}{more}: "
                    "their identifiers collide after tokenisation, so the decoder could not tell them apart"
                )
            first_diff[1:] = differs.argmax(axis=1)

        # Row i opens a new node at depth d (1-based) iff it is long enough and differs from row i-1 within d tokens.
        node_at = np.zeros((num_items, max_length + 1), dtype=np.int64)  # node reached by each row at each depth
        parents, tokens = [], []
        num_nodes = 1
        for depth in range(1, max_length + 1):
            active = row_lengths >= depth
            new = active & (first_diff < depth)
            node_at[:, depth] = np.where(active, num_nodes + np.cumsum(new) - 1, -1)
            parents.append(node_at[new, depth - 1])
            tokens.append(rows[new, depth - 1])
            num_nodes += int(new.sum())
        edge_parent = np.concatenate(parents)
        edge_token = np.concatenate(tokens)
        vocab_span = int(max(int(padded.max()), eos_token_id, pad_token_id or 0)) + 1
        edge_key = edge_parent * vocab_span + edge_token
        if not (edge_key[1:] > edge_key[:-1]).all():  # guaranteed by the numbering; cheap to verify
            raise AssertionError("internal error: trie transition keys are not strictly increasing")
        terminal_item = np.full(num_nodes, -1, dtype=np.int64)
        terminal_item[node_at[np.arange(num_items), row_lengths]] = order
        item_path = np.empty_like(node_at)  # nodes each item passes through (depth 0..L, -1 past its end)
        item_path[order] = node_at

        self.num_items = int(num_items)
        self.max_length = int(max_length)
        self.uniform_length = bool((lengths == max_length).all())  # no identifier ends where another goes on
        self.num_nodes = int(num_nodes)
        self.vocab_span = vocab_span
        self._edge_key = torch.from_numpy(edge_key)  # (E,) sorted
        self._edge_token = torch.from_numpy(edge_token)  # (E,)
        self._child_ptr = torch.from_numpy(
            np.concatenate([[0], np.cumsum(np.bincount(edge_parent, minlength=num_nodes))])
        )  # (num_nodes + 1,)
        self._terminal_item = torch.from_numpy(terminal_item)  # (num_nodes,)
        # numpy views of the same buffers for the Python reference `allowed`
        self._np_edge_token = edge_token
        self._np_child_ptr = self._child_ptr.numpy()
        self._np_terminal_item = terminal_item
        self._np_edge_parent = edge_parent
        self._np_item_path = item_path
        self._np_item_lengths = lengths
        self._np_items_below = np.bincount(node_at[node_at >= 0], minlength=num_nodes)  # items in each subtree
        logger.info(
            "built item trie: %d items, %d nodes, max length %d in %.2fs",
            self.num_items,
            self.num_nodes,
            self.max_length,
            time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        return self.num_items

    def __repr__(self) -> str:
        return (
            f"ItemTrie(num_items={self.num_items}, num_nodes={self.num_nodes}, max_length={self.max_length}, "
            f"eos_token_id={self.eos_token_id}, pad_token_id={self.pad_token_id}, device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        return self._edge_key.device

    def to(self, device: str | torch.device) -> ItemTrie:
        """Return a trie whose tensors live on ``device`` (``self`` when they already do); the original is kept."""
        device = torch.device(device)
        if device == self.device:
            return self
        new = object.__new__(ItemTrie)
        new.__dict__.update(self.__dict__)
        for name in ("_edge_key", "_edge_token", "_child_ptr", "_terminal_item"):
            setattr(new, name, getattr(self, name).to(device))
        return new

    @property
    def _stop_token(self) -> int:
        """What a finished row may emit: pad, or EOS again when there is no pad token."""
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    # ------------------------------------------------------------------ batched tensor queries

    def _advance(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Child of each node along ``tokens`` (INVALID where there is none); only meaningful where nodes >= 0."""
        span = self.vocab_span
        in_range = (tokens >= 0) & (tokens < span)
        keys = nodes.clamp(min=0) * span + tokens.clamp(0, span - 1)  # (N,)
        idx = torch.searchsorted(self._edge_key, keys).clamp(max=self._edge_key.numel() - 1)
        found = in_range & (self._edge_key[idx] == keys)
        return torch.where(found, idx + 1, self.INVALID)  # edge j leads to node j + 1

    def walk(self, generated: torch.Tensor) -> torch.Tensor:
        """Trie state of each row after consuming its generated tokens.

        Args:
            generated (`torch.LongTensor` of shape `(N, T)`): generated tokens only (no prompt / decoder start).

        Returns:
            `torch.LongTensor` of shape `(N,)`: the node index, ``ItemTrie.FINISHED`` (-2) once a complete
            identifier was followed by EOS (any later token is ignored), or ``ItemTrie.INVALID`` (-1) when the
            tokens left the trie (including EOS after an incomplete identifier). One ``searchsorted`` per column,
            no loop over rows: O(N T log E) for E edges.
        """
        generated = check_token_ids(generated, "generated").to(self.device)
        state = torch.zeros(generated.shape[0], dtype=torch.long, device=self.device)
        for t in range(generated.shape[1]):
            tok = generated[:, t]
            active = state >= 0
            is_terminal = self._terminal_item[state.clamp(min=0)] >= 0
            on_eos = torch.where(is_terminal, self.FINISHED, self.INVALID)
            nxt = torch.where(tok == self.eos_token_id, on_eos, self._advance(state, tok))
            state = torch.where(active, nxt, state)
        return state

    def _allowed_pairs(self, nodes: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, token) index pairs of every allowed token with token < vocab_size, built with CSR gathers."""
        nodes = nodes.to(self.device)
        n = nodes.shape[0]
        arange = torch.arange(n, device=self.device)
        valid = nodes >= 0
        safe = nodes.clamp(min=0)
        first = self._child_ptr[safe]  # (N,)
        counts = torch.where(valid, self._child_ptr[safe + 1] - first, 0)  # (N,)
        total = int(counts.sum())
        child_rows = torch.repeat_interleave(arange, counts, output_size=total)  # (sum children,)
        row_start = torch.cumsum(counts, 0) - counts
        shift = torch.repeat_interleave(first - row_start, counts, output_size=total)
        edge = torch.arange(total, device=self.device) + shift  # edge index of each (row, child) pair
        child_tokens = self._edge_token[edge]
        eos_rows = arange[(valid & (self._terminal_item[safe] >= 0)) | (nodes == self.INVALID)]
        stop_rows = arange[nodes == self.FINISHED]
        rows = torch.cat([child_rows, eos_rows, stop_rows])
        cols = torch.cat(
            [child_tokens, torch.full_like(eos_rows, self.eos_token_id), torch.full_like(stop_rows, self._stop_token)]
        )
        keep = cols < vocab_size
        return rows[keep], cols[keep]

    def allowed_mask(self, nodes: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """Boolean mask of the tokens allowed next at each node.

        Args:
            nodes (`torch.LongTensor` of shape `(N,)`): states from :meth:`walk`.
            vocab_size (`int`): width of the mask (the model's vocabulary, possibly padded); trie tokens at or
                beyond it are dropped.

        Returns:
            `torch.BoolTensor` of shape `(N, vocab_size)`: children of the node, plus EOS at terminal nodes.
            Finished rows allow only pad (EOS when there is no pad token); invalid rows allow only EOS. No loop
            over rows: the distinct nodes' children come from the CSR lists with ``repeat_interleave`` and one
            scatter, then rows copy their node's mask, so the work is O(distinct nodes' children + N V) — beams
            share nodes (all rows are at the root on the first step).
        """
        nodes = nodes.to(self.device)
        unique_nodes, inverse = torch.unique(nodes, return_inverse=True)  # (U,), (N,)
        rows, cols = self._allowed_pairs(unique_nodes, vocab_size)
        mask = torch.zeros(unique_nodes.shape[0], vocab_size, dtype=torch.bool, device=self.device)  # (U, V)
        mask[rows, cols] = True
        return mask[inverse]  # (N, V)

    def blocked_transitions(self, items: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(nodes, tokens)`` to forbid so that no identifier of ``items`` (catalog positions) can be completed:
        the edge into every subtree whose items are all in ``items``, and EOS at the end of an item of ``items``
        whose identifier is also the prefix of other items. Whatever is left still leads to an allowed item, so
        beam search never walks into a dead end."""
        items = np.unique(np.asarray(list(items), dtype=np.int64))
        if len(items) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if items.min() < 0 or items.max() >= self.num_items:
            raise ValueError(f"item positions must be in [0, {self.num_items}), got {items.min()}..{items.max()}")
        paths = self._np_item_path[items][:, 1:]  # depth >= 1
        banned_below = np.bincount(paths[paths >= 0], minlength=self.num_nodes)
        full = np.flatnonzero((banned_below == self._np_items_below) & (banned_below > 0))  # never the root
        ends = self._np_item_path[items, self._np_item_lengths[items]]
        ends = ends[banned_below[ends] < self._np_items_below[ends]]  # prefix identifiers: only their EOS goes
        nodes = np.concatenate([self._np_edge_parent[full - 1], ends])  # edge j leads to node j + 1
        tokens = np.concatenate([self._np_edge_token[full - 1], np.full(len(ends), self.eos_token_id)])
        return nodes, tokens

    def decode_tensor(self, generated: torch.Tensor) -> torch.Tensor:
        """Item position per row (-1 if none), reading tokens up to the first EOS/pad."""
        generated = check_token_ids(generated, "generated").to(self.device)
        state = torch.zeros(generated.shape[0], dtype=torch.long, device=self.device)
        stopped = torch.zeros(generated.shape[0], dtype=torch.bool, device=self.device)
        for t in range(generated.shape[1]):
            tok = generated[:, t]
            stop = tok == self.eos_token_id
            if self.pad_token_id is not None:
                stop |= tok == self.pad_token_id
            stopped |= stop
            state = torch.where(~stopped & (state >= 0), self._advance(state, tok), state)
        return torch.where(state >= 0, self._terminal_item[state.clamp(min=0)], -1)

    def decode(self, generated: torch.Tensor) -> list[int | None]:
        """Item position of each row, or `None` where the tokens before the first EOS/pad are not a complete item.

        Args:
            generated (`torch.LongTensor` of shape `(N, T)`): generated tokens only (slice the prompt off first).
        """
        return [None if i < 0 else i for i in self.decode_tensor(generated).tolist()]

    # ------------------------------------------------------------------ Python reference queries

    def item_of(self, sequence: Sequence[int]) -> int | None:
        """Item position whose identifier is exactly ``sequence`` (a trailing EOS/pad is ignored), else `None`."""
        if len(sequence) == 0:
            return None
        return self.decode(torch.tensor([list(sequence)], dtype=torch.long))[0]

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Sorted tokens allowed after ``prefix`` (generated tokens only): the plain-Python reference of
        :meth:`walk` + :meth:`allowed_mask`, also used by :func:`make_prefix_allowed_tokens_fn`."""
        node = 0
        for tok in prefix:
            tok = int(tok)
            if node < 0:
                break
            if tok == self.eos_token_id:
                node = self.FINISHED if self._np_terminal_item[node] >= 0 else self.INVALID
                continue
            lo, hi = int(self._np_child_ptr[node]), int(self._np_child_ptr[node + 1])
            i = lo + int(np.searchsorted(self._np_edge_token[lo:hi], tok))
            node = i + 1 if i < hi and self._np_edge_token[i] == tok else self.INVALID
        if node == self.FINISHED:
            return [self._stop_token]
        if node == self.INVALID:
            return [self.eos_token_id]
        lo, hi = int(self._np_child_ptr[node]), int(self._np_child_ptr[node + 1])
        allowed = self._np_edge_token[lo:hi].tolist()
        if self._np_terminal_item[node] >= 0:
            allowed.append(self.eos_token_id)
        return sorted(allowed)


# ---------------------------------------------------------------------- helpers


def _as_token_id(value, name: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"`{name}` has to be a single token id, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` (={value!r}) has to be a non-negative integer token id")
    return int(value)


def check_token_ids(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"`{name}` has to be a 2-D LongTensor (rows, tokens), got {shape}")
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise ValueError(f"`{name}` has to hold integer token ids, got dtype {tensor.dtype}")
    return tensor.long()


def _pad_sequences(sequences) -> tuple[np.ndarray, np.ndarray]:
    """(M, L) int64 matrix with -1 after each sequence's end, and the lengths; validates emptiness and signs."""
    if isinstance(sequences, (np.ndarray, torch.Tensor)) and sequences.ndim == 2:
        padded = np.ascontiguousarray(np.asarray(sequences), dtype=np.int64)
        lengths = np.full(padded.shape[0], padded.shape[1], dtype=np.int64)
        if padded.shape[0] == 0:
            raise ValueError("`sequences` is empty: the trie needs at least one item")
        if padded.shape[1] == 0:
            raise ValueError("every sequence is empty: an identifier needs at least one token")
    else:
        num = len(sequences)
        if num == 0:
            raise ValueError("`sequences` is empty: the trie needs at least one item")
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=num)
        if (lengths == 0).any():
            empty = np.flatnonzero(lengths == 0)
            raise ValueError(
                f"{len(empty)} empty sequence(s), e.g. at positions {empty[:5].tolist()}: an identifier needs at "
                "least one token (did the tokenizer drop it?)"
            )
        total = int(lengths.sum())
        flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=total)
        padded = np.full((num, int(lengths.max())), -1, dtype=np.int64)
        row = np.repeat(np.arange(num), lengths)
        col = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        padded[row, col] = flat
    in_seq = np.arange(padded.shape[1])[None, :] < lengths[:, None]
    if (padded[in_seq] < 0).any():
        bad = np.flatnonzero(((padded < 0) & in_seq).any(axis=1))
        raise ValueError(f"negative token ids in sequence(s) at positions {bad[:5].tolist()}")
    return padded, lengths


def _check_special_tokens(padded: np.ndarray, eos_token_id: int, pad_token_id: int | None) -> None:
    for name, token in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if token is None:
            continue
        hit = (padded == token).any(axis=1)
        if hit.any():
            bad = np.flatnonzero(hit)
            raise ValueError(
                f"{len(bad)} sequence(s) contain `{name}` (={token}), e.g. at positions {bad[:5].tolist()}: "
                "EOS/pad cannot be part of an identifier (tokenise with add_special_tokens=False)"
            )
