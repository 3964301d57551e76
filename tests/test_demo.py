"""`genrec demo --quick` end to end on the synthetic catalog (prepared beforehand, so nothing is downloaded)."""

import json

from genrec.demo import GENERATIVE, run_demo


def test_quick_demo_writes_results_json(tmp_path, tiny_data, capsys):
    tiny_data.save(tmp_path / "data")
    rows = run_demo(tmp_path, quick=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {GENERATIVE, "Pop", "SASRec"} == set(rows)
    for metrics in results.values():
        assert {"recall@10", "ndcg@10", "invalid_rate", "num_users", "train_seconds"} <= set(metrics)
    assert results[GENERATIVE]["invalid_rate"] == 0
    assert "sample recommendations" in capsys.readouterr().out
