"""cfme.data.reader (LightGCN adjacency-list parser) and cfme.data.datasets (files, cache)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

import cfme.data.datasets as datasets
from cfme.data import DataFormatError, DatasetUnavailableError, load_split, read_adjacency_list
from cfme.data.datasets import ensure_files


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# reader


def test_parse_small_file(tmp_path):
    f = write(tmp_path / "train.txt", "0 1 2 3\n1 0\n\n3 4 2\n")
    inter = read_adjacency_list(f)
    np.testing.assert_array_equal(inter.users, [0, 0, 0, 1, 3, 3])
    np.testing.assert_array_equal(inter.items, [1, 2, 3, 0, 4, 2])
    assert inter.users.dtype == np.int64 and inter.items.dtype == np.int64
    assert len(inter) == 6
    assert inter.duplicates == 0
    assert inter.path == str(f)


def test_parse_tolerates_crlf_tabs_and_trailing_blank_lines(tmp_path):
    f = write(tmp_path / "t.txt", "2\t5  7\r\n0 1\r\n\r\n\n")
    inter = read_adjacency_list(f)
    np.testing.assert_array_equal(inter.users, [2, 2, 0])
    np.testing.assert_array_equal(inter.items, [5, 7, 1])


def test_declared_sizes_accept_ids_below_them(tmp_path):
    f = write(tmp_path / "t.txt", "0 1\n2 3\n")
    inter = read_adjacency_list(f, num_users=3, num_items=4)
    assert len(inter) == 2


def _assert_error_at(excinfo, path: Path, line: int):
    msg = str(excinfo.value)
    assert f"{path}:{line}:" in msg, msg


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("0 1 2\n1 2 x3\n", 2, "x3"),
        ("0 1 2\n1 2\n2 1.5\n", 3, "1.5"),
        ("0 1\nabc 2\n", 2, "abc"),
    ],
    ids=["letter", "float", "user-token"],
)
def test_non_integer_token(tmp_path, text, line, words):
    f = write(tmp_path / "train.txt", text)
    with pytest.raises(DataFormatError) as excinfo:
        read_adjacency_list(f)
    _assert_error_at(excinfo, f, line)
    assert words in str(excinfo.value)


@pytest.mark.parametrize("text, line", [("0 1\n1 -2 3\n", 2), ("0 1\n\n-1 3\n", 3)],
                         ids=["negative-item", "negative-user"])
def test_negative_id(tmp_path, text, line):
    f = write(tmp_path / "train.txt", text)
    with pytest.raises(DataFormatError, match="negative") as excinfo:
        read_adjacency_list(f)
    _assert_error_at(excinfo, f, line)


def test_user_without_items(tmp_path):
    f = write(tmp_path / "train.txt", "0 1 2\n1 3\n2\n3 4\n")
    with pytest.raises(DataFormatError, match="no items") as excinfo:
        read_adjacency_list(f)
    _assert_error_at(excinfo, f, 3)


def test_user_beyond_declared(tmp_path):
    f = write(tmp_path / "train.txt", "0 1\n1 2\n5 0\n")
    with pytest.raises(DataFormatError, match="user id 5") as excinfo:
        read_adjacency_list(f, num_users=5, num_items=10)
    _assert_error_at(excinfo, f, 3)
    assert "5 users" in str(excinfo.value)


def test_item_beyond_declared(tmp_path):
    f = write(tmp_path / "train.txt", "0 1\n1 2 9 4\n")
    with pytest.raises(DataFormatError, match="item id 9") as excinfo:
        read_adjacency_list(f, num_users=5, num_items=9)
    _assert_error_at(excinfo, f, 2)


def test_id_overflowing_int64(tmp_path):
    f = write(tmp_path / "train.txt", "0 1\n1 99999999999999999999\n")
    try:
        read_adjacency_list(f)
    except DataFormatError as err:
        assert f"{f}:2:" in str(err)
    except Exception as err:  # the bug: an unrelated exception type
        pytest.fail(f"{type(err).__name__}: {err}")
    else:
        pytest.fail("no error raised")


@pytest.mark.parametrize("text", ["", "\n\n  \n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file(tmp_path, text):
    f = write(tmp_path / "test.txt", text)
    with pytest.raises(DataFormatError, match="empty") as excinfo:
        read_adjacency_list(f)
    assert str(f) in str(excinfo.value)


def test_missing_file(tmp_path):
    f = tmp_path / "nope" / "train.txt"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_adjacency_list(f)
    assert str(f) in str(excinfo.value)


def test_duplicates_dropped_with_warning(tmp_path, caplog):
    # (0, 1) twice on one line, (2, 5) repeated on another line of the same user: 2 duplicates
    f = write(tmp_path / "train.txt", "0 1 3 1\n2 5\n1 3\n2 5 6\n")
    with caplog.at_level(logging.WARNING, logger="cfme.data.reader"):
        inter = read_adjacency_list(f)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert re.search(r"\b2 duplicate", msg), msg
    assert str(f) in msg
    assert inter.duplicates == 2
    pairs = list(zip(inter.users.tolist(), inter.items.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 3), (2, 5), (1, 3), (2, 6)]


def test_no_warning_without_duplicates(tmp_path, caplog):
    f = write(tmp_path / "train.txt", "0 1 3\n1 1 3\n")
    with caplog.at_level(logging.WARNING):
        inter = read_adjacency_list(f)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert inter.duplicates == 0


# ---------------------------------------------------------------------------------------------
# datasets


@pytest.fixture
def custom_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    write(d / "train.txt", "0 0 1 2\n1 2 3\n3 1\n")
    write(d / "test.txt", "0 5\n1 4\n4 0 1\n")  # user 4 and item 5 only in test
    return d


def test_load_split_custom_and_cache(custom_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    before = snapshot(custom_dir)

    first = load_split(name="custom", root=str(custom_dir), cache_dir=str(cache))
    assert (first.num_users, first.num_items) == (5, 6)
    np.testing.assert_array_equal(first.train_users, [0, 0, 0, 1, 1, 3])
    np.testing.assert_array_equal(first.train_items, [0, 1, 2, 2, 3, 1])
    np.testing.assert_array_equal(first.test_users, [0, 1, 4, 4])
    np.testing.assert_array_equal(first.test_items, [5, 4, 0, 1])
    cached = sorted(cache.glob("*.npz"))
    assert len(cached) == 1, list(cache.iterdir())

    # The second call must come from the cache: the text parser may not run again.
    def no_parse(*args, **kwargs):
        raise AssertionError("text parsed although a current cache exists")

    monkeypatch.setattr(datasets, "read_adjacency_list", no_parse)
    second = load_split(name="custom", root=str(custom_dir), cache_dir=str(cache))
    assert (second.num_users, second.num_items) == (5, 6)
    for field in ("train_users", "train_items", "test_users", "test_items"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert sorted(cache.glob("*.npz")) == cached

    # the data directory is only ever read
    assert snapshot(custom_dir) == before
    assert sorted(os.listdir(custom_dir)) == ["test.txt", "train.txt"]


def test_cache_invalidated_by_content_change(custom_dir, tmp_path):
    cache = tmp_path / "cache"
    first = load_split(name="custom", root=str(custom_dir), cache_dir=str(cache))
    write(custom_dir / "test.txt", "0 5\n1 4\n6 0 7\n")
    second = load_split(name="custom", root=str(custom_dir), cache_dir=str(cache))
    assert (first.num_users, first.num_items) == (5, 6)
    assert (second.num_users, second.num_items) == (7, 8)
    np.testing.assert_array_equal(second.test_users, [0, 1, 6, 6])
    np.testing.assert_array_equal(second.test_items, [5, 4, 0, 7])
    assert len(list(cache.glob("*.npz"))) == 2


def test_load_split_without_cache_dir(custom_dir):
    split = load_split(name="custom", root=str(custom_dir), cache_dir=None)
    assert (split.num_users, split.num_items) == (5, 6)
    assert sorted(os.listdir(custom_dir)) == ["test.txt", "train.txt"]


def test_load_split_reports_bad_test_file(custom_dir, tmp_path):
    write(custom_dir / "test.txt", "0 5\n1 y\n")
    with pytest.raises(DataFormatError) as excinfo:
        load_split(name="custom", root=str(custom_dir), cache_dir=str(tmp_path / "c"))
    assert f"{custom_dir / 'test.txt'}:2:" in str(excinfo.value)


def test_ensure_files_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailableError) as excinfo:
        ensure_files("amazon-book", root=str(tmp_path), download=False)
    msg = str(excinfo.value)
    assert str(tmp_path / "amazon-book" / "train.txt") in msg
    assert str(tmp_path / "amazon-book" / "test.txt") in msg
    assert "data.root" in msg
    assert isinstance(excinfo.value, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []  # nothing created when downloads are off


def test_ensure_files_names_only_the_missing_file(tmp_path):
    d = tmp_path / "yelp2018"
    d.mkdir()
    write(d / "train.txt", "0 1\n")
    with pytest.raises(DatasetUnavailableError) as excinfo:
        ensure_files("yelp2018", root=str(tmp_path), download=False)
    msg = str(excinfo.value)
    assert str(d / "test.txt") in msg
    assert str(d / "train.txt") not in msg


def test_ensure_files_custom_message(tmp_path):
    with pytest.raises(DatasetUnavailableError) as excinfo:
        ensure_files("custom", root=str(tmp_path), download=True)
    msg = str(excinfo.value)
    assert str(tmp_path / "train.txt") in msg and str(tmp_path / "test.txt") in msg
    assert "downloads are off" not in msg
    assert "<root>/custom/" not in msg


def test_ensure_files_present(custom_dir):
    paths = ensure_files("custom", root=str(custom_dir), download=False)
    assert paths == {"train.txt": str(custom_dir / "train.txt"),
                     "test.txt": str(custom_dir / "test.txt")}
