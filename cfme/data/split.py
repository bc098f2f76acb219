"""Per-user random validation/test splits: ours (vectorized) and the authors' draw."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


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


SPLIT_METHODS = ("default", "authors")


def check_split_method(method: str) -> str:
    """``method`` if it is one of SPLIT_METHODS, else an error naming ``data.split_method``."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"data.split_method={method!r} must be one of "
                         f"{', '.join(SPLIT_METHODS)}")
    return method


def authors_validation_split(users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """The validation draw of the authors' data loader (C2F-MetaEmbed, LEGCF), repeated.

    Their loader seeds numpy's global legacy generator with the run's seed and then, for
    each line of ``test.txt`` in file order, draws ``max(1, ceil(|items| / 3))`` items for
    validation with ``np.random.choice(list(set(items)), size, replace=False)``. This does the
    same with a ``RandomState(seed)``, so on their files it picks the items of their runs
    with that seed. Users are taken in order of first appearance (the files' line order), a user's
    items in array order (the file's order, duplicates dropped, which leaves the set's order
    unchanged). Ids must be the files' own: the set's order depends on their values. A
    user on several lines is drawn once over all their items, where the authors' loader
    draws per line; a warning says so when the lines are apart.

    Args:
        users: ``[n_test]`` user of each test pair, in file order.
        items: ``[n_test]`` item of each test pair (the files' ids).
    Returns:
        ``[n_test]`` bool, True for validation.
    """
    rng = np.random.RandomState(seed)
    is_val = np.zeros(users.size, dtype=bool)
    if users.size == 0:
        return is_val
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    runs = 1 + int(np.count_nonzero(np.diff(users)))
    if runs > starts.size:
        log.warning("data.split_method=authors: some users' test items are on lines apart "
                    "(%d more groups of lines than users); the authors' loader draws per line, "
                    "this draws once per user", runs - starts.size)
    ends = np.r_[starts[1:], users.size]
    for group in np.argsort(order[starts]):  # users in order of first appearance
        rows = order[starts[group]:ends[group]]
        pool = list(set(items[rows].tolist()))
        size = max(1, int(np.ceil((1 / 3) * len(pool))))
        chosen = rng.choice(pool, size=size, replace=False)
        is_val[rows[np.isin(items[rows], chosen)]] = True
    return is_val


def split_validation(users: np.ndarray, items: np.ndarray, seed: int,
                     method: str = "default") -> np.ndarray:
    """Mask of the test pairs that move to validation, by ``method`` (``data.split_method``).

    ``default`` is :func:`validation_split` (vectorized, numpy's ``Generator``); ``authors`` is
    :func:`authors_validation_split`. Both follow the SPEC protocol; they draw different items.
    """
    if check_split_method(method) == "authors":
        return authors_validation_split(users, items, seed)
    return validation_split(users, seed)
