"""Streaming JSONL batch recommendation: output format, resume, malformed lines, shards, the script."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest
from _bundles import cached_bundle

from genrec import GenerativeRecommender
from genrec.data.schema import DataError
from genrec.indexing.base import ItemIndexError
from genrec.inference import merge_shards, progress_path, recommend_command, recommend_jsonl, shard_path

SCRIPT = Path(__file__).resolve().parents[1] / "infer" / "batch_recommend.py"


@pytest.fixture(scope="module")
def t5_bundle(tmp_path_factory):
    return cached_bundle("t5", tmp_path_factory)


@pytest.fixture(scope="module")
def rec(t5_bundle):
    return GenerativeRecommender.from_pretrained(t5_bundle)


def _users(n: int = 14) -> list[dict]:
    """Histories of varied lengths (so chunks get re-ordered by length), ids as strings and ints."""
    return [
        {"user_id": f"u{u}" if u % 3 else u, "history": [f"i{(u + j) % 30}" for j in range(1 + u % 6)]}
        for u in range(n)
    ]


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_output_lines_in_input_order_and_equal_to_recommend_scored(rec, tmp_path):
    users = _users()
    src = _write_jsonl(tmp_path / "users.jsonl", users)
    stats = recommend_jsonl(rec, src, tmp_path / "out.jsonl", k=4, num_beams=6, batch_size=3, chunk_size=7)
    assert (stats.read, stats.written, stats.resumed, stats.errors) == (14, 14, 0, 0)
    assert stats.users_per_second > 0
    out = _read(tmp_path / "out.jsonl")
    assert [o["user_id"] for o in out] == [u["user_id"] for u in users]
    assert [o["line"] for o in out] == list(range(1, 15))
    reference = rec.recommend_scored([u["history"] for u in users], k=4, num_beams=6, batch_size=1)
    for o, recs in zip(out, reference):
        assert set(o) == {"user_id", "line", "items"}
        assert [i["item_id"] for i in o["items"]] == [r.item_id for r in recs]
        assert [i["score"] for i in o["items"]] == pytest.approx([r.score for r in recs], abs=1e-4)
        assert all(set(i) == {"item_id", "score", "title", "identifier"} for i in o["items"])


def test_resume_after_an_interrupted_write(rec, tmp_path, caplog):
    src = _write_jsonl(tmp_path / "users.jsonl", _users())
    full = tmp_path / "full.jsonl"
    recommend_jsonl(rec, src, full, k=3, num_beams=5, batch_size=4)
    lines = full.read_text().splitlines(keepends=True)
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # a crash half way through line 6
    progress_path(crashed).write_text(progress_path(full).read_text())  # the same job's progress file
    with caplog.at_level(logging.WARNING, logger="genrec.inference"):
        stats = recommend_jsonl(rec, src, crashed, k=3, num_beams=5, batch_size=4)
    assert "partially written last line" in caplog.text
    assert (stats.resumed, stats.written) == (5, 9)
    assert [o["user_id"] for o in _read(crashed)] == [o["user_id"] for o in _read(full)]
    assert [[i["item_id"] for i in o["items"]] for o in _read(crashed)] == [
        [i["item_id"] for i in o["items"]] for o in _read(full)
    ]
    again = recommend_jsonl(rec, src, crashed, k=3, num_beams=5, batch_size=4)  # nothing left to do
    assert (again.resumed, again.written) == (14, 0)
    fresh = recommend_jsonl(rec, src, crashed, k=3, num_beams=5, batch_size=4, resume=False)
    assert fresh.written == 14 and len(_read(crashed)) == 14


def test_damaged_output_line_is_not_silently_dropped(rec, tmp_path):
    src = _write_jsonl(tmp_path / "users.jsonl", _users(3))
    out = tmp_path / "out.jsonl"
    recommend_jsonl(rec, src, out, k=3, num_beams=5)
    first, *_ = out.read_text().splitlines(keepends=True)
    out.write_text(first + "not json\n")
    with pytest.raises(DataError, match="out.jsonl:2"):
        recommend_jsonl(rec, src, out, k=3, num_beams=5)
    assert out.read_text() == first + "not json\n"  # reported, not repaired


def _with_bad_lines(tmp_path: Path) -> Path:
    users = _users(8)
    rows = (
        users[:3]
        + [
            "{not json",  # line 4
            {"user_id": "no-history"},  # line 5
            {"user_id": "empty", "history": []},  # line 6
            {"user_id": "unknown-only", "history": ["zz", "yy"]},  # line 7
            '["a", "list"]',  # line 8
            "",  # blank lines are ignored
        ]
        + users[3:]
    )
    return _write_jsonl(tmp_path / "users.jsonl", rows)


def test_malformed_lines_skipped_with_line_numbers(rec, tmp_path, caplog):
    src = _with_bad_lines(tmp_path)
    with caplog.at_level(logging.WARNING, logger="genrec.inference"):
        stats = recommend_jsonl(rec, src, tmp_path / "out.jsonl", k=3, num_beams=5, batch_size=2, on_error="skip")
    assert (stats.written, stats.errors) == (8, 5)
    assert stats.unknown_dropped == 2
    for line_no in (4, 5, 6, 7, 8):
        assert f"users.jsonl:{line_no}:" in caplog.text
    assert [o["user_id"] for o in _read(tmp_path / "out.jsonl")] == [u["user_id"] for u in _users(8)]


def test_malformed_line_fails_and_keeps_what_came_before(rec, tmp_path):
    src = _with_bad_lines(tmp_path)
    with pytest.raises(DataError, match=r"users\.jsonl:4: not valid JSON"):
        recommend_jsonl(rec, src, tmp_path / "out.jsonl", k=3, num_beams=5, batch_size=2, on_error="fail")
    assert [o["line"] for o in _read(tmp_path / "out.jsonl")] == [1, 2, 3]


def test_unknown_error_mode_rejects_the_line(rec, tmp_path):
    src = _write_jsonl(
        tmp_path / "users.jsonl", [{"user_id": "a", "history": ["i1"]}, {"user_id": "b", "history": ["i1", "zz"]}]
    )
    stats = recommend_jsonl(rec, src, tmp_path / "out.jsonl", k=3, num_beams=5, unknown="error", on_error="skip")
    assert (stats.written, stats.errors) == (1, 1)
    with pytest.raises(DataError, match="users.jsonl:2"):
        recommend_jsonl(rec, src, tmp_path / "out2.jsonl", k=3, num_beams=5, unknown="error")


def test_two_shards_merged_equal_the_single_run(rec, tmp_path):
    src = _with_bad_lines(tmp_path)
    options = dict(k=3, num_beams=5, batch_size=1, on_error="skip")  # batch 1: bit-identical scores across runs
    recommend_jsonl(rec, src, tmp_path / "single.jsonl", **options)
    counts = [recommend_jsonl(rec, src, tmp_path / "merged.jsonl", shard=(i, 2), **options).read for i in range(2)]
    assert counts == [6, 7]  # odd lines to shard 0, even to shard 1; the blank line 9 is not counted
    assert shard_path(tmp_path / "merged.jsonl", 1, 2).is_file()
    assert merge_shards(tmp_path / "merged.jsonl", 2, remove=True) == 8
    assert (tmp_path / "merged.jsonl").read_text() == (tmp_path / "single.jsonl").read_text()
    assert not shard_path(tmp_path / "merged.jsonl", 0, 2).exists()
    with pytest.raises(FileNotFoundError, match="missing shard"):
        merge_shards(tmp_path / "merged.jsonl", 3)


def test_causal_adapter_bundle(tmp_path_factory, tmp_path):
    bundle = cached_bundle("causal-lora", tmp_path_factory)
    src = _write_jsonl(tmp_path / "users.jsonl", _users(5))
    stats = recommend_command(str(bundle), str(src), str(tmp_path / "out.jsonl"), k=3, num_beams=5, batch_size=2)
    assert stats.written == 5
    assert all(len(o["items"]) == 3 for o in _read(tmp_path / "out.jsonl"))


def _load_script():
    spec = importlib.util.spec_from_file_location("batch_recommend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_runs_shards_and_merges(t5_bundle, tmp_path, capsys):
    script = _load_script()
    src = _write_jsonl(tmp_path / "users.jsonl", _users(6))
    out = tmp_path / "out.jsonl"
    common = ["--model", str(t5_bundle), "--input", str(src), "--output", str(out), "--k", "3", "--num_beams", "5"]
    for shard in ("0/2", "1/2"):
        script.main(script.make_parser().parse_args(common + ["--shard", shard, "--batch_size", "1"]))
    script.main(script.make_parser().parse_args(["--output", str(out), "--merge", "2"]))
    assert "merged 2 shards" in capsys.readouterr().out
    single = tmp_path / "single.jsonl"
    script.main(script.make_parser().parse_args([*common[:5], str(single), *common[6:], "--batch_size", "1"]))
    assert out.read_text() == single.read_text()
    with pytest.raises(SystemExit):
        script.make_parser().parse_args(common + ["--shard", "2/2"])


def test_fingerprint_mismatch_fails_before_writing(t5_bundle, rec, tmp_path):
    import dataclasses

    other = dataclasses.replace(rec.index, identifiers=list(reversed(rec.index.identifiers)))
    index_path = other.save(tmp_path / "other.json")
    src = _write_jsonl(tmp_path / "users.jsonl", _users(3))
    with pytest.raises(ItemIndexError, match="trained on item index"):
        recommend_command(str(t5_bundle), str(src), str(tmp_path / "out.jsonl"), index=str(index_path))
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_arguments(rec, tmp_path):
    src = _write_jsonl(tmp_path / "users.jsonl", _users(2))
    for kwargs in ({"on_error": "ignore"}, {"unknown": "keep"}, {"shard": (2, 2)}, {"k": 0}):
        with pytest.raises(ValueError):
            recommend_jsonl(rec, src, tmp_path / "out.jsonl", **kwargs)
    with pytest.raises(FileNotFoundError):
        recommend_jsonl(rec, tmp_path / "missing.jsonl", tmp_path / "out.jsonl")
