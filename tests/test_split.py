"""``data.split_method=authors``: the authors' validation draw, item for item."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cfme.data import InteractionDataModule
from cfme.data.reader import read_adjacency_list
from cfme.data.split import authors_validation_split, split_validation, validation_split


def write_files(directory, seed=0, num_users=40, num_items=5000):
    """LightGCN-format train.txt / test.txt; test lines in shuffled user order, with a
    repeated item, one-item users and ids large enough that set order is not sorted order."""
    rng = np.random.default_rng(seed)
    lines = {}
    for name, low, high in (("train.txt", 1, 6), ("test.txt", 1, 14)):
        users = np.arange(num_users)
        if name == "test.txt":
            users = rng.permutation(users)
        text = []
        for u in users:
            items = rng.choice(num_items, size=rng.integers(low, high), replace=False).tolist()
            if name == "test.txt" and u == users[0]:
                items.append(items[0])  # a duplicate id on a line
            text.append(" ".join(map(str, [int(u)] + items)))
        (directory / name).write_text("\n".join(text) + "\n")
        lines[name] = text
    return lines["test.txt"]


def reference_draw(test_lines, seed):
    """The authors' loader, as written there: global legacy seed, one choice per line."""
    np.random.seed(seed)
    val = set()
    for line in test_lines:
        tokens = line.strip().split(" ")
        items = list(set(int(i) for i in tokens[1:]))
        user = int(tokens[0])
        if items:
            size = max(1, int(np.ceil((1 / 3) * len(items))))
            val |= {(user, int(i)) for i in np.random.choice(items, size=size, replace=False)}
    return val


def drawn(users, items, mask):
    return set(zip(users[mask].tolist(), items[mask].tolist(), strict=True))


@pytest.mark.parametrize("seed", [2024, 2025])
def test_authors_split_repeats_their_loader(tmp_path, seed):
    lines = write_files(tmp_path)
    inter = read_adjacency_list(tmp_path / "test.txt")
    # the case this must get right: a line whose set order is not its sorted order
    assert any(list(set(map(int, ln.split()[1:]))) != sorted(set(map(int, ln.split()[1:])))
               for ln in lines)
    mask = authors_validation_split(inter.users, inter.items, seed)
    assert drawn(inter.users, inter.items, mask) == reference_draw(lines, seed)
    # sizes follow the protocol, user by user
    counts = np.bincount(inter.users)
    val_counts = np.bincount(inter.users[mask], minlength=len(counts))
    for u, n in enumerate(counts):
        assert val_counts[u] == (max(1, math.ceil(n / 3)) if n else 0)


def test_authors_split_differs_by_seed_and_from_default(tmp_path):
    write_files(tmp_path, num_users=200)
    inter = read_adjacency_list(tmp_path / "test.txt")
    a = split_validation(inter.users, inter.items, 2024, "authors")
    b = split_validation(inter.users, inter.items, 2025, "authors")
    d = split_validation(inter.users, inter.items, 2024, "default")
    np.testing.assert_array_equal(d, validation_split(inter.users, 2024))
    assert a.sum() == b.sum() == d.sum()
    assert not np.array_equal(a, b) and not np.array_equal(a, d)
    with pytest.raises(ValueError, match="data.split_method='author'"):
        split_validation(inter.users, inter.items, 2024, "author")


@pytest.mark.parametrize("reorder", ["metis", "none"])
def test_datamodule_draws_on_the_files_ids(tmp_path, reorder):
    lines = write_files(tmp_path, num_users=60, num_items=3000)
    dm = InteractionDataModule("custom", root=str(tmp_path), download=False, reorder=reorder,
                               split_method="authors", split_seed=7)
    dm.setup()
    users = dm.user_ids[np.repeat(np.arange(dm.num_users), dm.val.degree())]
    val = set(zip(users.tolist(), dm.item_ids[dm.val.indices].tolist(), strict=True))
    assert val == reference_draw(lines, 7)


def test_bad_split_method_is_refused():
    with pytest.raises(ValueError, match="data.split_method='numpy'"):
        InteractionDataModule("synthetic", split_method="numpy")


def test_a_user_on_lines_apart_is_drawn_once_with_a_warning(caplog):
    users, items = np.array([0, 0, 1, 0, 0, 0]), np.array([5, 6, 7, 8, 9, 10])
    with caplog.at_level("WARNING", logger="cfme.data.split"):
        authors_validation_split(users[:3], items[:3], 1)
        assert caplog.text == ""
        mask = authors_validation_split(users, items, 1)
    assert "1 more groups of lines than users" in caplog.text
    assert mask[users == 0].sum() == 2 and mask[users == 1].sum() == 1  # ceil(5 / 3), 1
