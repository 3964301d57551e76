"""The trie recommender: generates identifiers token by token with trie-constrained beam search."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import cached_property

import torch

from genrec.bundle import register_recommender
from genrec.decoding import ItemTrie, TrieConstrainedLogitsProcessor, rank_items
from genrec.models.backbones import CAUSAL, SEQ2SEQ
from genrec.recommenders.base import GenerativeRecommender
from genrec.tokens import DecoderPrefixes, identifier_token_ids


def kv_cache_argument(model) -> str:
    """The name a causal model's forward (and ``generate``) takes its KV cache under, and its output returns it
    under: ``cache`` in newer transformers 5 releases, ``past_key_values`` in earlier ones."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@register_recommender("trie")
class TrieRecommender(GenerativeRecommender):
    """Beam search over the model's next tokens, masked by the :class:`ItemTrie` of the catalog's identifiers, so
    every generated identifier is a catalog item; items are ranked by the total log-probability of their tokens."""

    def _build_decoder(self) -> None:
        self.trie = ItemTrie(
            identifier_token_ids(self.tokenizer, self.index), self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        ).to(self.device)
        self.decoder_prefixes = None
        if self.config.decoder_last_item:
            start = self.model.config.decoder_start_token_id
            self.decoder_prefixes = DecoderPrefixes(self.tokenizer, self.index, start)

    def encode(self, histories: Sequence[Sequence[str]]):
        """The prompts, plus with ``decoder_last_item`` each history's decoder prefix (``decoder_input_ids``)."""
        encoded = super().encode(histories)
        if self.decoder_prefixes is not None:
            encoded["decoder_input_ids"] = torch.tensor([self.decoder_prefixes(h[-1]) for h in histories])
        return encoded

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_beams: int):
        """The KV cache of every prompt but its last token, computed once per user and then repeated for the beams
        (``generate`` alone would copy each prompt to all beams first and encode it ``num_beams`` times). Positions
        follow the attention mask, as ``generate``'s own, so left padding does not shift them. Only the cache is
        used, so the output layer runs on the last position alone (``logits_to_keep=1``): over a 50k-token
        vocabulary it would otherwise cost as much as the layers."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids[:, :-1],
            attention_mask=attention_mask[:, :-1],
            position_ids=position_ids[:, :-1],
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out[self._kv_cache_name]
        cache.batch_repeat_interleave(num_beams)
        return cache

    @cached_property
    def _kv_cache_name(self) -> str:
        return kv_cache_argument(self.model)

    def _move_decoder(self, device) -> None:
        self.trie = self.trie.to(device)

    @torch.inference_mode()
    def generate_ranked(
        self, encoded, num_beams: int, seen: Sequence[set[str]] | None = None, **options
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Trie-constrained beam search on an encoded batch; ``seen`` items (per row) are forbidden in the trie."""
        if options:
            raise TypeError(f"unexpected option(s) {sorted(options)} for trie decoding")
        input_ids = encoded["input_ids"].to(self.device)
        attention_mask = encoded["attention_mask"].to(self.device)
        extra = {}
        if self.decoder_prefixes is not None:
            extra["decoder_input_ids"] = encoded["decoder_input_ids"].to(self.device)
            prompt_length = self.decoder_prefixes.width
        else:
            prompt_length = 1 if self.config.kind == SEQ2SEQ else input_ids.shape[1]
        # a sequence model never learned to end an identifier with EOS: the closing EOS must not change the scores
        free_eos = self.sequence_format is not None
        banned = [[self.index.position(i) for i in items] for items in seen] if seen else None
        # one step past the identifier closes it with EOS; a sequence model's identifiers of one length need none
        # (every beam is complete at that length and its free EOS would add nothing but a decoding step)
        steps = self.trie.max_length if free_eos and self.trie.uniform_length else self.trie.max_length + 1
        if self.config.kind == CAUSAL and num_beams > 1:
            extra[self._kv_cache_name] = self.prefill(input_ids, attention_mask, num_beams)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            logits_processor=[TrieConstrainedLogitsProcessor(self.trie, prompt_length, free_eos, banned, num_beams)],
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=steps,
            do_sample=False,
            length_penalty=0.0,  # rank items by total log-probability, whatever their identifier length
            early_stopping=True,
            return_dict_in_generate=True,
            output_scores=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            **extra,
        )
        generated = output.sequences[:, prompt_length:]
        return rank_items(self.trie, generated, output.sequences_scores, num_beams, num_beams)
