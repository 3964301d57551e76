"""Fault injection: every case of the "nothing lost, nothing silent" report, replayed by its command, plus the cases
that were already handled, so they stay fixed. Each bad case must give a clear message (naming the file or flag at
fault) and change no byte of user data.

1. writers (prepare, index, train, bundle saves) never replace what they did not write;
2. resume is keyed by input line number: repeated or look-alike user ids lose nothing, even killed repeatedly;
3. an output from another run (k, histories, input file) is refused, a missing final newline loses nothing, and the
   output can never be the input;
4. k is capped at the catalog and at a memory-safe beam count;
5. the Python API rejects a bare-string history and non-positive k; ``--max-users 0`` is an error;
6. truncated files and bad flags are named, a missing bundle path fails fast without the network, and written files
   get the umask's permissions.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _bundles import T5_TINY, cached_bundle, save_synthetic_data

from genrec.data import DataError, InteractionData, leave_one_out
from genrec.evaluation import evaluate
from genrec.indexing import ItemIndex, ItemIndexError
from genrec.inference import merge_shards, progress_path, recommend_jsonl, shard_path
from genrec.recommenders import GenerativeRecommender
from genrec.utils import MANIFEST_NAME, OutputExistsError, atomic_directory, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def t5_bundle(tmp_path_factory):
    return cached_bundle("t5", tmp_path_factory)


@pytest.fixture(scope="module")
def rec(t5_bundle):
    return GenerativeRecommender.from_pretrained(t5_bundle)


@pytest.fixture
def cli(capsys, caplog):
    """Run ``genrec ARGV`` in this process; returns ``(exit code, everything it printed or logged)``."""
    from genrec.cli import main

    def run(*argv) -> tuple[int, str]:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exit:  # argparse errors
                code = exit.code
        captured = capsys.readouterr()
        return code, captured.out + captured.err + caplog.text

    return run


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory under ``path`` (to show that nothing changed)."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def victim(path: Path) -> Path:
    """A directory of someone's precious files."""
    (path / "sub").mkdir(parents=True)
    (path / "thesis.txt").write_text("precious\n")
    (path / "sub" / "notes.md").write_text("also precious\n")
    return path


def tiny_csv(path: Path) -> Path:
    rows = [f"u{u},i{(u + t) % 12},{100 * u + t}" for u in range(10) for t in range(6)]
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def users(n: int = 14) -> list[dict]:
    return [{"user_id": f"u{u}", "history": [f"i{(u + j) % 30}" for j in range(1 + u % 6)]} for u in range(n)]


def repeated_ids(n: int = 3000, period: int = 1000) -> list[dict]:
    """The report's input: ids repeat every ``period`` lines, and ``1`` and ``"1"`` both occur."""
    return [
        {"user_id": (u if u % 2 else str(u)), "history": [f"i{(7 * line + j) % 30}" for j in range(1 + line % 6)]}
        for line in range(n)
        for u in [line % period]
    ]


# ---------------------------------------------------------------------------------------------- 1. writers
def test_prepare_never_deletes_a_directory_it_did_not_write(cli, tmp_path):
    csv, target = tiny_csv(tmp_path / "tiny.csv"), victim(tmp_path / "victim")
    before = snapshot(target)
    code, text = cli("prepare", csv, "--out", target)
    assert code == 2
    assert str(target) in text and "--overwrite" in text and "thesis.txt" in text
    assert snapshot(target) == before

    data = tmp_path / "data"
    assert cli("prepare", csv, "--out", data)[0] == 0
    assert cli("prepare", csv, "--out", data)[0] == 0  # its own previous output: replaced
    (data / "mine.txt").write_text("added by a user\n")
    code, text = cli("prepare", csv, "--out", data)
    assert code == 2 and "mine.txt" in text and (data / "mine.txt").read_text() == "added by a user\n"
    assert cli("prepare", csv, "--out", target, "--overwrite")[0] == 0  # asked for: replaced
    assert not (target / "thesis.txt").exists() and InteractionData.load(target).num_users == 10
    a_file = tmp_path / "a_file"
    a_file.write_text("precious\n")
    assert cli("prepare", csv, "--out", a_file)[0] == 2 and a_file.read_text() == "precious\n"


def test_index_never_replaces_a_file_that_is_not_an_index(cli, tmp_path):
    data = save_synthetic_data(tmp_path)
    precious = tmp_path / "precious.json"
    precious.write_text('{"my": "settings"}\n')
    code, text = cli("index", "--data", data, "--method", "random", "--out", precious)
    assert code == 2 and str(precious) in text and "--overwrite" in text
    assert precious.read_text() == '{"my": "settings"}\n'
    index = tmp_path / "index.json"
    assert cli("index", "--data", data, "--method", "random", "--out", index)[0] == 0
    assert cli("index", "--data", data, "--method", "independent", "--out", index)[0] == 0  # own file: replaced
    assert ItemIndex.load(index).method == "independent"
    assert cli("index", "--data", data, "--method", "random", "--out", precious, "--overwrite")[0] == 0
    assert ItemIndex.load(precious).method == "random"


def test_bundle_saves_never_replace_a_directory_they_did_not_write(rec, tmp_path):
    from transformers import pipeline

    target = victim(tmp_path / "victim")
    before = snapshot(target)
    with pytest.raises(OutputExistsError, match="thesis.txt"):
        rec.save_pretrained(target)
    pipe = pipeline("next-item-recommendation", model=rec, device="cpu")
    with pytest.raises(OutputExistsError):
        pipe.save_pretrained(target)
    assert snapshot(target) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left behind

    bundle = rec.save_pretrained(tmp_path / "bundle")
    rec.save_pretrained(bundle)  # its own previous output: replaced
    assert json.loads((bundle / MANIFEST_NAME).read_text())["kind"] == "bundle"
    rec.save_pretrained(target, overwrite=True)
    assert GenerativeRecommender.from_pretrained(target).recommend([["i1"]], k=2)


def test_train_refuses_a_foreign_output_dir_before_training(cli, tmp_path):
    from genrec.training import recipe_from_dict, run_recipe

    data = save_synthetic_data(tmp_path)
    target = victim(tmp_path / "victim")
    before = snapshot(target)
    config = tmp_path / "tiny.yaml"
    config.write_text("".join(f"{k}: {v}\n" for k, v in T5_TINY.items()))
    start = time.perf_counter()
    code, text = cli("train", "--config", config, "--data", data, "--output_dir", target)
    assert code == 2 and str(target) in text and "--overwrite" in text
    assert time.perf_counter() - start < 20  # refused before the data, index and model are built
    recipe = recipe_from_dict({**T5_TINY, "data": str(data), "output_dir": str(target)})
    with pytest.raises(OutputExistsError):
        run_recipe(recipe)
    assert snapshot(target) == before


def test_a_failed_save_leaves_the_old_output(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target, "thing") as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target, "thing") as tmp:
        (tmp / "a.txt").write_text("v2 half")
        raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(OutputExistsError, match="genrec thing, not a dataset"):
        InteractionData(*_tiny_frames()).save(target)


def test_a_symlinked_output_directory_keeps_its_link(tmp_path):
    (tmp_path / "big_disk").mkdir()
    os.symlink(tmp_path / "big_disk", tmp_path / "data")
    for version in ("v1", "v2"):
        with atomic_directory(tmp_path / "data", "thing") as tmp:
            (tmp / "a.txt").write_text(version)
    assert (tmp_path / "data").is_symlink() and (tmp_path / "big_disk" / "a.txt").read_text() == "v2"


def _tiny_frames():
    from conftest import make_synthetic_data

    data = make_synthetic_data(num_users=3, num_items=5, length=3)
    return data.interactions, data.items


# ---------------------------------------------------------------------------------------------- 2. exact resume
class _CrashAfter:
    """A recommender that raises KeyboardInterrupt (a Ctrl-C) once ``calls`` chunks have been recommended."""

    def __init__(self, rec, calls: int):
        self.rec, self.calls = rec, calls

    def __getattr__(self, name):
        return getattr(self.rec, name)

    def recommend_scored(self, *args, **kwargs):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.rec.recommend_scored(*args, **kwargs)


def test_repeated_user_ids_lose_no_line_on_resume(rec, tmp_path):
    rows = repeated_ids()
    src = write_jsonl(tmp_path / "users.jsonl", rows)
    out = tmp_path / "recs.jsonl"
    options = dict(k=2, num_beams=2, batch_size=80, chunk_size=160, progress=False)
    with pytest.raises(KeyboardInterrupt):
        recommend_jsonl(_CrashAfter(rec, 18), src, out, **options)  # interrupted after 18 × 160 = 2880 lines
    assert len(out.read_text().splitlines()) == 2880
    stats = recommend_jsonl(rec, src, out, **options)
    assert (stats.resumed, stats.written) == (2880, 120)
    result = read_jsonl(out)
    assert [r["line"] for r in result] == list(range(1, 3001))
    assert [r["user_id"] for r in result] == [r["user_id"] for r in rows]  # 1 and "1" kept apart, in order
    assert json.loads(progress_path(out).read_text())["complete"]


def test_killed_at_random_points_ends_with_every_line_in_input_order(t5_bundle, rec, tmp_path):
    rows = repeated_ids()
    src = write_jsonl(tmp_path / "users.jsonl", rows)
    out = tmp_path / "recs.jsonl"
    cmd = [sys.executable, "-m", "genrec.cli", "recommend", "--model", str(t5_bundle), "--input", str(src)]
    cmd += ["--output", str(out), "--k", "2", "--beams", "2", "--batch-size", "25"]  # a write every 250 lines
    targets = sorted(random.Random(7).sample(range(50, 2200), 3))  # kill once this many lines are written
    interrupted = 0
    for sig, target in zip((signal.SIGKILL, signal.SIGINT, signal.SIGKILL), targets):  # kill -9, Ctrl-C, kill -9
        done = out.read_bytes().count(b"\n") if out.exists() else 0
        target = max(target, done + 1)
        with open(tmp_path / "stderr.log", "ab") as log:
            # A job started in the background of a non-interactive shell inherits SIGINT ignored, and Python keeps it
            # so: give the child the default disposition, so that Ctrl-C reaches it wherever pytest runs.
            restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=restore_sigint)
            while proc.poll() is None and not (out.exists() and out.read_bytes().count(b"\n") >= target):
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(sig)
                interrupted += 1
            assert proc.wait(timeout=60) != 0
    assert interrupted == 3
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-3000:]
    result = read_jsonl(out)
    assert len(result) == 3000
    assert [r["line"] for r in result] == list(range(1, 3001))
    assert [r["user_id"] for r in result] == [r["user_id"] for r in rows]
    assert all(len(r["items"]) == 2 for r in result)
    sample = list(range(0, 3000, 150))
    expected = rec.recommend([rows[i]["history"] for i in sample], k=2, num_beams=2, batch_size=1)
    assert [[item["item_id"] for item in result[i]["items"]] for i in sample] == expected


# ---------------------------------------------------------------------------------------------- 3. the output file
def test_an_output_of_another_run_is_refused_and_kept(cli, t5_bundle, tmp_path):
    src = write_jsonl(tmp_path / "users.jsonl", users())
    out = tmp_path / "recs.jsonl"
    common = ["recommend", "--model", t5_bundle, "--input", src, "--output", out, "--beams", "5"]
    assert cli(*common, "--k", "3")[0] == 0
    before = out.read_bytes()

    code, text = cli(*common, "--k", "2")  # another k
    assert code == 2 and "k 3 → 2" in text and "--no-resume" in text
    write_jsonl(src, users()[:-1] + [{"user_id": "u13", "history": ["i5"]}])  # changed histories
    code, text = cli(*common, "--k", "3")
    assert code == 2 and "changed since" in text
    other = write_jsonl(tmp_path / "other.jsonl", users(5))  # another input file
    code, text = cli("recommend", "--model", t5_bundle, "--input", other, "--output", out, "--beams", "5", "--k", "3")
    assert code == 2 and "other.jsonl" in text
    assert out.read_bytes() == before

    assert cli(*common, "--k", "2", "--no-resume")[0] == 0  # asked for: started over
    assert [len(r["items"]) for r in read_jsonl(out)] == [2] * 14


def test_a_file_genrec_did_not_write_is_never_reused(cli, t5_bundle, tmp_path):
    src = write_jsonl(tmp_path / "users.jsonl", users(3))
    out = tmp_path / "notes.jsonl"
    out.write_text('{"user_id": "mine", "line": 1, "items": []}\n')
    code, text = cli("recommend", "--model", t5_bundle, "--input", src, "--output", out)
    assert code == 2 and "not written by genrec recommend" in text and "--overwrite" in text
    assert out.read_text() == '{"user_id": "mine", "line": 1, "items": []}\n'
    assert cli("recommend", "--model", t5_bundle, "--input", src, "--output", out, "--overwrite")[0] == 0
    assert [r["user_id"] for r in read_jsonl(out)] == ["u0", "u1", "u2"]


def test_a_missing_final_newline_loses_no_line(rec, tmp_path, caplog):
    src = write_jsonl(tmp_path / "users.jsonl", users())
    out = tmp_path / "recs.jsonl"
    recommend_jsonl(rec, src, out, k=3, num_beams=5, progress=False)
    full = out.read_bytes()
    out.write_bytes(full[:-1])  # e.g. saved by an editor
    with caplog.at_level(logging.WARNING, logger="genrec.inference"):
        stats = recommend_jsonl(rec, src, out, k=3, num_beams=5, progress=False)
    assert "added it" in caplog.text
    assert (stats.resumed, stats.written) == (14, 0)
    assert out.read_bytes() == full


def test_a_run_stopped_by_a_bad_line_continues_with_skip(rec, tmp_path):
    rows = users(6)
    src = write_jsonl(tmp_path / "users.jsonl", rows[:3] + ["{broken"] + rows[3:])
    out = tmp_path / "recs.jsonl"
    with pytest.raises(DataError, match=r"users\.jsonl:4"):
        recommend_jsonl(rec, src, out, k=2, num_beams=2, progress=False)
    stats = recommend_jsonl(rec, src, out, k=2, num_beams=2, on_error="skip", progress=False)
    assert (stats.resumed, stats.written, stats.errors) == (3, 3, 1)
    assert [r["line"] for r in read_jsonl(out)] == [1, 2, 3, 5, 6, 7]


def test_the_output_can_never_be_the_input(cli, rec, t5_bundle, tmp_path):
    src = write_jsonl(tmp_path / "users.jsonl", users(4))
    before = src.read_bytes()
    code, text = cli("recommend", "--model", t5_bundle, "--input", src, "--output", src)
    assert code == 2 and "is the input file" in text
    os.symlink(src, tmp_path / "link.jsonl")
    for output in (tmp_path / "link.jsonl", tmp_path / "." / "users.jsonl"):
        with pytest.raises(ValueError, match="is the input file"):
            recommend_jsonl(rec, src, output, overwrite=True, progress=False)
    assert src.read_bytes() == before
    for input_name, shard in (("recs.jsonl.progress.json", None), ("recs.jsonl.shard-0-of-2", (0, 2))):
        other = write_jsonl(tmp_path / input_name, users(2))  # the progress or shard file would be the input
        with pytest.raises(ValueError, match="is the input file"):
            recommend_jsonl(rec, other, tmp_path / "recs.jsonl", shard=shard, progress=False)
        assert len(read_jsonl(other)) == 2


def test_merge_refuses_unfinished_or_mixed_shards(rec, tmp_path):
    src = write_jsonl(tmp_path / "users.jsonl", users(6))
    out = tmp_path / "recs.jsonl"
    recommend_jsonl(rec, src, out, k=3, num_beams=5, shard=(0, 2), progress=False)
    recommend_jsonl(rec, src, out, k=2, num_beams=5, shard=(1, 2), progress=False)
    with pytest.raises(DataError, match="different runs"):
        merge_shards(out, 2)
    recommend_jsonl(rec, src, out, k=3, num_beams=5, shard=(1, 2), progress=False, resume=False)
    progress = json.loads(progress_path(shard_path(out, 1, 2)).read_text())
    atomic_write_text(progress_path(shard_path(out, 1, 2)), json.dumps({**progress, "complete": False}))
    with pytest.raises(DataError, match="has not finished"):
        merge_shards(out, 2)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- 4. k is bounded
def test_k_is_capped_at_the_catalog(cli, t5_bundle, tmp_path):
    src = write_jsonl(tmp_path / "users.jsonl", users(3))
    out = tmp_path / "recs.jsonl"
    code, text = cli("recommend", "--model", t5_bundle, "--input", src, "--output", out, "--k", "100000")
    assert code == 0 and "k=100000 capped at 30 (the catalog size)" in text
    for record in read_jsonl(out):
        assert len({item["item_id"] for item in record["items"]}) == len(record["items"]) == 30


def test_beams_are_capped_at_a_memory_safe_count(rec, monkeypatch, caplog):
    from genrec.recommenders.base import DECODE_MEMORY_ENV

    room = 12 * rec.bytes_per_beam() + 1  # room for 12 beams per generate call
    monkeypatch.setenv(DECODE_MEMORY_ENV, str(room / 2**20))
    with caplog.at_level(logging.WARNING, logger="genrec.recommenders.base"):
        assert rec.resolve_k(20) == (12, 12)
    assert "memory-safe beam count" in caplog.text
    assert rec.histories_per_call(4) == 3
    many = [["i1"], ["i2", "i3"], ["i4"], ["i5"], ["i6", "i7"]]
    capped = rec.recommend(many, k=4, num_beams=4, batch_size=32)  # run 3 histories per generate call
    monkeypatch.undo()
    assert capped == rec.recommend(many, k=4, num_beams=4, batch_size=1)


# ---------------------------------------------------------------------------------------------- 5. the Python API
def test_a_bare_string_history_is_rejected(rec):
    with pytest.raises(ValueError, match="not a list of item ids"):
        rec.recommend(["i17"])  # would be read as items "i", "1", "7"
    with pytest.raises(ValueError, match="list of histories"):
        rec.recommend("i17")
    with pytest.raises(ValueError, match="history #1 is the string"):
        rec.recommend_scored([["i1"], "i2"])
    assert rec.recommend([["i17"]], k=2)  # the right spelling works


@pytest.mark.parametrize("k", [0, -1, True, 2.5, "3"])
def test_non_positive_or_non_integer_k_is_rejected(rec, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([["i1"]], k=k)


def test_bad_counts_are_rejected(rec):
    with pytest.raises(ValueError, match="num_beams"):
        rec.recommend([["i1"]], k=2, num_beams=0)
    with pytest.raises(ValueError, match="batch_size"):
        rec.recommend([["i1"]], k=2, batch_size=0)


def test_max_users_zero_is_an_error(cli, rec, t5_bundle, tmp_path):
    data = save_synthetic_data(tmp_path)
    code, text = cli("evaluate", "--model", t5_bundle, "--data", data, "--max-users", "0")
    assert code == 2 and "--max-users" in text
    for flag in ("--k", "--beams", "--batch-size"):
        code, text = cli("evaluate", "--model", t5_bundle, "--data", data, flag, "0")
        assert code == 2 and flag in text
    split = leave_one_out(InteractionData.load(data))
    for bad in (0, -3, True):
        with pytest.raises(ValueError, match="max_users"):
            evaluate(rec, split, max_users=bad, progress=False)


# ---------------------------------------------------------------------------------------------- 6. messages, modes
@pytest.mark.parametrize("name", ["item_index.json", "genrec_config.json", "items.json"])
def test_a_truncated_bundle_file_is_named(cli, t5_bundle, tmp_path, name):
    bundle = tmp_path / "bundle"
    shutil.copytree(t5_bundle, bundle)
    text = (bundle / name).read_text()
    (bundle / name).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=name):
        GenerativeRecommender.from_pretrained(bundle)
    src = write_jsonl(tmp_path / "users.jsonl", users(2))
    code, message = cli("recommend", "--model", bundle, "--input", src, "--output", tmp_path / "out.jsonl")
    assert code == 2 and str(bundle / name) in message
    if name == "item_index.json":
        with pytest.raises(ItemIndexError, match="item_index.json: not valid JSON|item_index.json is not a valid"):
            ItemIndex.load(bundle / name)


def test_bad_index_options_name_the_flag(cli, tmp_path):
    data = save_synthetic_data(tmp_path)
    for options, expected in [
        ("{bad", "--options is not valid JSON"),
        ("[1, 2]", "--options must be a JSON object"),
        ('{"no_such_option": 1}', "--options"),
    ]:
        code, text = cli("index", "--data", data, "--method", "random", "--options", options, "--out", tmp_path / "i")
        assert code == 2 and expected in text, text
    assert not (tmp_path / "i").exists()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails at once and is recorded in the returned list (so an attempt that the
    code under test catches and retries is still seen)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_a_missing_bundle_fails_fast_without_the_network(no_network, tmp_path):
    from transformers import pipeline  # genrec is imported: the task is registered

    for model, expected in [
        (tmp_path / "runs" / "missing" / "bundle", "does not exist"),
        ("org/name", "does not exist"),
        (str(tmp_path / "missing"), "does not exist"),
    ]:
        with pytest.raises(FileNotFoundError, match=expected):
            pipeline("next-item-recommendation", model=model)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            GenerativeRecommender.from_pretrained(model)
    assert no_network == []  # refused from the local check alone: no hub lookup, so no retries to wait for


def test_an_unreachable_hub_model_fails_fast(no_network, cli, monkeypatch, tmp_path_factory, tmp_path):
    data = save_synthetic_data(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text("".join(f"{k}: {v}\n" for k, v in T5_TINY.items()))
    train = ["train", "--config", config, "--data", data, "--output_dir", tmp_path / "run", "--backbone"]
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # CI machines may set these
        monkeypatch.delenv(variable, raising=False)
    start = time.perf_counter()
    code, text = cli(*train, "org/name")
    assert code == 2 and "--backbone: cannot reach" in text and "HF_HUB_OFFLINE" in text
    code, text = cli(*train, str(tmp_path / "models" / "missing"))
    assert code == 2 and "--backbone: model path" in text and "does not exist" in text
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, text = cli(*train, "org/name")
    assert code == 2 and "not in the local Hugging Face cache" in text
    bundle = tmp_path / "bundle"  # an adapter bundle whose base model is a hub id that is not cached
    shutil.copytree(cached_bundle("causal-lora", tmp_path_factory), bundle)
    settings = json.loads((bundle / "genrec_config.json").read_text())
    (bundle / "genrec_config.json").write_text(json.dumps({**settings, "base_model": "org/name"}))
    with pytest.raises(FileNotFoundError, match=r"genrec_config.json \(base_model\): org/name is not in the local"):
        GenerativeRecommender.from_pretrained(bundle)
    assert time.perf_counter() - start < 30 and not (tmp_path / "run").exists()


def test_an_adapter_bundle_with_a_missing_base_model_names_it(tmp_path_factory, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(cached_bundle("causal-lora", tmp_path_factory), bundle)
    config = json.loads((bundle / "genrec_config.json").read_text())
    (bundle / "genrec_config.json").write_text(json.dumps({**config, "base_model": "/nowhere/models/llama"}))
    with pytest.raises(FileNotFoundError, match=r"genrec_config.json \(base_model\): model path /nowhere"):
        GenerativeRecommender.from_pretrained(bundle)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(cli, rec, t5_bundle, tmp_path, umask):
    old = os.umask(umask)
    try:
        data = tmp_path / "data"
        assert cli("prepare", tiny_csv(tmp_path / "tiny.csv"), "--out", data)[0] == 0
        assert cli("index", "--data", data, "--method", "random", "--out", tmp_path / "index.json")[0] == 0
        bundle = rec.save_pretrained(tmp_path / "bundle")
        src = write_jsonl(tmp_path / "users.jsonl", users(4))
        recommend_jsonl(rec, src, tmp_path / "recs.jsonl", k=2, num_beams=2, progress=False)
        for i in range(2):
            recommend_jsonl(rec, src, tmp_path / "merged.jsonl", k=2, num_beams=2, shard=(i, 2), progress=False)
        merge_shards(tmp_path / "merged.jsonl", 2)
    finally:
        os.umask(old)
    written = [data, bundle, *data.iterdir(), *bundle.iterdir(), tmp_path / "index.json"]
    written += [tmp_path / "recs.jsonl", progress_path(tmp_path / "recs.jsonl"), tmp_path / "merged.jsonl"]
    for path in written:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))

    private = tmp_path / "private.json"  # rewriting a file keeps the mode its owner chose
    private.write_text("{}")
    private.chmod(0o600)
    atomic_write_text(private, "{}\n")
    assert private.stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------------------------- already handled
def test_cases_that_were_already_handled_stay_handled(cli, t5_bundle, tmp_path):
    # malformed JSONL: file and line number, what came before is kept
    src = write_jsonl(tmp_path / "users.jsonl", [users(1)[0], "{not json", users(2)[1]])
    out = tmp_path / "recs.jsonl"
    code, text = cli("recommend", "--model", t5_bundle, "--input", src, "--output", out)
    assert code == 2 and "users.jsonl:2: not valid JSON" in text and len(read_jsonl(out)) == 1
    # unknown item ids, rejected on request, with file and line
    src = write_jsonl(tmp_path / "unknown.jsonl", [{"user_id": 1, "history": ["i1", "nope"]}])
    code, text = cli("recommend", "--model", t5_bundle, "--input", src, "--output", tmp_path / "u", "--unknown=error")
    assert code == 2 and "unknown.jsonl:1" in text
    # corrupt parquet: the file is named
    data = tmp_path / "broken"
    shutil.copytree(save_synthetic_data(tmp_path), data)
    (data / "interactions.parquet").write_bytes(b"not parquet at all")
    code, text = cli("evaluate", "--model", t5_bundle, "--data", data)
    assert code == 2 and "interactions.parquet" in text
    # a bad CSV: the file and the missing column are named
    bad = tmp_path / "bad.csv"
    bad.write_text("user,thing\n1,2\n")
    code, text = cli("prepare", bad, "--out", tmp_path / "bad_out")
    assert code == 2 and "bad.csv" in text and not (tmp_path / "bad_out").exists()
