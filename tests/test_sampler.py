"""cfme.data.sampler (BPR triplets) and cfme.data.split (validation split)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cfme.data.datamodule import CSRPairs
from cfme.data.sampler import EpochTriplets, TripletSampler
from cfme.data.split import validation_split

NUM_USERS, NUM_ITEMS, N_NEG = 40, 30, 5


class IdentityPermutation:
    """A Generator stand-in whose ``permutation`` is the identity; everything else is real.

    With it, ``TripletSampler.sample`` returns its triplets unshuffled: drawn user ``r`` owns
    rows ``r * n_neg .. r * n_neg + n_neg - 1``.
    """

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def permutation(self, x):
        self._rng.permutation(x)  # keep the stream identical to the real generator's
        return np.arange(x) if np.ndim(x) == 0 else np.asarray(x).copy()

    def __getattr__(self, name):
        return getattr(self._rng, name)


def random_pairs(seed: int, num_users=NUM_USERS, num_items=NUM_ITEMS, empty=(3, 17, 39)):
    """Random distinct (user, item) pairs; users in ``empty`` have none; degrees 1..15."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(num_users):
        if u in empty:
            continue
        deg = int(rng.integers(1, 16))
        users += [u] * deg
        items += rng.choice(num_items, size=deg, replace=False).tolist()
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)


@pytest.fixture(params=[0, 1, 2])
def case(request):
    users, items = random_pairs(request.param)
    csr = CSRPairs(users, items, NUM_USERS)
    sampler = TripletSampler(csr.indptr, csr.indices, NUM_ITEMS, N_NEG)
    positives = set(zip(users.tolist(), items.tolist(), strict=True))
    return sampler, positives, users, request.param


def test_csr_pairs_layout():
    users, items = random_pairs(5)
    csr = CSRPairs(users, items, NUM_USERS)
    assert len(csr) == len(users)
    for u in range(NUM_USERS):
        row = csr.indices[csr.indptr[u]:csr.indptr[u + 1]].tolist()
        assert row == sorted(items[users == u].tolist())


def test_sample_triplets_valid(case):
    sampler, positives, users, seed = case
    u, i, j = sampler.sample(np.random.default_rng(seed))
    n = len(users) * N_NEG
    assert len(u) == len(i) == len(j) == n == sampler.num_triplets
    for a in (u, i, j):
        assert a.dtype == np.int64
    assert ((j >= 0) & (j < NUM_ITEMS)).all()
    for uu, ii, jj in zip(u.tolist(), i.tolist(), j.tolist(), strict=True):
        assert (uu, ii) in positives, f"positive ({uu}, {ii}) is not a training pair"
        assert (uu, jj) not in positives, f"negative ({uu}, {jj}) is a training pair"
    active = {uu for uu, _ in positives}
    assert set(u.tolist()) <= active
    assert not {3, 17, 39} & set(u.tolist())


def test_negatives_distinct_within_each_drawn_user(case):
    sampler, positives, users, seed = case
    u, i, j = sampler.sample(IdentityPermutation(seed))
    n = len(users)
    u, i, j = u.reshape(n, N_NEG), i.reshape(n, N_NEG), j.reshape(n, N_NEG)
    assert (u == u[:, :1]).all() and (i == i[:, :1]).all()  # one draw = one block
    for row in j:
        assert len(set(row.tolist())) == N_NEG, row
    # the real generator returns a permutation of the very same triplets
    ru, ri, rj = sampler.sample(np.random.default_rng(seed))
    assert sorted(zip(ru.tolist(), ri.tolist(), rj.tolist(), strict=True)) == sorted(
        zip(u.ravel().tolist(), i.ravel().tolist(), j.ravel().tolist(), strict=True))
    # and it is shuffled, not left in blocks
    assert not np.array_equal(ru, u.ravel())


def test_negatives_distinct_when_nearly_saturated():
    # every user has num_items - n_neg positives: its negatives are forced to be the other 5
    rng = np.random.default_rng(7)
    users, items = [], []
    for u in range(6):
        chosen = rng.choice(12, size=7, replace=False)
        users += [u] * 7
        items += chosen.tolist()
    users, items = np.array(users), np.array(items)
    csr = CSRPairs(users, items, 6)
    sampler = TripletSampler(csr.indptr, csr.indices, 12, 5)
    u, _, j = sampler.sample(IdentityPermutation(1))
    for uu, row in zip(u.reshape(-1, 5)[:, 0], j.reshape(-1, 5), strict=True):
        expected = set(range(12)) - set(items[users == uu].tolist())
        assert set(row.tolist()) == expected


def test_users_drawn_roughly_uniformly():
    users, items = random_pairs(11, num_users=10, num_items=400, empty=())
    # degrees differ a lot but users are drawn uniformly, not by degree
    csr = CSRPairs(users, items, 10)
    sampler = TripletSampler(csr.indptr, csr.indices, 400, 1)
    counts = np.zeros(10)
    for s in range(20):
        u, _, _ = sampler.sample(np.random.default_rng(s))
        counts += np.bincount(u, minlength=10)
    share = counts / counts.sum()
    assert np.abs(share - 0.1).max() < 0.03, share


def test_sample_reproducible(case):
    sampler, _, _, seed = case
    a = sampler.sample(np.random.default_rng(seed + 100))
    b = sampler.sample(np.random.default_rng(seed + 100))
    c = sampler.sample(np.random.default_rng(seed + 101))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_too_dense_user_raises():
    # user 1 interacts with 8 of 10 items: only 2 negatives exist, n_neg = 3
    users = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    items = np.array([0, 1, 0, 1, 2, 3, 4, 5, 6, 7])
    csr = CSRPairs(users, items, 2)
    with pytest.raises(ValueError, match="user 1"):
        TripletSampler(csr.indptr, csr.indices, 10, 3)
    TripletSampler(csr.indptr, csr.indices, 10, 2)  # exactly enough negatives is fine


def test_n_neg_must_be_positive():
    csr = CSRPairs(np.array([0]), np.array([1]), 1)
    with pytest.raises(ValueError):
        TripletSampler(csr.indptr, csr.indices, 5, 0)


def _epoch(ds):
    return [tuple(t.clone() for t in batch) for batch in ds]


def test_epoch_triplets_batches_and_resampling(case):
    sampler, positives, users, _ = case
    batch_size = 32
    ds = EpochTriplets(sampler, batch_size, seed=3)
    n = len(users) * N_NEG
    assert len(ds) == math.ceil(n / batch_size)

    first = _epoch(ds)
    assert len(first) == len(ds)
    sizes = [len(b[0]) for b in first]
    assert all(s == batch_size for s in sizes[:-1])
    assert 0 < sizes[-1] <= batch_size
    assert sum(sizes) == n
    for b in first:
        assert all(isinstance(t, torch.Tensor) and t.dtype == torch.int64 for t in b)
        assert len(b[0]) == len(b[1]) == len(b[2])

    second = _epoch(ds)
    assert len(second) == len(first)
    cat1 = [torch.cat([b[k] for b in first]) for k in range(3)]
    cat2 = [torch.cat([b[k] for b in second]) for k in range(3)]
    assert any(not torch.equal(x, y) for x, y in zip(cat1, cat2, strict=True))
    for uu, ii, jj in zip(*(t.tolist() for t in cat2), strict=True):
        assert (uu, ii) in positives and (uu, jj) not in positives

    # reproducible: a fresh dataset with the same seed replays the same epochs
    again = EpochTriplets(sampler, batch_size, seed=3)
    for old, new in zip((first, second), (_epoch(again), _epoch(again)), strict=True):
        assert len(old) == len(new)
        for b1, b2 in zip(old, new, strict=True):
            assert all(torch.equal(x, y) for x, y in zip(b1, b2, strict=True))


def test_epoch_triplets_through_dataloader(case):
    sampler, _, users, _ = case
    ds = EpochTriplets(sampler, 50, seed=0)
    loader = DataLoader(ds, batch_size=None)
    batches = list(loader)
    assert len(loader) == len(batches) == math.ceil(len(users) * N_NEG / 50)
    assert batches[0][0].shape == (50,)


# ---------------------------------------------------------------------------------------------
# split


def _test_users(seed=0, num_users=60):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 12, size=num_users)  # includes users with 0, 1, 2, 3 items
    counts[:4] = [1, 2, 3, 4]
    users = np.repeat(np.arange(num_users), counts)
    return rng.permutation(users), counts


def test_validation_split_sizes():
    users, counts = _test_users()
    is_val = validation_split(users, seed=5)
    assert is_val.dtype == bool and is_val.shape == users.shape
    val_counts = np.bincount(users[is_val], minlength=len(counts))
    test_counts = np.bincount(users[~is_val], minlength=len(counts))
    for u, n in enumerate(counts):
        expected = max(1, math.ceil(n / 3)) if n else 0
        assert val_counts[u] == expected, (u, n, val_counts[u])
        assert test_counts[u] == n - expected
    assert val_counts[:4].tolist() == [1, 1, 1, 2]


def test_validation_split_seeded():
    users, _ = _test_users(1)
    a = validation_split(users, seed=11)
    b = validation_split(users, seed=11)
    c = validation_split(users, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == c.sum()


def test_validation_split_is_random_within_user():
    # a user with 9 test items: over many seeds each item lands in validation ~1/3 of the time
    users = np.zeros(9, dtype=np.int64)
    hits = sum(validation_split(users, seed=s).astype(int) for s in range(300))
    assert (hits > 60).all() and (hits < 140).all(), hits
