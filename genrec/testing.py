"""Tiny models for tests, smoke runs and examples: one factory shared by tests/ and benchmarks/.

Everything here is built offline from a config in seconds (no hub download). The sizes are far too small to
recommend well; they exercise the real code paths (tokenizers, LoRA, trie decoding, bundles).
"""

from __future__ import annotations

# Recipe fields (genrec.training.RecipeConfig) of the smallest scratch backbones.
TINY_T5 = dict(
    t5_num_layers=1,
    t5_num_decoder_layers=1,
    t5_d_model=32,
    t5_num_heads=2,
    t5_d_kv=16,
    t5_d_ff=64,
    tokenizer_vocab_size=100,
)
TINY_CAUSAL = dict(
    causal_num_layers=1,
    causal_hidden_size=32,
    causal_num_heads=2,
    causal_intermediate_size=64,
    causal_dropout=0.0,
    tokenizer_vocab_size=100,
)
# A sequence-mode recipe on TINY_CAUSAL (whole histories as one token sequence).
TINY_SEQUENCE_RECIPE = dict(
    mode="sequence",
    backbone="causal-scratch",
    template_style="sequence",
    history_separator="",
    **TINY_CAUSAL,
)


def save_tiny_causal_backbone(
    directory, texts=None, vocab_size: int = 300, seed: int = 0, tie_word_embeddings: bool = False
):
    """A tiny Llama + byte-level BPE tokenizer saved to ``directory``: a stand-in for a pretrained causal LM.

    Built offline (no hub): the tokenizer is trained on ``texts`` with the `tokenizers` library.
    ``tie_word_embeddings`` as SmolLM2 and Qwen2.5 (one matrix for input rows and output layer).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = texts or [f"Movie {i} {g} story, item {i} next: answer" for i in range(50) for g in _GENRES]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


_GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]
