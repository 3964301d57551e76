"""SETRec (Lin et al. 2025, *Order-agnostic Identifier for LLM-based Generative Recommendation*): the whole token
set of the next item comes out of **one** forward pass.

An item of a ``set`` index (:mod:`genrec.indexing.set`) is an unordered set of tokens, one per *position* (a CF token
and several semantic tokens), each position with its own vocabulary. :class:`SetRecModel` appends one learnable
query vector per position after the user's history; an attention mask lets every query see the whole history but
not the other queries, so the queries are decoded simultaneously and independently:

- T5: the queries are the decoder inputs (``decoder_inputs_embeds``) and the decoder self-attention mask is
  diagonal (a 4D additive mask, which transformers passes to the attention layers as-is).
- Causal LMs (Llama, Qwen, SmolLM): ``inputs_embeds = [history ; queries]`` with a 4D additive mask that is causal
  over the history (padding on either side is masked) and lets each query see the real history tokens and itself;
  the queries all sit at the position right after the history.

Each query's hidden state goes through the backbone's own LM head (so tying, T5's rescaling and peft's trainable
new-token rows all apply) and is restricted to its position's token ids: the item tokens added to the vocabulary
are the output parameters being learned. Training is cross-entropy per position on the target item's token, the CF
position weighted by ``cf_weight``. Decoding scores **every catalog item** as the weighted sum of its tokens'
log-probabilities (a gather from a ``(num_items, positions)`` table) and takes an exact ``torch.topk``: no beam
search, and no identifier outside the catalog can come out.

Differences from the paper, on purpose: SETRec grounds query outputs on continuous CF/semantic token embeddings
(an autoencoder trained jointly); here the set tokens are discrete vocabulary tokens from the ``set`` indexer, so
the same index and prompts also serve the trie decoder, which makes the set-vs-sequence comparison like for like.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import Trainer
from transformers.utils import ModelOutput

from genrec.indexing.base import ItemIndex, ItemIndexError
from genrec.models import CAUSAL, SEQ2SEQ
from genrec.recommender import (
    ADAPTER_DIR,
    CONFIG_NAME,
    INDEX_NAME,
    ITEMS_NAME,
    BundleConfig,
    GenerativeRecommender,
    Recommendation,
    load_bundle_parts,
)
from genrec.tasks import Prompter
from genrec.tokens import check_tokenizer_covers
from genrec.utils import atomic_directory

logger = logging.getLogger(__name__)

SET_DECODER = "set"
SET_HEAD_NAME = "set_head.safetensors"  # query vectors of a saved bundle
TRAINABLE_NAME = "setrec_trainable.safetensors"  # trainer checkpoints: the trainable parameters only
IDENTIFIER_TASKS = ("seqrec", "item2index", "titles2index")  # tasks whose target is an item identifier
_TOKEN = re.compile(r"<[^<>]+>")


# ---------------------------------------------------------------------------------------------- index → tables
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
            found = [local.get(tok) for tok in _TOKEN.findall(ident)]
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


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class SetRecOutput(ModelOutput):
    """``loss`` (scalar, when ``set_labels`` are given) and ``logits`` (B, positions, max position vocab), with
    ``-inf`` in the columns past a position's vocabulary."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def causal_set_mask(attention_mask: torch.Tensor, num_queries: int, dtype: torch.dtype):
    """4D additive mask and position ids for ``[history ; queries]`` on a causal LM.

    History rows are causal over real history tokens (pad keys are masked, so either padding side works; every row
    sees itself, so no row is fully masked); query rows see every real history token and themselves only. Queries
    all take the position right after the history.

    Returns:
        mask (`torch.Tensor` of shape `(B, 1, L + n, L + n)`, 0 where allowed, ``finfo(dtype).min`` elsewhere),
        position_ids (`torch.LongTensor` of shape `(B, L + n)`).
    """
    keep = attention_mask.bool()  # (B, L)
    batch, length = keep.shape
    total = length + num_queries
    device = keep.device
    allowed = torch.zeros(batch, total, total, dtype=torch.bool, device=device)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    allowed[:, :length, :length] = causal[None] & keep[:, None, :]
    allowed[:, :length, :length] |= torch.eye(length, dtype=torch.bool, device=device)[None]
    allowed[:, length:, :length] = keep[:, None, :]
    allowed[:, length:, length:] = torch.eye(num_queries, dtype=torch.bool, device=device)[None]
    mask = torch.zeros(batch, 1, total, total, dtype=dtype, device=device)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    history_positions = (keep.long().cumsum(1) - 1).clamp(min=0)  # (B, L)
    query_positions = keep.long().sum(1, keepdim=True).expand(batch, num_queries)  # (B, n)
    return mask, torch.cat([history_positions, query_positions], dim=1)


def diagonal_query_mask(batch: int, num_queries: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(B, 1, n, n) additive T5 decoder self-attention mask in which each query sees only itself."""
    mask = torch.full((num_queries, num_queries), torch.finfo(dtype).min, dtype=dtype, device=device)
    mask.fill_diagonal_(0.0)
    return mask.expand(batch, 1, num_queries, num_queries)


class SetRecModel(nn.Module):
    """A HF backbone plus one learnable query vector per set position, decoded in one forward pass.

    Args:
        backbone (`PreTrainedModel` or `PeftModel`): T5 (``kind="seq2seq"``) or a causal LM (``kind="causal"``),
            its vocabulary already extended with the set tokens.
        kind (`str`): ``"seq2seq"`` or ``"causal"``.
        position_token_ids (`list[list[int]]`): per position, the token ids of its vocabulary.
        position_weights (`list[float]`, *optional*): loss weight of each position (default all 1).
        queries (`torch.Tensor` of shape `(positions, hidden)`, *optional*): initial query vectors; by default
            Gaussian with the standard deviation of the input embeddings, so they start at the embeddings' scale.

    Example:
        >>> weights = vocab.position_weights(cf_weight=2.0)  # doctest: +SKIP
        >>> model = SetRecModel(t5, "seq2seq", vocab.token_ids, weights)  # doctest: +SKIP
        >>> model(input_ids, attention_mask, set_labels=labels).loss  # doctest: +SKIP
    """

    def __init__(self, backbone, kind: str, position_token_ids, position_weights=None, queries=None):
        super().__init__()
        if kind not in (SEQ2SEQ, CAUSAL):
            raise ValueError(f"kind must be {SEQ2SEQ!r} or {CAUSAL!r}, got {kind!r}")
        if not position_token_ids or any(len(ids) == 0 for ids in position_token_ids):
            raise ValueError("every set position needs a non-empty vocabulary")
        n = len(position_token_ids)
        position_weights = [1.0] * n if position_weights is None else [float(w) for w in position_weights]
        if len(position_weights) != n or min(position_weights) < 0 or sum(position_weights) <= 0:
            raise ValueError(f"need {n} non-negative position weights with a positive sum, got {position_weights}")
        self.backbone = backbone
        self.kind = kind
        embeddings = backbone.get_input_embeddings().weight
        if queries is None:
            queries = torch.randn(n, embeddings.shape[1]) * embeddings.detach().float().std()
        if tuple(queries.shape) != (n, embeddings.shape[1]):
            raise ValueError(f"queries must have shape {(n, embeddings.shape[1])}, got {tuple(queries.shape)}")
        self.queries = nn.Parameter(queries.detach().clone().to(torch.float32))
        width = max(len(ids) for ids in position_token_ids)
        vocab = torch.zeros(n, width, dtype=torch.long)
        valid = torch.zeros(n, width, dtype=torch.bool)
        for p, ids in enumerate(position_token_ids):
            vocab[p, : len(ids)] = torch.tensor(ids)
            valid[p, : len(ids)] = True
        self.register_buffer("vocab_ids", vocab, persistent=False)  # (n, Vmax) token id of each local index
        self.register_buffer("vocab_valid", valid, persistent=False)  # (n, Vmax)
        self.register_buffer("position_weights", torch.tensor(position_weights), persistent=False)  # (n,)

    @property
    def device(self) -> torch.device:
        return self.queries.device

    @property
    def config(self):
        """The backbone's config (what transformers' Pipeline reads of a model)."""
        return self.backbone.config

    @property
    def num_positions(self) -> int:
        return self.queries.shape[0]

    def query_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits (B, n, V) of the n queries after the history, from one forward pass."""
        batch, n = input_ids.shape[0], self.num_positions
        embed = self.backbone.get_input_embeddings()
        dtype = embed.weight.dtype
        queries = self.queries.to(dtype).unsqueeze(0).expand(batch, -1, -1)  # (B, n, d)
        if self.kind == SEQ2SEQ:
            out = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_inputs_embeds=queries,
                decoder_attention_mask=diagonal_query_mask(batch, n, dtype, input_ids.device),
                use_cache=False,
            )
            return out.logits  # (B, n, V)
        mask, position_ids = causal_set_mask(attention_mask, n, dtype)
        inputs_embeds = torch.cat([embed(input_ids), queries], dim=1)  # (B, L + n, d)
        out = self.backbone(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=n,
        )
        return out.logits[:, -n:]  # (B, n, V)

    def forward(self, input_ids, attention_mask, set_labels=None) -> SetRecOutput:
        """Per-position logits restricted to each position's vocabulary; weighted cross-entropy if ``set_labels``
        (B, n) local token indices are given."""
        full = self.query_logits(input_ids, attention_mask)  # (B, n, V)
        index = self.vocab_ids.unsqueeze(0).expand(full.shape[0], -1, -1)  # (B, n, Vmax)
        logits = full.gather(2, index).float().masked_fill(~self.vocab_valid, float("-inf"))  # (B, n, Vmax)
        loss = None
        if set_labels is not None:
            per_position = nn.functional.cross_entropy(
                logits.flatten(0, 1), set_labels.flatten(), reduction="none"
            ).view_as(set_labels)  # (B, n)
            weights = self.position_weights
            loss = (per_position * weights).sum(1).mean() / weights.sum()
        return SetRecOutput(loss=loss, logits=logits)

    # ------------------------------------------------------------------ trainer checkpoints
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable parameters (LoRA, new-token rows, queries; everything for a scratch T5), tied ones once."""
        return {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}

    def save_trainable(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        Path(directory).mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state(), str(Path(directory) / TRAINABLE_NAME))

    def load_trainable(self, directory: str | Path) -> None:
        """Copy a :meth:`save_trainable` checkpoint into this model (same architecture)."""
        from safetensors.torch import load_file

        path = Path(directory) / TRAINABLE_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a SETRec checkpoint (no {TRAINABLE_NAME})")
        params = dict(self.named_parameters())
        state = load_file(str(path))
        missing = [name for name in state if name not in params]
        if missing:
            raise ValueError(f"checkpoint {directory} has parameters this model lacks, e.g. {missing[:3]}")
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor)


# ---------------------------------------------------------------------------------------------- recommender
@dataclass
class SetBundleConfig(BundleConfig):
    """:class:`~genrec.recommender.BundleConfig` plus what set decoding needs (saved with ``"decoder": "set"``)."""

    decoder: str = field(default=SET_DECODER, metadata={"help": "Always 'set': the bundle is decoded by SETRec."})
    positions: list[str] = field(default_factory=list, metadata={"help": "Set position names of the index."})
    cf_weight: float = field(default=1.0, metadata={"help": "Training loss weight of the CF position."})
    cf_score_weight: float = field(
        default=1.0, metadata={"help": "Weight of the CF token's log-probability in an item's score at decoding."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.decoder != SET_DECODER:
            raise ValueError(f"a SetBundleConfig has decoder {SET_DECODER!r}, got {self.decoder!r}")
        if self.cf_weight < 0 or self.cf_score_weight < 0:
            raise ValueError(f"cf weights must be >= 0, got {self.cf_weight}, {self.cf_score_weight}")


class SetRecommender(GenerativeRecommender):
    """Recommends with a :class:`SetRecModel`: one forward pass, every catalog item scored, exact top-K.

    Same interface and bad-input behaviour as :class:`~genrec.recommender.GenerativeRecommender` (unknown history
    items dropped or an error, empty history an error, index fingerprint checked); ``num_beams`` is accepted and
    ignored (there is no beam search). ``GenerativeRecommender.from_pretrained`` dispatches here for set bundles.

    Example:
        >>> rec = SetRecommender.from_pretrained("runs/setrec_t5/bundle")  # doctest: +SKIP
        >>> rec.recommend([["50", "172", "133"]], k=10)  # doctest: +SKIP
    """

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
        self._item_table = self.vocabulary.item_table  # (I, n), moved to the model's device on first use

    def to(self, device) -> SetRecommender:
        self.model.to(device)
        self._item_table = self._item_table.to(device)
        return self

    def score_weights(self, cf_score_weight: float | None = None) -> torch.Tensor:
        weight = self.config.cf_score_weight if cf_score_weight is None else cf_score_weight
        return torch.tensor(self.vocabulary.position_weights(weight))

    @torch.inference_mode()
    def score_items(self, encoded, cf_score_weight: float | None = None) -> torch.Tensor:
        """(B, num_items) item scores: the weighted sum of each item's per-position token log-probabilities."""
        device = self.device
        logits = self.model(encoded["input_ids"].to(device), encoded["attention_mask"].to(device)).logits
        log_probs = logits.log_softmax(-1)  # (B, n, Vmax)
        if self._item_table.device != device:
            self._item_table = self._item_table.to(device)
        table = self._item_table  # (I, n)
        weights = self.score_weights(cf_score_weight).tolist()
        scores = torch.zeros(log_probs.shape[0], table.shape[0], device=device)  # (B, I)
        for p, weight in enumerate(weights):
            if weight:
                scores += weight * log_probs[:, p].index_select(1, table[:, p])  # (B, I)
        return scores

    @torch.inference_mode()
    def generate_ranked(self, encoded, num_beams: int) -> tuple[list[list[int]], list[list[float]]]:
        """Top ``num_beams`` item positions and scores per row (the interface the pipeline calls)."""
        scores = self.score_items(encoded)
        top = scores.topk(min(num_beams, scores.shape[1]), dim=1)
        return top.indices.tolist(), top.values.tolist()

    @torch.inference_mode()
    def recommend_scored(
        self,
        histories: Sequence[Sequence[str]],
        k: int = 10,
        num_beams: int | None = None,
        exclude_seen: bool = False,
        batch_size: int = 32,
        unknown: str = "drop",
        cf_score_weight: float | None = None,
    ) -> list[list[Recommendation]]:
        """Exact top-``k`` :class:`Recommendation` lists (best first) for each history.

        Args:
            k: items per history. num_beams: ignored (accepted for the harness protocol).
            exclude_seen: rank only items outside the history (still exactly ``k`` when the catalog allows).
            unknown: ``"drop"`` unknown history items (logged with a count) or ``"error"``.
            cf_score_weight: override the bundle's weight of the CF token in item scores.
        Raises:
            ValueError: a history is empty (after dropping unknown items).
        """
        del num_beams
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        cleaned = self.clean_histories(histories, unknown)

        self.model.eval()
        position_of = {item: i for i, item in enumerate(self.index.item_ids)} if exclude_seen else {}
        results: list[list[Recommendation]] = []
        for start in range(0, len(cleaned), batch_size):
            batch = cleaned[start : start + batch_size]
            scores = self.score_items(self.encode(batch), cf_score_weight)  # (B, I)
            if exclude_seen:
                for row, history in enumerate(batch):
                    scores[row, [position_of[i] for i in set(history)]] = float("-inf")
            top = scores.topk(min(k, scores.shape[1]), dim=1)
            for history, positions, values in zip(batch, top.indices.tolist(), top.values.tolist()):
                finite = [i for i, v in enumerate(values) if v != float("-inf")]  # excluded (seen) items are -inf
                positions, values = [positions[i] for i in finite], [values[i] for i in finite]
                results.append(self.to_recommendations(history, positions, values, k, exclude_seen=False))
        return results

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path, model_card: str | None = None) -> Path:
        """Write the bundle atomically: backbone (full weights, or ``adapter/`` + base config), query vectors,
        tokenizer, item index, titles, ``genrec_config.json`` (``"decoder": "set"``) and a model card."""
        from safetensors.torch import save_file

        from genrec.model_card import render_model_card

        path = Path(path)
        backbone = self.model.backbone
        with atomic_directory(path) as tmp:
            if self.config.adapter:
                backbone.save_pretrained(tmp / ADAPTER_DIR)
                backbone.get_base_model().config.save_pretrained(tmp)
            else:
                backbone.save_pretrained(tmp)
            save_file({"queries": self.model.queries.detach().cpu().contiguous()}, str(tmp / SET_HEAD_NAME))
            self.tokenizer.save_pretrained(tmp)
            self.index.save(tmp / INDEX_NAME)
            (tmp / ITEMS_NAME).write_text(json.dumps(self.titles, ensure_ascii=False, sort_keys=True))
            (tmp / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2, sort_keys=True))
            card = model_card or render_model_card(self.config, self.index).replace(
                "decoding is trie-constrained, so",
                "decoding is SETRec set decoding (one forward pass of learnable queries, every catalog item scored "
                "by the sum of its tokens' log-probabilities), so",
            )
            (tmp / "README.md").write_text(card)
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | Path, index: ItemIndex | str | None = None, device: str | None = None, dtype=None
    ) -> SetRecommender:
        """Load a set bundle; a given ``index`` must be the one the model was trained on."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a genrec bundle (no {CONFIG_NAME})")
        config = SetBundleConfig(**json.loads((path / CONFIG_NAME).read_text()))
        if not (path / SET_HEAD_NAME).is_file():
            raise FileNotFoundError(f"{path} is a set bundle without its query vectors ({SET_HEAD_NAME})")
        index, titles, tokenizer, backbone = load_bundle_parts(path, config, index, dtype)
        vocabulary = SetVocabulary.from_index(index, tokenizer)
        queries = load_file(str(path / SET_HEAD_NAME))["queries"]
        model = SetRecModel(
            backbone, config.kind, vocabulary.token_ids, vocabulary.position_weights(config.cf_weight), queries
        )
        if device:
            model.to(device)
        model.eval()
        return cls(model, tokenizer, index, config, titles)


# ---------------------------------------------------------------------------------------------- training glue
def encode_set_pairs(dataset, tokenizer, index: ItemIndex, vocabulary: SetVocabulary, max_prompt_tokens: int = 1024):
    """(prompt, target identifier) rows → ``input_ids`` (the prompt tokenised as at inference) and ``set_labels``
    (the target item's local token index at each position)."""
    row_of = {ident: row for row, ident in enumerate(index.identifiers)}
    table = vocabulary.item_table.tolist()
    tokenizer.truncation_side = "left"

    def encode(batch):
        ids = tokenizer(batch["prompt"], truncation=True, max_length=max_prompt_tokens)["input_ids"]
        return {"input_ids": ids, "set_labels": [table[row_of[t]] for t in batch["target"]]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenising")


def set_training_dataset(
    prompter: Prompter,
    split,
    tasks: Sequence[str],
    tokenizer,
    vocabulary: SetVocabulary,
    seed: int = 0,
    max_examples: int | None = None,
    max_prompt_tokens: int = 1024,
):
    """Training rows of ``tasks`` (built from training interactions only) encoded by :func:`encode_set_pairs`.
    Only tasks whose target is an identifier can train a set model."""
    from genrec.tasks import build_task_dataset

    bad = [t for t in tasks if t not in IDENTIFIER_TASKS]
    if bad:
        raise ValueError(f"set decoding predicts identifiers; tasks {bad} have text targets (use {IDENTIFIER_TASKS})")
    dataset = build_task_dataset(prompter, split, tasks, seed=seed)
    if max_examples and len(dataset) > max_examples:
        dataset = dataset.select(range(max_examples))
    return encode_set_pairs(dataset, tokenizer, prompter.index, vocabulary, max_prompt_tokens)


@dataclass
class SetCollator:
    """Pads ``input_ids`` with the tokenizer (its padding side) and stacks ``set_labels``."""

    tokenizer: object

    def __call__(self, features: list[dict]) -> dict:
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="pt")
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "set_labels": torch.tensor([f["set_labels"] for f in features], dtype=torch.long),
        }


def _set_trainer_class():
    """``Trainer`` + the harness evaluation; checkpoints hold the trainable parameters of the SetRecModel."""
    from genrec.training import HarnessEvaluationMixin

    class SetRecTrainer(HarnessEvaluationMixin, Trainer):
        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            output_dir = output_dir or self.args.output_dir
            if self.args.should_save:
                self.model.save_trainable(output_dir)
                if self.processing_class is not None:
                    self.processing_class.save_pretrained(output_dir)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            (model or self.model).load_trainable(resume_from_checkpoint)

        def _load_best_model(self) -> None:
            logger.info("loading the best checkpoint %s", self.state.best_model_checkpoint)
            self.model.load_trainable(self.state.best_model_checkpoint)

    return SetRecTrainer


def make_set_trainer(cfg, model: SetRecModel, tokenizer, train_dataset, eval_dataset, split, recommender):
    """The ``Trainer`` for a set recipe: validation NDCG@10 from the harness picks the best checkpoint and stops
    training early, as for the trie recipes."""
    from transformers import EarlyStoppingCallback, TrainingArguments

    from genrec.training import attach_harness, training_arguments

    args = TrainingArguments(**training_arguments(cfg))
    trainer = _set_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=SetCollator(tokenizer),
        processing_class=tokenizer,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
    )
    return attach_harness(trainer, cfg, split, recommender)


def run_set_recipe(cfg, command: str | None = None, data=None) -> tuple[SetRecommender, dict]:
    """Train a SETRec recipe (``cfg.decoder == "set"``) end to end: data → set index → backbone + queries →
    ``Trainer`` → test metrics → bundle at ``output_dir/bundle``. Called by :func:`genrec.training.run_recipe`."""
    from genrec.training import (
        build_model,
        bundle_fields,
        prepare_recipe,
        train_evaluate_save,
        validation_pairs,
    )

    data, split, index, titles, prompter = prepare_recipe(cfg, data)
    backbone, tokenizer, kind, adapter = build_model(cfg, data, index, prompter)
    if kind == CAUSAL:
        tokenizer.padding_side = "left"
    vocabulary = SetVocabulary.from_index(index, tokenizer)
    model = SetRecModel(backbone, kind, vocabulary.token_ids, vocabulary.position_weights(cfg.set_cf_weight))

    train_dataset = set_training_dataset(
        prompter, split, cfg.task_list, tokenizer, vocabulary, cfg.seed, cfg.max_train_examples
    )
    eval_dataset = encode_set_pairs(validation_pairs(prompter, split, index), tokenizer, index, vocabulary)

    bundle_config = SetBundleConfig(
        **bundle_fields(cfg, kind, index, adapter, data.name, command),
        positions=vocabulary.positions,
        cf_weight=cfg.set_cf_weight,
        cf_score_weight=cfg.set_cf_score_weight,
    )
    recommender = SetRecommender(model, tokenizer, index, bundle_config, titles)
    trainer = make_set_trainer(cfg, model, tokenizer, train_dataset, eval_dataset, split, recommender)

    return train_evaluate_save(cfg, trainer, recommender, split)
