"""The SETRec model (Lin et al. 2025, *Order-agnostic Identifier for LLM-based Generative Recommendation*): the whole
token set of the next item comes out of **one** forward pass.

An item of a ``set`` index (:mod:`genrec.indexing.set`) is an unordered set of tokens, one per *position* (a CF token
and several semantic tokens), each position with its own vocabulary. :class:`SetRecModel` appends one learnable
query vector per position after the user's history; an attention mask lets every query see the whole history but
not the other queries, so the queries are decoded simultaneously and independently:

- T5: the queries are the decoder inputs (``decoder_inputs_embeds``) and the decoder self-attention mask is
  diagonal (a 4D additive mask, which transformers passes to the attention layers as-is).
- Causal LMs (Llama, Qwen, SmolLM): ``inputs_embeds = [history ; queries]`` with a 4D additive mask that is causal
  over the history (padding on either side is masked) and lets each query see the real history tokens and itself;
  the queries all sit at the position right after the history. In training, one row can carry a group of queries
  per target item of a history window (``query_cuts``), each group seeing only the tokens before its item, so one
  forward pass trains every next-item position (:meth:`SetRecModel.window_logits`).

Each query's hidden state goes through the backbone's own LM head (so tying, T5's rescaling and peft's trainable
new-token rows all apply; windows on a tied head multiply by the position vocabularies' rows alone, the same numbers
without the full-vocabulary product) and is restricted to its position's token ids: the item tokens added to the
vocabulary are the output parameters being learned. Training is cross-entropy per position on the target item's
token, the CF position weighted by ``cf_weight``. Decoding scores **every catalog item** as the weighted sum of its
tokens' log-probabilities (a gather from a ``(num_items, positions)`` table) and takes an exact ``torch.topk``: no
beam search, and no identifier outside the catalog can come out.

Differences from the paper, on purpose: SETRec grounds query outputs on continuous CF/semantic token embeddings
(an autoencoder trained jointly); here the set tokens are discrete vocabulary tokens from the ``set`` indexer, so
the same index and prompts also serve the trie decoder, which makes the set-vs-sequence comparison like for like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers.utils import ModelOutput

from genrec.models.backbones import CAUSAL, SEQ2SEQ

TRAINABLE_NAME = "setrec_trainable.safetensors"  # trainer checkpoints: the trainable parameters only


@dataclass
class SetRecOutput(ModelOutput):
    """``loss`` (scalar, when ``set_labels`` are given) and ``logits`` (B, positions, max position vocab), with
    ``-inf`` in the columns past a position's vocabulary."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def causal_set_mask(attention_mask: torch.Tensor, num_queries: int, dtype: torch.dtype, query_cuts=None):
    """4D additive mask and position ids for ``[history ; query groups]`` on a causal LM.

    History rows are causal over real history tokens (pad keys are masked, so either padding side works; every row
    sees itself, so no row is fully masked). Without ``query_cuts`` there is one group of ``num_queries`` queries
    that sees every real history token; with ``query_cuts`` (B, G) group ``g`` sees the real tokens before column
    ``query_cuts[b, g]`` (0: a padding group), so one row trains the next item of every prefix of a history (set
    mode's windows). Each query sees itself and no other query, and takes the position right after the tokens it
    sees, exactly as at inference.

    Returns:
        mask (`torch.Tensor` of shape `(B, 1, L + G * n, L + G * n)`, 0 where allowed, ``finfo(dtype).min``
        elsewhere), position_ids (`torch.LongTensor` of shape `(B, L + G * n)`).
    """
    keep = attention_mask.bool()  # (B, L)
    batch, length = keep.shape
    device = keep.device
    if query_cuts is None:
        query_cuts = torch.full((batch, 1), length, dtype=torch.long, device=device)
    cuts = query_cuts.to(device).repeat_interleave(num_queries, dim=1)  # (B, Q): each group's cut, per query
    queries = cuts.shape[1]
    total = length + queries
    allowed = torch.zeros(batch, total, total, dtype=torch.bool, device=device)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    allowed[:, :length, :length] = causal[None] & keep[:, None, :]
    allowed[:, :length, :length] |= torch.eye(length, dtype=torch.bool, device=device)[None]
    before_cut = torch.arange(length, device=device)[None, None, :] < cuts[:, :, None]  # (B, Q, L)
    allowed[:, length:, :length] = before_cut & keep[:, None, :]
    allowed[:, length:, length:] = torch.eye(queries, dtype=torch.bool, device=device)[None]
    mask = torch.zeros(batch, 1, total, total, dtype=dtype, device=device)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    seen = keep.long().cumsum(1)  # (B, L) real tokens up to each column
    history_positions = (seen - 1).clamp(min=0)
    query_positions = seen.gather(1, (cuts - 1).clamp(min=0)) * (cuts > 0)  # (B, Q) real tokens before the cut
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
            Gaussian with the standard deviation of the input embeddings, so they start at the embeddings' scale
            (near zero with ``anchor_last_item``, where they are offsets).
        anchor_last_item (`bool`, defaults to `False`): histories written as the items' tokens alone (causal LMs:
            ``template_style: sequence``; T5: ``tiger``, followed by its end-of-sequence token): query p's input is
            its vector plus the embedding of the last history item's p-th token, so before any training each query
            reads out like that token (with identifier rows started at co-occurrence vectors, a tied output layer
            then ranks the last item's neighbours high) instead of starting from nothing. It also gives a T5
            decoder a direct path from the newest item, which it otherwise sees only through cross-attention.

    Example:
        >>> weights = vocab.position_weights(cf_weight=2.0)  # doctest: +SKIP
        >>> model = SetRecModel(t5, "seq2seq", vocab.token_ids, weights)  # doctest: +SKIP
        >>> model(input_ids, attention_mask, set_labels=labels).loss  # doctest: +SKIP
    """

    def __init__(
        self, backbone, kind: str, position_token_ids, position_weights=None, queries=None, anchor_last_item=False
    ):
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
        self.anchor_last_item = anchor_last_item
        embeddings = backbone.get_input_embeddings().weight
        if queries is None:
            scale = embeddings.detach().float().std() * (1e-2 if anchor_last_item else 1.0)
            queries = torch.randn(n, embeddings.shape[1]) * scale
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
        columns = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
        cuts = (attention_mask.long() * columns).amax(1, keepdim=True)  # (B, 1): just after the last real token
        if self.kind == SEQ2SEQ:
            if self.anchor_last_item:
                ends_with_eos = input_ids.gather(1, (cuts - 1).clamp(min=0)) == self.backbone.config.eos_token_id
                queries = queries + self._last_item_embeddings(input_ids, cuts - ends_with_eos.long())
            out = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_inputs_embeds=queries,
                decoder_attention_mask=diagonal_query_mask(batch, n, dtype, input_ids.device),
                use_cache=False,
            )
            return out.logits  # (B, n, V)
        inputs_embeds, mask, position_ids = self._causal_inputs(input_ids, attention_mask, cuts)
        out = self.backbone(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=n,
        )
        return out.logits[:, -n:]  # (B, n, V)

    def _causal_inputs(self, input_ids, attention_mask, query_cuts):
        """``inputs_embeds`` ``[history ; G query groups]``, 4D mask and position ids for a causal LM. A query's
        input is its learned vector, plus with ``anchor_last_item`` the embedding of the token at its position among
        the n tokens just before its group's cut (the last item's tokens)."""
        batch, groups, n = input_ids.shape[0], query_cuts.shape[1], self.num_positions
        embed = self.backbone.get_input_embeddings()
        queries = self.queries.to(embed.weight.dtype).repeat(groups, 1).unsqueeze(0).expand(batch, -1, -1)
        if self.anchor_last_item:
            queries = queries + self._last_item_embeddings(input_ids, query_cuts)
        mask, position_ids = causal_set_mask(attention_mask, n, embed.weight.dtype, query_cuts)
        return torch.cat([embed(input_ids), queries], dim=1), mask, position_ids

    def _last_item_embeddings(self, input_ids, item_ends) -> torch.Tensor:
        """(B, G * n, d): per query, the input embedding of the token at its position among the n tokens just
        before column ``item_ends[:, g]`` (B, G), i.e. the last history item's tokens."""
        n = self.num_positions
        last_item = item_ends[:, :, None] - n + torch.arange(n, device=item_ends.device)  # (B, G, n)
        return self.backbone.get_input_embeddings()(input_ids.gather(1, last_item.clamp(min=0).flatten(1)))

    def window_logits(self, input_ids, attention_mask, query_cuts) -> torch.Tensor:
        """(B, G, n, Vmax) logits, restricted to each position's vocabulary, of G query groups per row (a set-mode
        window: group g predicts the item after the first ``query_cuts[:, g]`` tokens), in one forward pass of a
        causal LM. A tied output layer is applied to the position vocabularies only (the rows of the input
        embedding, new-token updates included); an untied one to the whole vocabulary, then gathered."""
        if self.kind != CAUSAL:
            raise ValueError("query_cuts (set-mode windows) need a causal backbone")
        batch, groups, n = input_ids.shape[0], query_cuts.shape[1], self.num_positions
        inputs_embeds, mask, position_ids = self._causal_inputs(input_ids, attention_mask, query_cuts)
        decoder = getattr(self.backbone, "get_base_model", lambda: self.backbone)().get_decoder()
        hidden = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state[:, -groups * n :]
        hidden = hidden.reshape(batch, groups, n, -1)
        if self.tied_output:
            return torch.einsum("bgnd,nvd->bgnv", hidden, self.backbone.get_input_embeddings()(self.vocab_ids))
        full = self.backbone.get_output_embeddings()(hidden)  # (B, G, n, V)
        return full.gather(3, self.vocab_ids.expand(batch, groups, -1, -1))

    @property
    def tied_output(self) -> bool:
        """Whether the output layer is the input embedding (Llama-family ``tie_word_embeddings``, no logit scaling)."""
        config = self.backbone.config
        scaled = any(
            getattr(config, name, None) for name in ("logit_scale", "logits_scaling", "final_logit_softcapping")
        )
        return bool(getattr(config, "tie_word_embeddings", False)) and not scaled

    def forward(self, input_ids, attention_mask, set_labels=None, query_cuts=None) -> SetRecOutput:
        """Per-position logits restricted to each position's vocabulary, (B, n, Vmax), or (B, G, n, Vmax) with
        ``query_cuts`` (B, G) (:meth:`window_logits`); weighted cross-entropy if ``set_labels`` (local token
        indices of the same leading shape, -100 for padding groups) are given."""
        if query_cuts is not None:
            logits = self.window_logits(input_ids, attention_mask, query_cuts)  # (B, G, n, Vmax)
        else:
            full = self.query_logits(input_ids, attention_mask)  # (B, n, V)
            logits = full.gather(2, self.vocab_ids.unsqueeze(0).expand(full.shape[0], -1, -1))  # (B, n, Vmax)
        logits = logits.float().masked_fill(~self.vocab_valid, float("-inf"))
        loss = None
        if set_labels is not None:
            flat_labels = set_labels.reshape(-1, self.num_positions)  # (rows, n)
            per_position = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), flat_labels.flatten(), reduction="none", ignore_index=-100
            ).view_as(flat_labels)
            real = (flat_labels[:, 0] != -100).float()  # padding groups carry -100 at every position
            loss = ((per_position * self.position_weights).sum(1) * real).sum() / (
                real.sum().clamp(min=1) * self.position_weights.sum()
            )
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
