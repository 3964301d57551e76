"""Tiny genrec bundles for the inference tests, built offline in seconds.

- :func:`build_t5_bundle` trains a 1+1-layer T5 from scratch with the real recipe (``run_recipe``).
- :func:`build_causal_bundle` takes conftest's tiny Llama (byte-level BPE tokenizer), extends it with the item
  tokens and saves it as a bundle, either full weights or as a LoRA adapter over a saved base model. It is not
  trained: the inference code paths (prompt, left padding, trie, adapter loading) do not depend on the weights.

Call them from session-scoped fixtures so each test session builds every bundle once.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from conftest import make_synthetic_data

from genrec.bundle import BundleConfig
from genrec.data import leave_one_out
from genrec.indexing import build_indexer
from genrec.models import CAUSAL, apply_lora
from genrec.recommenders import TrieRecommender
from genrec.testing import TINY_SEQUENCE_RECIPE, TINY_T5, save_tiny_causal_backbone
from genrec.tokens import add_item_tokens

# Sizes shared by the tests (and the benchmark's synthetic fallback).
T5_TINY = dict(
    index_method="independent",
    template_style="tiger",
    **TINY_T5,
    num_train_epochs=1,
    per_device_train_batch_size=32,
    eval_max_users=10,
    eval_num_beams=5,
    test_max_users=10,
    max_train_examples=96,
    logging_steps=1000,
)


def save_synthetic_data(root: Path) -> Path:
    """The conftest synthetic catalog, saved where ``run_recipe`` can read it."""
    path = Path(root) / "data"
    if not path.exists():
        make_synthetic_data().save(path)
    return path


def build_t5_bundle(root: Path, **overrides) -> Path:
    """Train the tiny T5 recipe on the synthetic data; returns the bundle directory."""
    from genrec.training import recipe_from_dict, run_recipe

    root = Path(root)
    cfg = recipe_from_dict(
        dict(data=str(save_synthetic_data(root)), output_dir=str(root / "t5"), **{**T5_TINY, **overrides})
    )
    run_recipe(cfg)
    return root / "t5" / "bundle"


def build_causal_bundle(root: Path, adapter: bool = True) -> Path:
    """A causal-LM bundle on the synthetic data: a LoRA adapter over a saved tiny Llama, or full weights."""
    import torch

    from genrec.models import load_backbone

    root = Path(root)
    data = make_synthetic_data()
    base = root / "llama-base"
    if not base.exists():
        from genrec.tasks import TEMPLATES

        save_tiny_causal_backbone(base, texts=list(data.items["title"]) + list(TEMPLATES["lcrec"].values()))
    split = leave_one_out(data)
    index = build_indexer("independent").fit(data.items, split.train)
    model, tokenizer, kind = load_backbone(str(base))
    new_ids = add_item_tokens(tokenizer, index, model)
    with torch.no_grad():  # distinct identifier rows, so beam scores are far from ties
        generator = torch.Generator().manual_seed(0)
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            layer.weight[new_ids] = torch.randn(len(new_ids), layer.weight.shape[1], generator=generator)
    if adapter:
        model = apply_lora(model, kind, new_ids)
    config = BundleConfig(
        kind=CAUSAL,
        index_fingerprint=index.fingerprint,
        template_style="lcrec",
        base_model=str(base) if adapter else None,
        adapter=adapter,
        num_beams=5,
    )
    bundle = root / ("causal-lora" if adapter else "causal-full") / "bundle"
    TrieRecommender(model, tokenizer, index, config, data.titles()).save_pretrained(bundle)
    return bundle


def build_sequence_bundle(root: Path) -> Path:
    """Train the tiny sequence-mode recipe (scratch decoder-only model, whole histories) on the synthetic data."""
    from genrec.training import recipe_from_dict, run_recipe

    root = Path(root)
    values = dict(
        data=str(save_synthetic_data(root)),
        output_dir=str(root / "sequence"),
        index_method="independent",
        **TINY_SEQUENCE_RECIPE,
        max_history=6,
        num_train_epochs=2,
        per_device_train_batch_size=16,
        learning_rate=1e-2,
        eval_num_beams=5,
        eval_max_users=10,
        test_max_users=10,
        logging_steps=1000,
    )
    run_recipe(recipe_from_dict(values))
    return root / "sequence" / "bundle"


_BUILDERS = {
    "sequence": build_sequence_bundle,
    "t5": build_t5_bundle,
    # P5 sequential numbers (1-2 SentencePiece pieces each) and a decoder that starts from the last item
    "t5-last-item": partial(build_t5_bundle, index_method="sequential", history_separator=" ", decoder_last_item=True),
    "causal-lora": partial(build_causal_bundle, adapter=True),
    "causal-full": partial(build_causal_bundle, adapter=False),
}
_CACHE: dict[str, Path] = {}


def cached_bundle(kind: str, tmp_path_factory) -> Path:
    """Build the ``kind`` bundle once per test process (shared by every test file that asks for it)."""
    if kind not in _CACHE:
        _CACHE[kind] = _BUILDERS[kind](tmp_path_factory.mktemp(f"bundle-{kind}"))
    return _CACHE[kind]
