"""Alignment tasks (LC-Rec) as prompt templates turned into ``datasets.Dataset`` (prompt, target) pairs.

Tasks:
- ``seqrec``: history identifiers → next identifier (sequential recommendation; the task used at inference).
- ``item2index``: item title/text → identifier (explicit index–language alignment).
- ``index2item``: identifier → title (explicit alignment, the other direction).
- ``titles2index``: history given as titles → next identifier (implicit alignment).
- ``history2title``: history identifiers → next item's title (implicit alignment).

Template styles: ``tiger`` (the history alone, for small models trained from scratch), ``sequence`` (the same, for
sequence mode), ``p5`` (short P5-style
instructions, for T5), ``lcrec`` (instruction prompts for causal LLMs).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from datasets import Dataset

from genrec.data.split import LeaveOneOutSplit
from genrec.indexing.base import ItemIndex

logger = logging.getLogger(__name__)

TASKS = ("seqrec", "item2index", "index2item", "titles2index", "history2title")

TEMPLATES: dict[str, dict[str, str]] = {
    "tiger": {
        "seqrec": "{history}",
        "item2index": "item: {title}",
        "index2item": "title of {identifier}",
        "titles2index": "history: {history_titles}",
        "history2title": "next title: {history}",
    },
    # sequence mode: the history alone; genrec.tasks.sequence writes it as token ids (see SequenceFormat)
    "sequence": {
        "seqrec": "{history}",
        "item2index": "item: {title}",
        "index2item": "title of {identifier}",
        "titles2index": "history: {history_titles}",
        "history2title": "next title: {history}",
    },
    "p5": {
        "seqrec": "Given the interaction history {history}, predict the next item:",
        "item2index": "What is the identifier of the item titled {title}?",
        "index2item": "What is the title of item {identifier}?",
        "titles2index": "Given the watched items {history_titles}, predict the next item:",
        "history2title": "Given the interaction history {history}, what is the title of the next item?",
    },
    "lcrec": {
        "seqrec": "The user has interacted with these items in order: {history}. Which item comes next?\nAnswer: ",
        "item2index": 'An item is titled "{title}". What is its identifier?\nAnswer: ',
        "index2item": "What is the title of the item {identifier}?\nAnswer: ",
        "titles2index": "The user has interacted with these items in order: {history_titles}. "
        "Which item comes next?\nAnswer: ",
        "history2title": "The user has interacted with these items in order: {history}. "
        "What is the title of the next item?\nAnswer: ",
    },
}


@dataclass
class Prompter:
    """Formats prompts for one template style; the same object builds training data and inference prompts.

    Args:
        index (`ItemIndex`): gives each item's identifier.
        titles (`dict[str, str]`): item id → title (for the title tasks).
        style (`str`, defaults to ``"p5"``): one of ``TEMPLATES``.
        max_history (`int`, defaults to 20): most recent items kept in a prompt.
        max_title_history (`int`, defaults to 10): most recent items kept when the history is written as titles.
        separator (`str`, defaults to ``", "``): between history items.
        max_targets_per_user (`int`, *optional*): training examples from each user's last ``max_targets_per_user``
            targets only (None: every prefix).
        history_crop (`float`, defaults to 0): fraction of training examples whose history is cut to its last L
            items, L uniform over 1..min(its length, max_history), so a model also learns to predict from the
            newest items alone.
        seed (`int`, defaults to 0): seeds which examples are cut and to what length.
    """

    index: ItemIndex
    titles: dict[str, str]
    style: str = "p5"
    max_history: int = 20
    max_title_history: int = 10
    separator: str = ", "
    max_targets_per_user: int | None = None
    history_crop: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.style not in TEMPLATES:
            raise ValueError(f"unknown template style {self.style!r}; available: {sorted(TEMPLATES)}")
        if self.max_history < 1:
            raise ValueError(f"max_history must be ≥ 1, got {self.max_history}")
        if not 0.0 <= self.history_crop <= 1.0:
            raise ValueError(f"history_crop must be a fraction from 0 to 1, got {self.history_crop}")

    def _history(self, history: Sequence[str]) -> str:
        return self.separator.join(self.index.identifier(i) for i in history[-self.max_history :])

    def _titles(self, history: Sequence[str]) -> str:
        return self.separator.join(self.titles.get(i, "") for i in history[-self.max_title_history :])

    def seqrec_prompt(self, history: Sequence[str]) -> str:
        """The inference prompt: ``history`` must be non-empty and contain only indexed items."""
        if not history:
            raise ValueError("cannot recommend from an empty history")
        return TEMPLATES[self.style]["seqrec"].format(history=self._history(history))

    def examples(self, task: str, split: LeaveOneOutSplit) -> list[tuple[str, str, str]]:
        """(prompt, target, last history item) rows of ``task`` built from training data only (plus item text for
        item tasks, whose last item is ""): the last item is what a T5 with ``decoder_last_item`` starts from."""
        template = TEMPLATES[self.style][task]
        if task in ("item2index", "index2item"):
            pairs = []
            for item, ident in zip(self.index.item_ids, self.index.identifiers):
                title = self.titles.get(item, "")
                if not title:
                    continue
                if task == "item2index":
                    pairs.append((template.format(title=title), ident, ""))
                else:
                    pairs.append((template.format(identifier=ident), title, ""))
            return pairs
        pairs = []
        longest = max(self.max_history, self.max_title_history)
        rng = random.Random(self.seed)
        for ex in split.train_examples(max_history=longest, last_targets=self.max_targets_per_user):
            if self.history_crop and rng.random() < self.history_crop:
                length = rng.randint(1, min(len(ex.history), self.max_history))
                ex = replace(ex, history=ex.history[-length:])
            last = ex.history[-1]
            if task == "seqrec":
                prompt = template.format(history=self._history(ex.history))
                pairs.append((prompt, self.index.identifier(ex.target), last))
            elif task == "titles2index":
                prompt = template.format(history_titles=self._titles(ex.history))
                pairs.append((prompt, self.index.identifier(ex.target), last))
            elif task == "history2title":
                prompt = template.format(history=self._history(ex.history))
                pairs.append((prompt, self.titles.get(ex.target, ""), last))
            else:
                raise ValueError(f"unknown task {task!r}; available: {TASKS}")
        return pairs


def build_task_dataset(
    prompter: Prompter, split: LeaveOneOutSplit, tasks: Sequence[str] = ("seqrec",), seed: int = 0
) -> Dataset:
    """A shuffled ``Dataset`` with columns ``prompt``, ``target``, ``last_item``, ``task`` mixing ``tasks``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; available: {TASKS}")
    rows = {"prompt": [], "target": [], "last_item": [], "task": []}
    for task in tasks:
        pairs = prompter.examples(task, split)
        logger.info("task %s: %d examples", task, len(pairs))
        for prompt, target, last in pairs:
            rows["prompt"].append(prompt)
            rows["target"].append(target)
            rows["last_item"].append(last)
            rows["task"].append(task)
    if not rows["prompt"]:
        raise ValueError("the task mixture produced no training examples")
    return Dataset.from_dict(rows).shuffle(seed=seed)
