"""Readers on tiny fixture files in each real format, their errors, k-core filtering, prepare_dataset and saving."""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

from genrec.data import DataError, InteractionData
from genrec.data import datasets as datasets_module
from genrec.data.prepare import detect_format, prepare_dataset
from genrec.data.readers import (
    k_core_filter,
    read_amazon_2014,
    read_amazon_2018,
    read_movielens_1m,
    read_movielens_100k_raw,
    read_recbole_atomic,
    read_table,
)

FIXTURES = Path(__file__).parent / "fixtures"
TABLE_COLUMNS = {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"}


def sequence(data: InteractionData, user: str) -> list[str]:
    return data.interactions.loc[data.interactions["user_id"] == user, "item_id"].tolist()


# ---------------------------------------------------------------------------------------------- MovieLens
def test_movielens_100k_raw():
    data = read_movielens_100k_raw(FIXTURES / "ml-100k")
    assert (data.num_users, data.num_items, len(data.interactions)) == (3, 5, 11)
    titles = data.titles()
    assert titles["30"] == "Café au lait (1993)"  # latin-1 decoded
    assert "60" not in titles  # listed in u.item but never rated: not part of the catalog
    genres = dict(zip(data.items["item_id"], data.items["genres"]))
    assert genres["10"] == "Animation, Children's, Comedy" and genres["50"] == "unknown"
    # Time order; the tie at t=150 keeps file order (10 before 30).
    assert sequence(data, "2") == ["40", "10", "30", "20"]
    assert data.interactions["rating"].tolist()[:3] == [5.0, 3.0, 4.0]
    assert data.users["user_id"].tolist() == ["1", "2", "3"]  # user 4 has no ratings


def test_movielens_1m():
    data = read_movielens_1m(FIXTURES / "ml-1m")
    assert (data.num_users, data.num_items, len(data.interactions)) == (3, 4, 9)
    assert sequence(data, "1") == ["1193", "914", "661"]
    genres = dict(zip(data.items["item_id"], data.items["genres"]))
    assert genres["661"] == "Animation, Children's, Musical"
    assert set(data.users.columns) >= {"user_id", "gender", "age", "occupation", "zip_code"}


# ---------------------------------------------------------------------------------------------- Amazon
@pytest.mark.parametrize(
    "reader, reviews, meta",
    [
        (read_amazon_2014, "amazon-2014/reviews_Tiny_5.json.gz", "amazon-2014/meta_Tiny.json.gz"),
        (read_amazon_2018, "amazon-2018/Tiny_5.json.gz", "amazon-2018/meta_Tiny.json.gz"),
    ],
)
def test_amazon_five_core_and_metadata(reader, reviews, meta):
    data = reader(FIXTURES / reviews, FIXTURES / meta)
    # A7/B6 fall in the first round, A6 (left with 4 reviews) in the second: the 5x5 core remains.
    assert sorted(data.interactions["user_id"].unique()) == ["A1", "A2", "A3", "A4", "A5"]
    assert sorted(data.items["item_id"]) == ["B1", "B2", "B3", "B4", "B5"]
    assert len(data.interactions) == 25  # the 2018 file's verbatim duplicate review is dropped
    items = data.items.set_index("item_id")
    assert items.loc["B2", "description"] == "Soft lips."
    assert items.loc["B1", "brand"] == "Ro"
    if reader is read_amazon_2014:
        assert items.loc["B1", "categories"] == "Beauty, Bath, Soap"  # category paths flattened, unique
        assert items.loc["B5", "title"] == ""  # metadata without a title
        assert data.name == "amazon-tiny-2014"
    else:
        assert items.loc["B1", "title"] == "Rose & Soap"  # HTML entities unescaped
        assert items.loc["B5", "title"] == "Comb"  # first of two metadata rows
        assert data.name == "amazon-tiny-2018"
    assert data.meta["k_core"] == 5


def test_amazon_without_filtering_and_plain_files(tmp_path):
    plain = tmp_path / "reviews_Tiny_5.json"
    plain.write_bytes(gzip.decompress((FIXTURES / "amazon-2014/reviews_Tiny_5.json.gz").read_bytes()))
    data = read_amazon_2014(plain, meta_path=None, k_core=None)
    assert len(data.interactions) == 31 and data.num_users == 7 and data.num_items == 6
    assert set(data.items["title"]) == {""}


def test_k_core_filter_cascades_and_keeps_order():
    rows = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(timestamp=range(6))
    # c has 1 interaction → dropped; u3 then has 1 → dropped; a and b keep 2 each.
    out = k_core_filter(df, 2)
    assert list(zip(out["user_id"], out["item_id"])) == rows[:4]
    assert len(k_core_filter(df, 1)) == 6
    with pytest.raises(DataError, match="no interaction survives 3-core"):
        k_core_filter(df, 3)
    with pytest.raises(ValueError, match="positive integer"):
        k_core_filter(df, 0)


# ---------------------------------------------------------------------------------------------- RecBole / table
def test_recbole_atomic():
    data = read_recbole_atomic(FIXTURES / "recbole" / "tiny")
    assert data.titles() == {"i1": "title one", "i2": "title two", "i3": "title three"}
    assert sequence(data, "u2") == ["i2", "i3", "i1"]


def test_read_table_with_mapping():
    data = read_table(
        FIXTURES / "table" / "interactions.csv",
        columns=TABLE_COLUMNS,
        items_path=FIXTURES / "table" / "items.csv",
        item_columns={"item_id": "iid", "title": "name", "kind": "kind"},
    )
    assert sequence(data, "alice") == ["b", "c", "a"]  # sorted by ts
    assert sequence(data, "bob") == ["b", "c", "a"]  # tie at ts=10 keeps file order
    assert data.titles() == {"a": "Apple, red", "b": "Banana", "c": "Carrot"}  # d has no interactions
    assert data.interactions["rating"].tolist()[:3] == [4, 3, 5]


def test_read_table_parquet_dates_and_file_order(tmp_path):
    df = pd.DataFrame(
        {"u": ["x", "x", "y"], "i": ["1", "2", "1"], "when": ["2020-01-02", "2020-01-01 12:00", "2021-05-05"]}
    )
    df.to_parquet(tmp_path / "t.parquet")
    data = read_table(tmp_path / "t.parquet", columns={"user_id": "u", "item_id": "i", "timestamp": "when"})
    assert sequence(data, "x") == ["2", "1"]
    assert data.interactions["timestamp"].iloc[0] == 1577880000  # 2020-01-01 12:00 UTC in seconds
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    data = read_table(tmp_path / "t.tsv", columns={"user_id": "u", "item_id": "i"})  # no time: file order
    assert sequence(data, "x") == ["1", "2"]


# ---------------------------------------------------------------------------------------------- errors
def _copy_with(tmp_path: Path, fixture: str, filename: str, bad_line: str | None, gz: bool = False) -> Path:
    """Copy a fixture directory and append ``bad_line`` to one of its files (line number = old line count + 1)."""
    target = tmp_path / Path(fixture).name
    shutil.copytree(FIXTURES / fixture, target)
    path = target / filename
    text = (gzip.decompress(path.read_bytes()) if gz else path.read_bytes()).decode("latin-1")
    text = text + bad_line + "\n"
    path.write_bytes(gzip.compress(text.encode("latin-1")) if gz else text.encode("latin-1"))
    return target


MALFORMED = [
    # (fixture dir, file, appended line, read(directory), expected line number, message fragment)
    ("ml-100k", "u.data", "4\t10\t5", read_movielens_100k_raw, 12, "expected 4"),
    ("ml-100k", "u.data", "4\tten\t5\t100", read_movielens_100k_raw, 12, "invalid literal"),
    ("ml-100k", "u.item", "70|Short|x", read_movielens_100k_raw, 7, "expected 24"),
    ("ml-1m", "ratings.dat", "4::1193::5", read_movielens_1m, 10, "expected 4"),
    ("ml-1m", "movies.dat", "77::No genres", read_movielens_1m, 6, "expected 3"),
    ("ml-1m", "users.dat", "4::F::old::10::48067", read_movielens_1m, 4, "invalid literal"),
    ("recbole/tiny", "tiny.inter", "u3\ti1\t5", read_recbole_atomic, 8, "expected 4"),
    ("amazon-2014", "reviews_Tiny_5.json.gz", '{"reviewerID": "A9", "asin": "B1"', None, 32, ""),
    ("amazon-2014", "reviews_Tiny_5.json.gz", '{"reviewerID": "A9", "asin": "B1"}', None, 32, "unixReviewTime"),
    ("amazon-2014", "meta_Tiny.json.gz", "{'asin': 'B1', 'title': 'broken'", None, 8, ""),
    ("amazon-2018", "meta_Tiny.json.gz", '["B1"]', None, 7, "expected a record"),
]


@pytest.mark.parametrize("fixture, filename, bad, read, line_no, fragment", MALFORMED)
def test_malformed_line_names_file_and_line(tmp_path, fixture, filename, bad, read, line_no, fragment):
    directory = _copy_with(tmp_path, fixture, filename, bad, gz=filename.endswith(".gz"))
    with pytest.raises(DataError, match=rf"{filename}:{line_no}: .*{fragment}"):
        if read is None:
            prepare_dataset(directory)
        else:
            read(directory)


def test_malformed_table_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("uid,iid,ts\nalice,a,1\n\nbob,,2\n")
    with pytest.raises(DataError, match=r"t.csv:4: empty item_id"):
        read_table(path, columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
    path.write_text("uid,iid,ts\nalice,a,1\nbob,b,yesterday-ish\n")
    with pytest.raises(DataError, match=r"t.csv:3: timestamp 'yesterday-ish'"):
        read_table(path, columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
    path.write_text("uid,iid,ts\nalice,a,1\nbob,b,2,extra\n")
    with pytest.raises(DataError, match=r"t.csv: .*line 3"):
        read_table(path, columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})


def test_missing_columns_files_and_empty_data(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) \['user'\]"):
        read_table(FIXTURES / "table" / "interactions.csv", columns={"user_id": "user", "item_id": "iid"})
    with pytest.raises(DataError, match="u.data not found"):
        read_movielens_100k_raw(tmp_path)
    (tmp_path / "reviews_Empty_5.json").write_text("\n")
    with pytest.raises(DataError, match="no interactions"):
        read_amazon_2014(tmp_path / "reviews_Empty_5.json")
    (tmp_path / "truncated.json.gz").write_bytes((FIXTURES / "amazon-2018/Tiny_5.json.gz").read_bytes()[:100])
    with pytest.raises(DataError, match="truncated.json.gz:"):
        read_amazon_2018(tmp_path / "truncated.json.gz")


# ---------------------------------------------------------------------------------------------- prepare_dataset
@pytest.mark.parametrize(
    "path, fmt",
    [
        ("ml-100k", "ml-100k"), ("ml-1m", "ml-1m"), ("recbole/tiny", "recbole"), ("amazon-2014", "amazon-2014"),
        ("amazon-2018", "amazon-2018"), ("table/interactions.csv", "table"), ("recbole/tiny/tiny.inter", "recbole"),
    ],
)  # fmt: skip
def test_prepare_detects_layout(path, fmt):
    assert detect_format(FIXTURES / path) == fmt
    options = {"columns": TABLE_COLUMNS} if fmt == "table" else {}
    data = prepare_dataset(FIXTURES / path, **options)
    assert data.meta["format"] == fmt and len(data.interactions) > 0


def test_prepare_options_and_errors(tmp_path, monkeypatch):
    data = prepare_dataset(FIXTURES / "amazon-2014", k_core=0, name="beauty-mini")
    assert (len(data.interactions), data.name) == (31, "beauty-mini")
    data = prepare_dataset(FIXTURES / "ml-100k", k_core=2)  # item 50 has a single rating
    assert (data.num_items, len(data.interactions), data.meta["k_core"]) == (4, 10, 2)
    assert "50" not in data.titles()
    with pytest.raises(DataError, match="unknown dataset 'no-such-set'"):
        prepare_dataset("no-such-set")
    with pytest.raises(DataError, match="unknown format"):
        prepare_dataset(FIXTURES / "ml-100k", fmt="csv-ish")
    with pytest.raises(DataError, match=r"does not take option\(s\) \['meta_path'\]"):
        prepare_dataset(FIXTURES / "ml-1m", meta_path="x")
    with pytest.raises(DataError, match="cannot tell the format"):
        prepare_dataset(tmp_path)
    with pytest.raises(DataError, match="unknown Amazon 2014 category"):
        prepare_dataset("amazon-nothing-2014")

    # ML-1M offline: a clear error that says what to do instead, and nothing half-written in the cache.
    def offline(url, dest, timeout=20.0):
        raise OSError("network unreachable")

    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets_module, "_download", offline)
    with pytest.raises(DataError, match=r"could not download ML-1M .*genrec prepare path/to/ml-1m"):
        prepare_dataset("movielens-1m")
    assert not any((tmp_path / "cache").iterdir())


# ---------------------------------------------------------------------------------------------- saving
def test_save_load_round_trip(tmp_path):
    data = read_movielens_100k_raw(FIXTURES / "ml-100k")
    data.save(tmp_path / "ds")
    loaded = InteractionData.load(tmp_path / "ds")
    pd.testing.assert_frame_equal(loaded.interactions, data.interactions)
    pd.testing.assert_frame_equal(loaded.items, data.items)
    pd.testing.assert_frame_equal(loaded.users, data.users)
    assert loaded.name == "ml-100k" and loaded.sequences() == data.sequences()


def test_failing_save_leaves_nothing_loadable(tmp_path, monkeypatch):
    data = read_movielens_1m(FIXTURES / "ml-1m")
    original = pd.DataFrame.to_parquet

    def fail_on_items(self, path, *args, **kwargs):
        if Path(path).name == "items.parquet":
            raise OSError("disk full")
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_on_items)
    with pytest.raises(OSError, match="disk full"):
        data.save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # no directory, no temporary left behind
    with pytest.raises(FileNotFoundError):
        InteractionData.load(tmp_path / "new")

    # Over an existing dataset: the failed save keeps the previous, complete one.
    monkeypatch.setattr(pd.DataFrame, "to_parquet", original)
    read_recbole_atomic(FIXTURES / "recbole" / "tiny").save(tmp_path / "old")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_on_items)
    with pytest.raises(OSError):
        data.save(tmp_path / "old")
    assert InteractionData.load(tmp_path / "old").name == "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


# ---------------------------------------------------------------------------------------------- data_prep scripts
SCRIPTS = [
    ("prepare_movielens.py", ["--path", "ml-1m"], (3, 4, 9)),
    ("prepare_amazon.py", ["--version", "2014", "--reviews", "amazon-2014/reviews_Tiny_5.json.gz"], (5, 5, 25)),
    ("prepare_amazon.py", ["--version", "2018", "--reviews", "amazon-2018", "--k-core", "0"], (7, 6, 31)),
    ("prepare_recbole.py", ["--path", "recbole/tiny"], (2, 3, 6)),
    (
        "prepare_table.py",
        ["--interactions", "table/interactions.csv", "--user-col", "uid", "--item-col", "iid", "--time-col", "ts"]
        + ["--items", "table/items.csv", "--title-col", "name", "--item-text-cols", "kind"],
        (2, 3, 6),
    ),
]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name[:-3], Path(__file__).parents[1] / "data_prep" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, argv, expected", SCRIPTS)
def test_data_prep_scripts(tmp_path, monkeypatch, script, argv, expected):
    module = _script(script)
    monkeypatch.chdir(FIXTURES)
    stats = module.main(argv + ["--out", str(tmp_path / "out")])
    assert (stats["users"], stats["items"], stats["interactions"]) == expected
    assert InteractionData.load(tmp_path / "out").stats() == stats
    assert module.main(argv + ["--out", str(tmp_path / "out")]) == stats  # its own previous output is replaced


def test_data_prep_script_refuses_foreign_output_without_a_traceback(tmp_path, monkeypatch, capsys):
    module = _script("prepare_recbole.py")
    monkeypatch.chdir(FIXTURES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--path", "recbole/tiny", "--out", str(out)])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--path", "recbole/missing", "--out", str(tmp_path / "other")])
    assert exit_info.value.code == 2 and not (tmp_path / "other").exists()
    module.main(["--path", "recbole/tiny", "--out", str(out), "--overwrite"])
    assert InteractionData.load(out).stats()["interactions"] == 6
