"""`genrec demo --quick` end to end on the synthetic catalog (prepared beforehand, so nothing is downloaded)."""

import json
from pathlib import Path

import yaml

from genrec.demo import DEMO_RECIPE, GENERATIVE, run_demo


def test_quick_demo_writes_results_json(tmp_path, tiny_data, capsys):
    tiny_data.save(tmp_path / "data")
    rows = run_demo(tmp_path, quick=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {GENERATIVE, "Pop", "SASRec"} == set(rows)
    for metrics in results.values():
        assert {"recall@10", "ndcg@10", "invalid_rate", "num_users", "train_seconds"} <= set(metrics)
    assert results[GENERATIVE]["invalid_rate"] == 0
    assert "sample recommendations" in capsys.readouterr().out


def test_demo_trains_the_causal_independent_recipe():
    """The demo restates train/configs/causal_independent.yaml (the YAML is not installed with the package); only
    the name, paths and the time cap may differ."""
    recipe = yaml.safe_load((Path(__file__).parents[1] / "train" / "configs" / "causal_independent.yaml").read_text())
    differ = {"name", "data", "output_dir", "max_train_minutes"}
    assert {k: v for k, v in DEMO_RECIPE.items() if k not in differ} == {
        k: v for k, v in recipe.items() if k not in differ
    }
