"""Model cards in the Hugging Face format (YAML metadata + sections), written into every saved bundle."""

from __future__ import annotations

import json

from genrec.indexing.base import ItemIndex

METRIC_ORDER = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20", "invalid_rate", "num_users")


def metrics_table(metrics: dict) -> str:
    keys = [k for k in METRIC_ORDER if k in metrics]
    if not keys:
        return "No metrics were measured for this bundle yet (run `genrec evaluate --model DIR --data DATA`)."
    cells = [f"{metrics[k]:.4f}" if isinstance(metrics[k], float) else str(metrics[k]) for k in keys]
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys), "| " + " | ".join(cells) + " |"])


def training_summary(metrics: dict) -> str:
    """One line on what the training cost: steps, time, examples, parameters (trainable)."""
    parts = [
        f"{metrics['steps']} optimizer steps" if "steps" in metrics else None,
        f"{metrics['train_seconds']:.0f} s of training" if "train_seconds" in metrics else None,
        f"{metrics['train_examples']} training examples" if "train_examples" in metrics else None,
        f"{metrics['parameters']:,} parameters" if "parameters" in metrics else None,
        f"{metrics['trainable_parameters']:,} trainable" if "trainable_parameters" in metrics else None,
    ]
    parts = [p for p in parts if p]
    summary = "Training: " + ", ".join(parts) + "." if parts else ""
    if "inference_max_history" in metrics:
        scores = ", ".join(f"{n}: {s:.4f}" for n, s in metrics.get("valid_ndcg10_by_history", {}).items())
        summary += (
            f" Recommendations use the last {metrics['inference_max_history']} history items, the length that "
            f"ranked best on validation (NDCG@10 by length: {scores})."
        )
    return summary.strip()


def render_model_card(config, index: ItemIndex, decoding: str = "decoding is trie-constrained") -> str:
    """A card describing what this bundle is, how it was trained and what it measured (``config.metrics``);
    ``decoding`` says how the recommender kind turns model outputs into items."""
    recipe = config.recipe or {}
    base = (
        config.base_model
        or ("T5" if config.kind == "seq2seq" else "a decoder-only transformer") + " trained from scratch"
    )
    metadata = {
        "library_name": "genrec",
        "pipeline_tag": "next-item-recommendation",
        "tags": ["recommendation", "generative-retrieval", f"index-{index.method}"],
        "base_model": config.base_model,
        "datasets": [recipe["data"]] if recipe.get("data") else None,
        "metrics": ["recall", "ndcg"],
    }
    yaml_lines = ["---"] + [f"{k}: {json.dumps(v)}" for k, v in metadata.items() if v is not None] + ["---"]
    command = recipe.get("command", "genrec train --config ...")
    # Long per-epoch curves stay in the index file; the card keeps the summary numbers.
    summary = {k: v for k, v in index.stats.items() if not (isinstance(v, list) and len(v) > 8)}
    stats = json.dumps(summary, indent=2, sort_keys=True)
    evaluated_on = config.metrics.get("split", "test") if config.metrics else "test"
    return "\n".join(
        yaml_lines
        + [
            f"# genrec next-item recommender ({recipe.get('name', index.method)})",
            "",
            "## What it is",
            f"A {config.kind} language model ({base}) tuned to generate the identifier of a user's next item. "
            f"Items are indexed with the `{index.method}` method ({len(index)} items, {len(index.new_tokens)} new "
            f"tokens); {decoding}, so every recommendation is a catalog item.",
            "",
            "## Intended use",
            "Next-item recommendation for users of the catalog it was trained on: "
            '`pipeline("next-item-recommendation", model=DIR)` after `import genrec`, '
            "`genrec recommend --model DIR ...`, or `GenerativeRecommender.from_pretrained(DIR)`.",
            "",
            "## Training data and index",
            f"Dataset: {recipe.get('data', 'see recipe')}. Leave-one-out split; the index and the model saw training "
            f"interactions only. Index fingerprint `{index.fingerprint}`; prompt style `{config.template_style}`, "
            f"history of at most {config.max_history} items.",
            "",
            "Index statistics:",
            "```json",
            stats,
            "```",
            "",
            "## How to train it",
            "```bash",
            command,
            "```",
            "",
            f"## Measured results ({evaluated_on} split, full-catalog ranking)",
            metrics_table(config.metrics or {}),
            "",
            training_summary(config.metrics or {}),
            "",
            "## Limitations",
            "Scores only items known at training time (new items need `ItemIndex.add_items` and further tuning). "
            "Numbers above come from the run that produced this bundle; small CPU runs are far from converged.",
            "",
        ]
    )
