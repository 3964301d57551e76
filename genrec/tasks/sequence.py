"""Sequence mode's data: a user's history written as ONE token sequence ``START id(i1) SEP id(i2) SEP … id(in)``,
so a causal model learns every next-item position of the history in one forward pass (as SASRec does).

Token ids are concatenated from each identifier's own ids (the same ids the decoding trie holds), never from
re-tokenising joined text, so training rows and inference prompts see identical tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from genrec.indexing.base import ItemIndex
from genrec.tokens import identifier_token_ids

IGNORE = -100


class SequenceFormat:
    """Writes histories as token sequences for one tokenizer and index.

    Args:
        tokenizer: the tokenizer with the index's identifier tokens added.
        index (`ItemIndex`): gives each item's identifier.
        separator (`str`, defaults to ``""``): text between identifiers (needed when identifiers are plain text,
            such as numbers, so that one identifier cannot run into the next).
    """

    def __init__(self, tokenizer, index: ItemIndex, separator: str = ""):
        if not separator and not index.new_tokens:
            raise ValueError(
                f"a {index.method} index writes identifiers as plain text; sequence mode needs a history_separator "
                "(e.g. ' ') so that one identifier cannot run into the next"
            )
        self.tokenizer = tokenizer
        self.start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.separator = tokenizer(separator, add_special_tokens=False)["input_ids"] if separator else []
        self.item_tokens = dict(zip(index.item_ids, identifier_token_ids(tokenizer, index)))

    def encode(self, history: Sequence[str]) -> list[int]:
        """The inference prompt of a (cleaned, non-empty) history: the model continues it with the next identifier."""
        if not history:
            raise ValueError("cannot recommend from an empty history")
        ids = [self.start]
        for item in history:
            ids += self.item_tokens[item] + self.separator
        return ids

    def windows(self, sequences: Sequence[Sequence[str]], window: int, stride: int | None = None):
        """``(sequence, begin, end, first_target)`` of every training window of at most ``window`` items.

        The first window is the history's first ``window`` items (targets: all but the first); a longer history
        gives further windows, each ending ``stride`` items (default ``window // 2``) after the previous one, whose
        targets are only the items the previous window did not have (positions ``first_target .. end - 1``). So
        every item after the first is a target exactly once, with at least ``window - stride`` items of context (or
        all it has), and no two windows start at the history's start (their shared items would be encoded twice).
        """
        if window < 2:
            raise ValueError(f"window must be >= 2 items, got {window}")
        stride = stride or max(1, window // 2)
        if not 0 < stride < window:
            raise ValueError(f"window stride must be from 1 to window - 1 ({window - 1}) items, got {stride}")
        for seq in sequences:
            if len(seq) < 2:
                continue
            labelled_from = min(len(seq), window)
            yield seq, 0, labelled_from, 1
            for end in list(range(len(seq), labelled_from, -stride))[::-1]:
                yield seq, end - window, end, labelled_from
                labelled_from = end

    def training_rows(
        self, sequences: Sequence[Sequence[str]], window: int, stride: int | None = None
    ) -> dict[str, list[list[int]]]:
        """``input_ids`` and ``labels`` of every training window (:meth:`windows`). Labels cover the identifier
        tokens of target items; the start token and separators are never targets."""
        rows = {"input_ids": [], "labels": []}
        for seq, begin, end, first_target in self.windows(sequences, window, stride):
            ids, labels = [self.start], [IGNORE]
            for position in range(begin, end):
                tokens = self.item_tokens[seq[position]]
                ids += tokens + self.separator
                labels += (tokens if position >= first_target else [IGNORE] * len(tokens)) + [IGNORE] * len(
                    self.separator
                )
            rows["input_ids"].append(ids)
            rows["labels"].append(labels)
        return rows

    def set_training_rows(
        self,
        sequences: Sequence[Sequence[str]],
        window: int,
        item_labels: dict[str, list[int]],
        stride: int | None = None,
    ) -> dict[str, list]:
        """Set mode's windows (:meth:`windows`): ``input_ids`` (the window up to its last target),
        ``query_cuts`` (per target, the number of tokens before it: its queries see exactly the prompt that
        :meth:`encode` writes for the history before it) and ``set_labels`` (per target, ``item_labels[item]``)."""
        rows = {"input_ids": [], "query_cuts": [], "set_labels": []}
        for seq, begin, end, first_target in self.windows(sequences, window, stride):
            ids, cuts, labels = [self.start], [], []
            for position in range(begin, end):
                if position >= first_target:
                    cuts.append(len(ids))
                    labels.append(item_labels[seq[position]])
                ids += self.item_tokens[seq[position]] + self.separator
            rows["input_ids"].append(ids[: cuts[-1]])  # the last target's tokens are no query's context
            rows["query_cuts"].append(cuts)
            rows["set_labels"].append(labels)
        return rows
