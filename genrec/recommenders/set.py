"""The SETRec recommender: every token of the next item's set identifier from one forward pass of learnable queries
(:class:`~genrec.models.set_head.SetRecModel`), every catalog item scored, exact top-K."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genrec.bundle import BundleConfig, BundleParts, register_recommender
from genrec.decoding import SetVocabulary, score_set_items
from genrec.indexing.base import ItemIndexError
from genrec.models.set_head import SetRecModel
from genrec.recommenders.base import GenerativeRecommender

SET_HEAD_NAME = "set_head.safetensors"  # query vectors of a saved bundle


@dataclass
class SetBundleConfig(BundleConfig):
    """:class:`~genrec.bundle.BundleConfig` plus what set decoding needs (saved with ``"decoder": "set"``)."""

    positions: list[str] = field(default_factory=list, metadata={"help": "Set position names of the index."})
    cf_weight: float = field(default=1.0, metadata={"help": "Training loss weight of the CF position."})
    cf_score_weight: float = field(
        default=1.0, metadata={"help": "Weight of the CF token's log-probability in an item's score at decoding."}
    )
    anchor_last_item: bool = field(
        default=False, metadata={"help": "Query inputs add the last history item's token embeddings."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.decoder = "set"
        if self.cf_weight < 0 or self.cf_score_weight < 0:
            raise ValueError(f"cf weights must be >= 0, got {self.cf_weight}, {self.cf_score_weight}")


@register_recommender("set")
class SetRecommender(GenerativeRecommender):
    """Recommends with a :class:`SetRecModel`: one forward pass, every catalog item scored, exact top-K.

    Same interface and bad-input behaviour as the other recommenders (unknown history items dropped or an error,
    empty history an error, index fingerprint checked); ``num_beams`` only caps the ranked list (there is no beam
    search), and ``exclude_seen`` removes history items before the top-K, so ``k`` items come back when the
    catalog allows. ``GenerativeRecommender.from_pretrained`` returns this class for set bundles.

    Example:
        >>> rec = SetRecommender.from_pretrained("runs/setrec_t5/bundle")  # doctest: +SKIP
        >>> rec.recommend([["50", "172", "133"]], k=10, cf_score_weight=0.5)  # doctest: +SKIP
    """

    config_class = SetBundleConfig
    decoding_description = (
        "decoding is SETRec set decoding (one forward pass of learnable queries, every catalog item scored by the "
        "sum of its tokens' log-probabilities)"
    )

    def _build_decoder(self) -> None:
        """Set decoding needs no trie: a (num_items, positions) table of each item's token per position."""
        self.vocabulary = SetVocabulary.from_index(self.index, self.tokenizer)
        if self.vocabulary.positions != list(self.config.positions or self.vocabulary.positions):
            raise ItemIndexError(
                f"bundle positions {self.config.positions} differ from the index's {self.vocabulary.positions}"
            )
        if self.model.num_positions != len(self.vocabulary.positions):
            raise ItemIndexError(
                f"the model has {self.model.num_positions} queries but the index has "
                f"{len(self.vocabulary.positions)} positions"
            )
        self._item_table = self.vocabulary.item_table.to(self.device)  # (I, n)

    def _move_decoder(self, device) -> None:
        self._item_table = self._item_table.to(device)

    @torch.inference_mode()
    def score_items(self, encoded, cf_score_weight: float | None = None) -> torch.Tensor:
        """(B, num_items) item scores: the weighted sum of each item's per-position token log-probabilities."""
        device = self.device
        logits = self.model(encoded["input_ids"].to(device), encoded["attention_mask"].to(device)).logits
        weight = self.config.cf_score_weight if cf_score_weight is None else cf_score_weight
        table = self._item_table.to(device)
        return score_set_items(logits.log_softmax(-1), table, self.vocabulary.position_weights(weight))

    @torch.inference_mode()
    def generate_ranked(
        self, encoded, num_beams: int, seen: Sequence[set[str]] | None = None, cf_score_weight: float | None = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Top ``num_beams`` item positions and scores per row; ``seen`` items are removed before the top-K, and
        ``cf_score_weight`` overrides the bundle's weight of the CF token in item scores."""
        scores = self.score_items(encoded, cf_score_weight)
        for row, items in enumerate(seen or ()):
            scores[row, [self.index.position(i) for i in items]] = float("-inf")
        top = scores.topk(min(num_beams, scores.shape[1]), dim=1)
        positions, values = [], []
        for row_positions, row_values in zip(top.indices.tolist(), top.values.tolist()):
            finite = [i for i, v in enumerate(row_values) if v != float("-inf")]  # seen items are -inf
            positions.append([row_positions[i] for i in finite])
            values.append([row_values[i] for i in finite])
        return positions, values

    # ------------------------------------------------------------------ persistence
    def _model_to_save(self):
        return self.model.backbone

    def _save_extra(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file({"queries": self.model.queries.detach().cpu().contiguous()}, str(directory / SET_HEAD_NAME))

    @classmethod
    def _rebuild_model(cls, path: Path, config: SetBundleConfig, parts: BundleParts) -> SetRecModel:
        from safetensors.torch import load_file

        if not (path / SET_HEAD_NAME).is_file():
            raise FileNotFoundError(f"{path} is a set bundle without its query vectors ({SET_HEAD_NAME})")
        vocabulary = SetVocabulary.from_index(parts.index, parts.tokenizer)
        queries = load_file(str(path / SET_HEAD_NAME))["queries"]
        weights = vocabulary.position_weights(config.cf_weight)
        return SetRecModel(
            parts.backbone, config.kind, vocabulary.token_ids, weights, queries, config.anchor_last_item
        )
