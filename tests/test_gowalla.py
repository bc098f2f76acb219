"""The real gowalla files (LightGCN split): sizes and the validation/test split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_split import reference_draw

from cfme.data import InteractionDataModule, load_split

pytestmark = pytest.mark.slow

USERS, ITEMS, TRAIN, TEST = 29_858, 40_981, 810_128, 217_242


@pytest.fixture(scope="module")
def root(data_root):
    missing = [f for f in ("train.txt", "test.txt") if not (data_root / "gowalla" / f).is_file()]
    if missing:
        pytest.skip(f"gowalla {', '.join(missing)} not found under {data_root}/gowalla "
                    "(set CFME_DATA_ROOT)")
    return data_root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gowalla-cache")


@pytest.fixture(scope="module")
def raw(root, cache_dir):
    return load_split("gowalla", str(root), cache_dir=str(cache_dir), download=False)


@pytest.fixture(scope="module")
def dm(root, raw, cache_dir):
    module = InteractionDataModule(name="gowalla", root=str(root), cache_dir=str(cache_dir),
                                   download=False)
    module.prepare_data()
    module.setup()
    return module


def test_raw_sizes(raw, cache_dir):
    assert (raw.num_users, raw.num_items) == (USERS, ITEMS)
    assert len(raw.train_users) == len(raw.train_items) == TRAIN
    assert len(raw.test_users) == len(raw.test_items) == TEST
    assert int(raw.train_items.max()) == ITEMS - 1
    assert len(list(cache_dir.glob("gowalla-*.npz"))) == 1
    # every user has train and test items in this split
    assert np.unique(raw.train_users).size == USERS
    assert np.unique(raw.test_users).size == USERS


def test_datamodule_sizes(dm):
    assert (dm.num_users, dm.num_items) == (USERS, ITEMS)
    assert len(dm.train) == TRAIN
    assert len(dm.val) + len(dm.test) == TEST
    stats = dm.stats()
    assert stats["num_train"] == TRAIN
    assert stats["num_val"] + stats["num_test"] == TEST
    assert dm.sampler.num_triplets == 5 * TRAIN


def test_validation_test_split(dm, raw):
    per_user = np.bincount(raw.test_users, minlength=USERS)
    has_test = per_user > 0
    expected_val = np.where(has_test, np.maximum(1, -(-per_user // 3)), 0)
    expected_test = per_user - expected_val
    # the closed form agrees with math.ceil on a few users
    for u in range(0, USERS, 997):
        if per_user[u]:
            assert expected_val[u] == max(1, math.ceil(per_user[u] / 3))

    val_deg, test_deg = dm.val.degree(), dm.test.degree()  # internal (reordered) user ids
    np.testing.assert_array_equal(val_deg, expected_val[dm.user_ids])
    np.testing.assert_array_equal(test_deg, expected_test[dm.user_ids])
    total_val, total_test = int(expected_val.sum()), int(expected_test.sum())
    print(f"gowalla split: {total_val} validation + {total_test} test = {total_val + total_test}")
    assert len(dm.val) == total_val and len(dm.test) == total_test
    assert total_val + total_test == TEST

    # validation and test of each user partition that user's test items
    test_pairs = set(zip(raw.test_users.tolist(), raw.test_items.tolist(), strict=True))
    val_users = dm.user_ids[np.repeat(np.arange(USERS), val_deg)]  # back to the files' ids
    test_users = dm.user_ids[np.repeat(np.arange(USERS), test_deg)]
    val_pairs = set(zip(val_users.tolist(), dm.item_ids[dm.val.indices].tolist(), strict=True))
    rest_pairs = set(zip(test_users.tolist(), dm.item_ids[dm.test.indices].tolist(),
                         strict=True))
    assert not val_pairs & rest_pairs
    assert val_pairs | rest_pairs == test_pairs


def test_authors_split(root, raw, dm):
    """``split_method=authors`` on the real files: their loader's items, other items than ours."""
    from cfme.data.split import authors_validation_split

    authors = authors_validation_split(raw.test_users, raw.test_items, 2024)
    # the authors' loop, as in their data loader, over the real test.txt
    expected = reference_draw((root / "gowalla" / "test.txt").read_text().splitlines(), 2024)
    drawn = zip(raw.test_users[authors].tolist(), raw.test_items[authors].tolist(), strict=True)
    assert set(drawn) == expected
    per_user = np.bincount(raw.test_users, minlength=USERS)
    expected_val = np.where(per_user > 0, np.maximum(1, -(-per_user // 3)), 0)
    np.testing.assert_array_equal(np.bincount(raw.test_users[authors], minlength=USERS),
                                  expected_val)
    # the default draw (dm, seed 2024) keeps other test items: a share near 2/3 in common
    rest = raw.test_users[~authors] * ITEMS + raw.test_items[~authors]
    test_users = dm.user_ids[np.repeat(np.arange(USERS), dm.test.degree())]
    ours = test_users * ITEMS + dm.item_ids[dm.test.indices]
    shared = np.intersect1d(rest, ours).size / rest.size
    print(f"gowalla test pairs shared by the authors' draw and ours (seed 2024): {shared:.4f}")
    assert rest.size == ours.size and 0.55 < shared < 0.75
