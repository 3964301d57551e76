"""The multi-process path, run for real on CPU: ``accelerate launch`` with two processes talking over gloo.

- training with ``train/accelerate/ddp.yaml`` (its process count and precision overridden for CPU): the two
  processes split the data (half the optimizer steps of one process) and exactly one bundle is written;
- sharded batch inference with two processes plus the merge gives the lines one process gives.

accelerate only starts several CPU processes through its torchrun launcher (``--multi_gpu``) with
``ACCELERATE_USE_CPU=1``; ``accelerate launch --cpu --num_processes 2`` starts one process without MPI.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _bundles import T5_TINY, cached_bundle, save_synthetic_data

from genrec.bundle import CONFIG_NAME
from genrec.inference import recommend_jsonl
from genrec.recommenders import GenerativeRecommender
from genrec.utils import current_umask

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BATCH = 16


def _accelerate(args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes (gloo) from the repository root; the outcome with its output."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *args]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (tmp_path / "accelerate.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_training_saves_one_bundle(tmp_path):
    data = save_synthetic_data(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "".join(f"{k}: {v}\n" for k, v in {**T5_TINY, "per_device_train_batch_size": TRAIN_BATCH}.items())
    )
    out = tmp_path / "run"
    train = ["train/train.py", "--config", str(config), "--data", str(data), "--output_dir", str(out)]
    result = _accelerate(["--config_file", "train/accelerate/ddp.yaml", *train], tmp_path)
    printed = result.stdout[result.stdout.index("{\n") :]  # the metrics JSON, after the Trainer's log dicts
    metrics, _ = json.JSONDecoder().raw_decode(printed)
    assert '"steps"' not in printed[printed.index("}") :]  # printed once: by the main process only
    # two processes split the 96 examples: half the optimizer steps one process takes
    assert metrics["steps"] == math.ceil(T5_TINY["max_train_examples"] / (2 * TRAIN_BATCH))
    bundles = sorted(p.parent for p in out.rglob(CONFIG_NAME))
    assert bundles == [out / "bundle"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".old-" in p.name]
    files = [p for p in out.rglob("*") if p.is_file()]  # checkpoints and bundle readable as the umask allows
    assert {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~current_umask()}
    rec = GenerativeRecommender.from_pretrained(out / "bundle")
    assert len(rec.recommend([["i1", "i2"]], k=3)[0]) == 3


def test_two_process_sharded_inference_equals_one_process(tmp_path_factory, tmp_path):
    bundle = cached_bundle("t5", tmp_path_factory)
    users = [{"user_id": u % 7, "history": [f"i{(u + j) % 30}" for j in range(1 + u % 5)]} for u in range(21)]
    users.insert(5, {"user_id": "bad"})  # a malformed line: skipped by both runs, with its line number
    src = tmp_path / "users.jsonl"
    src.write_text("".join(json.dumps(u) + "\n" for u in users))
    options = ["--k", "3", "--num_beams", "5", "--batch_size", "1", "--on_error", "skip"]

    sharded = tmp_path / "sharded.jsonl"
    script = ["infer/batch_recommend.py", "--model", str(bundle), "--input", str(src), "--output", str(sharded)]
    _accelerate(["--multi_gpu", *script, *options], tmp_path)
    single = tmp_path / "single.jsonl"
    rec = GenerativeRecommender.from_pretrained(bundle)
    recommend_jsonl(rec, src, single, k=3, num_beams=5, batch_size=1, on_error="skip", progress=False)

    merged, one = ([json.loads(x) for x in p.read_text().splitlines()] for p in (sharded, single))
    assert [r["line"] for r in merged] == [r["line"] for r in one] == [n for n in range(1, 23) if n != 6]
    assert [r["user_id"] for r in merged] == [u["user_id"] for u in users if "history" in u]
    for a, b in zip(merged, one):  # processes may differ in the last float bit (thread counts), not in items
        assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]
        assert [i["score"] for i in a["items"]] == pytest.approx([i["score"] for i in b["items"]], abs=1e-4)
    for i in range(2):  # each shard recorded the same job, and finished
        progress = json.loads(Path(f"{sharded}.shard-{i}-of-2.progress.json").read_text())
        assert progress["complete"] and progress["shard"] == [i, 2]
