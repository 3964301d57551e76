"""benchmarks/quality.py and benchmarks/report.py: shared runs, claim verdicts, the RESULTS.md block, recipe cards."""

import json

import pytest
import quality  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
import report


def _summary(ndcg, std, seeds=3):
    return {"ndcg@10": ndcg, "ndcg@10_std": std, "seeds": seeds}


def test_verdict_needs_a_gap_beyond_two_standard_errors():
    assert report.verdict(_summary(0.05, 0.001), _summary(0.03, 0.001)).startswith("**held**")
    assert report.verdict(_summary(0.03, 0.001), _summary(0.05, 0.001)).startswith("**reversed**")
    assert report.verdict(_summary(0.031, 0.01), _summary(0.030, 0.01)).startswith("not separable")
    assert "one seed" in report.verdict({"ndcg@10": 0.05, "seeds": 1}, {"ndcg@10": 0.03, "seeds": 1})
    assert "not tested" in report.verdict({"not_run": "offline"}, _summary(0.03, 0.001))


def test_summarize_means_and_stds_over_seeds_and_keeps_not_run():
    runs = [{"ndcg@10": v, "num_users": 10, "train_seconds": 1.0, "test_seconds": 2.0} for v in (0.1, 0.2, 0.3)]
    m = report.summarize(runs)
    assert m["seeds"] == 3 and m["ndcg@10"] == pytest.approx(0.2) and m["ndcg@10_std"] == pytest.approx(0.1)
    assert m["users_per_second"] == pytest.approx(5.0)
    assert report.summarize([{"not_run": "backbone unavailable"}]) == {"not_run": "backbone unavailable"}
    assert "not run: backbone unavailable" in report.table([("qwen", {"not_run": "backbone unavailable"})])


def test_replace_block_keeps_the_hand_written_sections(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# results\n\nintro\n\n## Decoding\nkept\n")
    report.replace_block(path, "first")
    report.replace_block(path, "second")
    text = path.read_text()
    assert text.count(report.BEGIN) == 1 and "second" in text and "first" not in text
    assert "intro" in text and "## Decoding\nkept" in text


def test_rows_equal_to_the_recipe_share_its_runs():
    p5 = quality.studies()["p5-indexing"]
    by_label = {r.label: quality.normalise(r, {}) for r in p5.rows}
    assert by_label["sequential"].key == "p5_sid_t5"  # same run as the p5_sid_t5 recipe row
    # p5_cid_t5's decoder starts from its start token, p5_sid_t5's from the last item: the study aligns them
    assert dict(by_label["collaborative"].overrides) == {"decoder_last_item": True}
    assert by_label["random"].key != "p5_sid_t5"
    # a command-line override makes a different run of every recipe row
    assert quality.normalise(p5.rows[3], {"recipe": {"max_steps": 5}}).key != "p5_sid_t5"
    codebook = {r.label: quality.normalise(r, {}) for r in quality.studies()["codebook"].rows}
    assert codebook["256 per level"].key == "tiger_causal"  # the generative study's tiger_causal runs
    assert "codebook_size" not in json.loads(dict(codebook["auto (83 per level)"].overrides)["index_options"])
    lcrec = {r.label: dict(quality.normalise(r, {}).overrides) for r in quality.studies()["lcrec"].rows}
    # every ablation row runs at the ablation's own budget; the all-tasks row is the recipe otherwise
    assert lcrec["+ implicit (titles2index, history2title)"] == quality.LCREC_ABLATION_BUDGET
    assert all(o.items() >= quality.LCREC_ABLATION_BUDGET.items() for o in lcrec.values())
    for study in quality.studies().values():
        labels = {r.label for r in study.rows}
        assert all(a in labels and b in labels for a, b in study.claims)


def test_a_cached_run_of_another_configuration_is_set_aside(tmp_path, monkeypatch):
    job = quality.Job(quality.row("causal_independent", "causal_independent"), 0, "cpu", "data", str(tmp_path))
    job.result_path.parent.mkdir(parents=True)
    job.result_path.write_text(json.dumps({"ndcg@10": 0.06, "fingerprint": job.fingerprint}))
    assert job.cached()["ndcg@10"] == 0.06
    # the recipe YAML changes after the run: the cache no longer describes it
    yaml = {**quality.recipe_yaml("causal_independent"), "causal_dropout": 0.1}
    monkeypatch.setattr(quality, "recipe_yaml", lambda name: yaml)
    assert job.cached() is None
    assert not job.result_path.exists() and (tmp_path / "superseded" / job.result_path.name).is_file()


@pytest.mark.parametrize("name", quality.recipe_names())
def test_every_shipped_recipe_parses(name):
    from genrec.indexing import build_indexer
    from genrec.training import load_recipe

    recipe = load_recipe(quality.RECIPES_DIR / f"{name}.yaml")
    assert recipe.config.name == name
    build_indexer(recipe.config.index_method, **recipe.config.index_options)  # its index options are valid


def test_quick_run_writes_results_cards_and_plots(tmp_path, tiny_data):
    data_dir = tmp_path / "data"
    tiny_data.save(data_dir)
    out = tmp_path / "out"
    args = [
        "--quick",
        "--data",
        str(data_dir),
        "--only",
        "pop,p5_sid_t5,causal_independent",
        "--output-root",
        str(out),
    ]
    result = quality.main([*args, "--seeds", "2", "--report", str(tmp_path / "cards"), "--recipe", "max_steps=3"])

    runs = result["runs"]
    assert [r["seed"] for r in runs["pop"]] == [0, 1]
    recipe_key = next(k for k in runs if k.startswith("p5_sid_t5"))
    assert all(r["invalid_rate"] == 0 and r["steps"] == 3 for r in runs[recipe_key])
    sequence_key = next(k for k in runs if k.startswith("causal_independent"))  # sequence mode
    assert all(r["invalid_rate"] == 0 and r["steps"] == 3 for r in runs[sequence_key])
    assert (out / "quality.json").is_file() and json.loads((out / "quality.json").read_text())["seeds"] == [0, 1]

    results_md = (tmp_path / "cards" / "RESULTS.md").read_text()
    assert report.BEGIN in results_md and "| pop |" in results_md
    assert (tmp_path / "cards" / "quality_vs_training_time.png").stat().st_size > 0
    card = (tmp_path / "cards" / "p5_sid_t5.md").read_text()
    assert card.startswith("---\n") and "## Measured results" in card and "## Limitations" in card
    assert "Per seed" in card and "--quick" in card

    # cached: a second call trains nothing and gives the same numbers
    again = quality.main([*args, "--seeds", "2", "--recipe", "max_steps=3"])
    assert again["runs"] == runs

    # re-scoring the excluded table reloads each bundle: same main metrics, the same excluded scores (same code)
    rescored = quality.main([*args, "--seeds", "2", "--recipe", "max_steps=3", "--cached-only", "--rescore-excluded"])
    for key in (recipe_key, sequence_key):
        assert [r["ndcg@10"] for r in rescored["runs"][key]] == [r["ndcg@10"] for r in runs[key]]
        for before, after in zip(runs[key], rescored["runs"][key]):
            assert after["excluded"]["ndcg@10"] == pytest.approx(before["excluded"]["ndcg@10"], abs=1e-6)
