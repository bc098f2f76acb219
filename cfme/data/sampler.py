"""BPR triplet sampling, vectorized, exactly as the authors' per-epoch sampler (SPEC)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import IterableDataset


class TripletSampler:
    """Draws one epoch of (user, positive, negative) triplets.

    |R| users are drawn uniformly among users with training items; each gets one
    training positive uniformly and ``n_neg`` distinct negatives outside its training
    positives; every negative makes one triplet (|R| * n_neg triplets an epoch).

    Args:
        indptr: ``[num_users + 1]`` CSR row pointers of the training matrix.
        indices: ``[|R|]`` item ids, sorted within each user's row.
        num_items: number of items.
        n_neg: distinct negatives per drawn user.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, num_items: int, n_neg: int):
        self.indptr, self.indices = indptr, indices
        self.num_items, self.n_neg = num_items, n_neg
        self.degree = np.diff(indptr)
        self.active = np.flatnonzero(self.degree > 0)
        if n_neg < 1:
            raise ValueError(f"data.n_neg must be >= 1, got {n_neg}")
        short = np.flatnonzero(self.degree[self.active] > num_items - n_neg)
        if short.size:
            u = int(self.active[short[0]])
            raise ValueError(f"data.n_neg={n_neg}: user {u} has too few non-interacted items "
                             f"({num_items - int(self.degree[u])}) to draw distinct negatives")
        rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), self.degree)
        self.keys = rows * num_items + indices  # sorted, since rows ascend and items sorted
        self.num_triplets = len(indices) * n_neg

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training interaction."""
        keys = users * self.num_items + items
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One shuffled epoch: three ``[|R| * n_neg]`` int64 arrays (user, pos, neg)."""
        n = len(self.indices)
        users = self.active[rng.integers(len(self.active), size=n)]
        pos = self.indices[self.indptr[users] + (rng.random(n) * self.degree[users]).astype(np.int64)]
        neg = rng.integers(self.num_items, size=(n, self.n_neg))
        bad = self._invalid(users, neg)
        while bad.any():
            rows, cols = np.nonzero(bad)
            neg[rows, cols] = rng.integers(self.num_items, size=rows.size)
            bad = self._invalid(users, neg, rows)
        order = rng.permutation(n * self.n_neg)
        u = np.repeat(users, self.n_neg)[order]
        i = np.repeat(pos, self.n_neg)[order]
        return u, i, neg.reshape(-1)[order]

    def _invalid(self, users: np.ndarray, neg: np.ndarray, rows: np.ndarray | None = None):
        """``[n, n_neg]`` mask of negatives that are positives or repeat an earlier column."""
        if rows is not None:  # only re-check the rows that were resampled
            rows = np.unique(rows)
            out = np.zeros(neg.shape, dtype=bool)
            out[rows] = self._invalid(users[rows], neg[rows])
            return out
        bad = self.is_positive(np.repeat(users, neg.shape[1]), neg.reshape(-1)).reshape(neg.shape)
        for c in range(1, neg.shape[1]):
            bad[:, c] |= (neg[:, :c] == neg[:, c : c + 1]).any(axis=1)
        return bad


class EpochTriplets(IterableDataset):
    """Iterable of ready-made ``(users, pos, neg)`` batches; resampled at every pass.

    The generator is seeded by ``(seed, pass number)``, so a run is reproducible.
    """

    def __init__(self, sampler: TripletSampler, batch_size: int, seed: int = 0):
        self.sampler, self.batch_size, self.seed = sampler, batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.sampler.num_triplets / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        u, i, j = (torch.from_numpy(a) for a in self.sampler.sample(rng))
        for start in range(0, len(u), self.batch_size):
            sl = slice(start, start + self.batch_size)
            yield u[sl], i[sl], j[sl]
