"""Per-user random splits (vectorized)."""

from __future__ import annotations

import numpy as np


def rank_within_groups(groups: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Position of each element within its group when the group is ordered by ``noise``.

    Args:
        groups: ``[n]`` group id of each element.
        noise: ``[n]`` sort key (random numbers give a random order).
    """
    if groups.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((noise, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run = np.arange(groups.size) - np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    rank = np.empty_like(run)
    rank[order] = run
    return rank


def validation_split(users: np.ndarray, seed: int) -> np.ndarray:
    """Mask of the test pairs that move to validation (SPEC protocol).

    For every user with test items, ``ceil(|test_u| / 3)`` (at least 1) of them, drawn at
    random under ``seed``, go to validation; the rest stay test.

    Args:
        users: ``[n_test]`` user of each test pair.
    Returns:
        ``[n_test]`` bool, True for validation.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(users)
    n_val = np.maximum(1, -(-counts // 3))
    return rank_within_groups(users, rng.random(users.size)) < n_val[users]
