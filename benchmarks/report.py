"""Render what ``benchmarks/quality.py`` measured: markdown tables with the papers' claims checked, the generated
block of model_cards/RESULTS.md, one Hugging Face model card per recipe, and PNG plots.

Everything here reads the ``quality.json`` a run writes, so the report can be re-rendered without training:

    python benchmarks/report.py runs/quality-cpu/quality.json --out model_cards
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path

from genrec.utils import atomic_write_text

KS = (5, 10, 20)
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in KS]
AVERAGED = METRICS + ["invalid_rate", "train_seconds", "test_seconds", "parameters", "trainable_parameters"]
BEGIN, END = "<!-- quality.py:begin -->", "<!-- quality.py:end -->"
CLAIM_METRIC = "ndcg@10"
MISSING = {"not_run": "no finished run (the benchmark was stopped before this row)"}


def study_to_dict(study, key_of) -> dict:
    """A study as plain JSON (rows keyed by the run key ``key_of(row)`` they share with other tables)."""
    return {
        "title": study.title,
        "paper": study.paper,
        "rows": [
            {"label": r.label, "model": r.model, "key": key_of(r), "overrides": dict(r.overrides)} for r in study.rows
        ],
        "claims": [list(c) for c in study.claims],
        "speed": study.speed,
    }


def summarize(runs: list[dict]) -> dict:
    """Mean (and sample std over seeds) of each metric of the runs that trained; ``not_run`` when none did."""
    done = [r for r in runs if "not_run" not in r]
    if not done:
        return {"not_run": runs[0]["not_run"] if runs else "no runs"}
    out = {"seeds": len(done), "num_users": done[0].get("num_users")}
    for key in AVERAGED:
        values = [r[key] for r in done if r.get(key) is not None]
        if values:
            out[key] = statistics.fmean(values)
            out[key + "_std"] = statistics.stdev(values) if len(values) > 1 else None
    if out.get("test_seconds"):
        out["users_per_second"] = out["num_users"] / out["test_seconds"]
    return out


def summarize_excluded(runs: list[dict]) -> dict:
    """:func:`summarize` of the runs' seen-items-excluded metrics (``run["excluded"]``), with their run's cost."""
    cost = ("parameters", "trainable_parameters", "train_seconds")
    return summarize([{**r["excluded"], **{k: r[k] for k in cost if k in r}} for r in runs if "excluded" in r])


def verdict(a: dict, b: dict, metric: str = CLAIM_METRIC) -> str:
    """Did "a beats b" hold? Held / reversed when the gap in means is over twice its standard error across seeds."""
    if "not_run" in a or "not_run" in b:
        return "not tested (a row did not run)"
    diff = a[metric] - b[metric]
    if a.get(metric + "_std") is None or b.get(metric + "_std") is None:
        return f"one seed only ({diff:+.4f}): not tested"
    se = math.sqrt(a[metric + "_std"] ** 2 / a["seeds"] + b[metric + "_std"] ** 2 / b["seeds"])
    if diff > 2 * se:
        return f"**held** ({diff:+.4f}, > 2 SE = {2 * se:.4f})"
    if diff < -2 * se:
        return f"**reversed** ({diff:+.4f}, beyond 2 SE = {2 * se:.4f})"
    return f"not separable ({diff:+.4f}, within 2 SE = {2 * se:.4f})"


def _cell(m: dict, key: str, digits: int = 4) -> str:
    if m.get(key) is None:
        return "—"
    text = f"{m[key]:.{digits}f}"
    return text + (f" ± {m[key + '_std']:.{digits}f}" if m.get(key + "_std") is not None else "")


def _count(n) -> str:
    if not n:
        return "0"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(int(n))


def table(rows: list[tuple[str, dict]], speed: bool = False) -> str:
    """Markdown: one line per (label, summary); cells are mean ± std over seeds."""
    header = ["model"] + [f"R@{k}" for k in KS] + [f"N@{k}" for k in KS]
    header += ["invalid", "params (trainable)", "train s", "users", "seeds"] + (["test users/s"] if speed else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, m in rows:
        if "not_run" in m:
            lines.append(f"| {label} | not run: {m['not_run']} |" + " |" * (len(header) - 2))
            continue
        params = _count(m.get("parameters"))
        if m.get("trainable_parameters") and m["trainable_parameters"] != m.get("parameters"):
            params += f" ({_count(m['trainable_parameters'])})"
        cells = [label] + [_cell(m, key) for key in METRICS] + [f"{m.get('invalid_rate', 0):.4f}", params]
        cells += [_cell(m, "train_seconds", 0), str(m["num_users"]), str(m["seeds"])]
        if speed:
            cells.append(f"{m['users_per_second']:.1f}" if m.get("users_per_second") else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_results(result: dict) -> str:
    """The generated part of RESULTS.md: budget, command, one table per study with the claims checked."""
    summaries = {key: summarize(runs) for key, runs in result["runs"].items()}
    seeds = ", ".join(map(str, result["seeds"]))
    machine = result["machine"]
    run_hours = sum(r.get("wall_seconds", 0) for runs in result["runs"].values() for r in runs) / 3600
    parts = [
        f"Generated by `{result['command']}`: {run_hours:.1f} h of runs, {machine['cpu_count']} CPU cores, "
        f"{machine['workers']} run(s) at a time with {machine['torch_threads_per_worker']} torch thread(s) each, "
        f"GPU: {machine['cuda'] or 'none'}. Dataset `{result['dataset']}` ({result['stats']['users']} users, "
        f"{result['stats']['items']} items, {result['stats']['interactions']} interactions); {result['protocol']}; "
        f"seeds {seeds}; cells are mean ± sample std over seeds. Budget `{result['budget']}`: "
        f"{_budget_text(result)}",
        "",
        "A claim is **held** when the mean NDCG@10 gap is over twice its standard error across seeds, **reversed** "
        "when it is as large the other way, otherwise *not separable*. The standard error covers training seeds "
        "only (the test users are the same for every row). Verdicts speak for this budget only: the papers trained "
        "for many epochs on GPUs.",
    ]
    for name, study in result["studies"].items():
        rows = [(r["label"], summaries.get(r["key"], MISSING)) for r in study["rows"]]
        parts += ["", f"### {study['title']}", ""]
        if study["paper"]:
            parts += [f"Paper's direction: {study['paper']}.", ""]
        parts.append(table(rows, speed=study["speed"]))
        by_label = dict(rows)
        if study["claims"]:
            parts += ["", "| claim (NDCG@10) | here |", "|---|---|"]
            parts += [f"| {a} > {b} | {verdict(by_label[a], by_label[b])} |" for a, b in study["claims"]]
        excluded = [(r["label"], summarize_excluded(result["runs"].get(r["key"], []))) for r in study["rows"]]
        if any("ndcg@10" in m for _, m in excluded):
            parts += [
                "",
                "Seen items excluded (`exclude_seen`: every item of the user's history is removed from the ranking; "
                "generative rows forbid them in the trie during beam search; MovieLens users never rate a film "
                "twice):",
                "",
                table(excluded),
            ]
        if study["speed"]:
            speeds = [(label, m.get("users_per_second")) for label, m in rows if m.get("users_per_second")]
            if len(speeds) == 2:
                parts += [
                    "",
                    f"Test decoding speed: {speeds[0][0]} {speeds[0][1]:.1f} users/s vs {speeds[1][0]} "
                    f"{speeds[1][1]:.1f} users/s ({speeds[0][1] / speeds[1][1]:.1f}×), measured during the "
                    "test evaluation of each run (runs shared the machine; benchmarks/setrec.py times both on "
                    "one model side by side).",
                ]
    if result.get("beams"):
        parts += [
            "",
            "### NDCG@10 vs beam size",
            "",
            f"One bundle (`{result['beams']['bundle']}`), test split.",
            "",
            "| beams | R@10 | N@10 | test s |",
            "|---|---|---|---|",
        ]
        for beams, m in result["beams"]["beams"].items():
            parts.append(f"| {beams} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['test_seconds']:.1f} |")
    return "\n".join(parts)


def _budget_text(result: dict) -> str:
    budget = result["budget_overrides"]
    if result["budget"] == "full":
        text = f"each recipe as its YAML in train/configs says, T5 recipes with `{_kv(budget['t5'])}`"
        return text + (f"; SASRec with `{_kv(budget['sasrec'])}`." if budget.get("sasrec") else ".")

    def as_yaml_or(family: str, yaml_says: str) -> str:
        return f"with `{_kv(budget[family])}`" if budget.get(family) else f"as their YAML says ({yaml_says})"

    text = (
        "T5 recipes (trained from scratch) "
        + as_yaml_or("t5", "CPU budgets of one or two epochs, 30-minute cap")
        + "; pretrained-LLM recipes "
        + as_yaml_or("llm", "CPU budgets; a row's own overrides are in its label and card")
        + "; scratch decoder-only (sequence-mode) recipes "
        + as_yaml_or("causal", "converged CPU budgets")
    )
    if budget.get("sasrec"):
        text += f"; SASRec with `{_kv(budget['sasrec'])}`"
    if result.get("recipe_overrides"):
        text += f"; command-line recipe overrides `{_kv(result['recipe_overrides'])}`"
    if result.get("sasrec_overrides"):
        text += f"; command-line SASRec overrides `{_kv(result['sasrec_overrides'])}`"
    return text + " (other fields as in the recipe's YAML)."


def _kv(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


def replace_block(path: Path, block: str) -> None:
    """Put ``block`` between the BEGIN/END markers of ``path`` (appended with markers if absent); atomic write."""
    text = path.read_text() if path.is_file() else "# genrec results\n"
    generated = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: generated, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    atomic_write_text(path, text)


def recipe_card(name: str, key: str, result: dict, recipes_dir: Path) -> str:
    """The card of recipe ``name`` (runs ``key``): its first bundle's own card with the measured-results section
    replaced by the results over every seed; a card from the YAML alone when the recipe could not run here."""
    runs = result["runs"].get(key, [])
    summary = summarize(runs)
    section = [
        f"## Measured results ({result['dataset']}, test split, full-catalog ranking, budget `{result['budget']}`)",
        "",
        table([(name, summary)]),
        "",
        f"Produced by `{result['command']}`; budget: {_budget_text(result)} Train the recipe alone with "
        f"`genrec train --config train/configs/{name}.yaml --data movielens-100k`; GPU sizes: "
        "`benchmarks/quality.py --budget full` or train/README.md.",
    ]
    per_seed = [r for r in runs if "not_run" not in r]
    if per_seed:
        section += [
            "",
            "Per seed (NDCG@10 / Recall@10 / train s): "
            + "; ".join(
                f"{r['seed']}: {r['ndcg@10']:.4f} / {r['recall@10']:.4f} / {r['train_seconds']:.0f}" for r in per_seed
            ),
        ]
    section_text = "\n".join(section) + "\n"
    bundle_card = Path(per_seed[0]["bundle"]) / "README.md" if per_seed and per_seed[0].get("bundle") else None
    if bundle_card and bundle_card.is_file():
        card = bundle_card.read_text()
        return re.sub(r"## Measured results.*?(?=## Limitations)", lambda _: section_text + "\n", card, flags=re.S)
    yaml_text = (recipes_dir / f"{name}.yaml").read_text()
    return "\n".join(
        [
            "---",
            'library_name: "genrec"',
            'pipeline_tag: "next-item-recommendation"',
            "---",
            f"# genrec recipe {name}",
            "",
            "## What it is",
            "The recipe below (train/configs). No bundle was trained here.",
            "",
            "## Intended use",
            "Next-item recommendation after training with the command below.",
            "",
            "## Training data and index",
            "As set in the recipe.",
            "",
            "## How to train it",
            "```yaml",
            yaml_text.strip(),
            "```",
            "",
            section_text,
            "## Limitations",
            "Not measured here; see the reason above.",
            "",
        ]
    )


def write_report(result: dict, out_dir: Path, recipes_dir: Path) -> None:
    """RESULTS.md's generated block, ``<recipe>.md`` for every recipe row, and the plots, all in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_block(out_dir / "RESULTS.md", render_results(result))
    for r in recipe_rows(result):
        atomic_write_text(out_dir / f"{r['model']}.md", recipe_card(r["model"], r["key"], result, recipes_dir))
    plot_all(result, out_dir)


def recipe_rows(result: dict) -> list[dict]:
    """Each recipe as its YAML says (a row labelled with the recipe's own name), once, from every study run."""
    rows = {}
    for study in result["studies"].values():
        for r in study["rows"]:
            if r["model"] not in ("pop", "sasrec") and r["label"] == r["model"]:
                rows.setdefault(r["model"], r)
    return list(rows.values())


def plot_all(result: dict, out_dir: Path) -> list[Path]:
    """Codebook utilisation per level, NDCG@10 vs beam size, quality vs training time (the PNGs it could draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    summaries = {key: summarize(runs) for key, runs in result["runs"].items()}

    recipes = [r for r in recipe_rows(result) if "ndcg@10" in summaries.get(r["key"], {})]
    if recipes:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in recipes:
            m = summaries[r["key"]]
            ax.errorbar(
                max(m["train_seconds"], 0.1),
                m["ndcg@10"],
                yerr=m.get("ndcg@10_std") or 0,
                xerr=m.get("train_seconds_std") or 0,
                fmt="o",
                capsize=3,
            )
            ax.annotate(
                r["label"],
                (max(m["train_seconds"], 0.1), m["ndcg@10"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        ax.set(
            xscale="log",
            xlabel="training time per run, s (log)",
            ylabel="test NDCG@10",
            title=f"Quality vs training time ({result['dataset']}, budget {result['budget']})",
        )
        written.append(_save(fig, out_dir / "quality_vs_training_time.png"))

    if result.get("beams"):
        beams = result["beams"]["beams"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([int(b) for b in beams], [m["ndcg@10"] for m in beams.values()], "o-")
        ax.set(xlabel="beam size", ylabel="test NDCG@10", title="NDCG@10 vs beam size (tiger_t5)")
        written.append(_save(fig, out_dir / "ndcg_vs_beam_size.png"))

    usage = _codebook_usage(result)
    if usage:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / len(usage)
        for i, (label, levels) in enumerate(usage.items()):
            ax.bar([level + i * width for level in range(len(levels))], levels, width, label=label)
        ax.set(
            xlabel="level",
            ylabel="codes used / codebook size",
            ylim=(0, 1.05),
            title="Codebook utilisation per level (before collision handling)",
        )
        ax.set_xticks([level + 0.4 - width / 2 for level in range(max(map(len, usage.values())))])
        ax.set_xticklabels([str(level + 1) for level in range(max(map(len, usage.values())))])
        ax.legend(fontsize=7, loc="lower left")
        written.append(_save(fig, out_dir / "codebook_utilisation.png"))
    return written


def _codebook_usage(result: dict) -> dict[str, list[float]]:
    """Row label → per-level utilisation of the identifier schemes the TIGER and SETRec tables compare (from the
    index stats saved in each row's first bundle; rows with the same utilisation are drawn once)."""
    from genrec.bundle import INDEX_NAME
    from genrec.indexing.base import ItemIndex

    usage, seen = {}, set()
    for name in ("tiger", "setrec"):
        for r in result["studies"].get(name, {"rows": []})["rows"]:
            runs = [x for x in result["runs"].get(r["key"], []) if x.get("bundle")]
            path = Path(runs[0]["bundle"]) / INDEX_NAME if runs else None
            if not (path and path.is_file()):
                continue
            stats = ItemIndex.load(path).stats
            levels = stats.get("codebook_utilisation") or stats.get("position_utilisation")
            if levels and tuple(round(x, 4) for x in levels) not in seen:
                seen.add(tuple(round(x, 4) for x in levels))
                usage[r["label"]] = levels
    return usage


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", help="quality.json written by benchmarks/quality.py")
    parser.add_argument("--out", default="model_cards", help="directory of RESULTS.md, the cards and the plots")
    parser.add_argument("--recipes", default=str(Path(__file__).resolve().parents[1] / "train" / "configs"))
    args = parser.parse_args()
    write_report(json.loads(Path(args.result).read_text()), Path(args.out), Path(args.recipes))
    print(f"wrote the report into {args.out}")
