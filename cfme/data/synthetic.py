"""Seeded synthetic implicit-feedback data with long-tailed degrees and latent clusters."""

from __future__ import annotations

import numpy as np

from cfme.data.datasets import RawSplit
from cfme.data.split import rank_within_groups


def generate_synthetic(
    num_users: int = 2000,
    num_items: int = 3000,
    num_clusters: int = 20,
    mean_degree: float = 30.0,
    in_cluster: float = 0.8,
    popularity_exponent: float = 0.8,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> RawSplit:
    """Draw a user-item graph and a per-user train/test split.

    Users and items belong to one of ``num_clusters`` latent clusters. User degrees
    are log-normal (long tail), item popularity is Zipf-like with ``popularity_exponent``.
    Each interaction is, with probability ``in_cluster``, an item of the user's own
    cluster (popularity-weighted), otherwise a popularity-weighted item of any cluster.
    Repeated draws collapse, so the realised mean degree is slightly below ``mean_degree``.

    Returns:
        a :class:`RawSplit` named ``synthetic``; every user keeps at least one train item.
    """
    if num_users < 1 or num_items < 2 or num_clusters < 1 or not 0 < test_fraction < 1:
        raise ValueError("synthetic: need num_users >= 1, num_items >= 2, num_clusters >= 1 "
                         "and 0 < test_fraction < 1")
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(num_clusters, size=num_items)
    user_cluster = rng.integers(num_clusters, size=num_users)
    popularity = rng.permutation(np.arange(1, num_items + 1, dtype=np.float64) ** -popularity_exponent)

    sigma = 1.0
    deg = rng.lognormal(np.log(mean_degree) - sigma**2 / 2, sigma, size=num_users)
    deg = np.clip(np.round(deg), 3, max(3, num_items // 2)).astype(np.int64)

    # Items grouped by cluster; cumulative popularity lets one searchsorted draw from any
    # cluster (offset into its block) or from all items.
    order = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(popularity[order])
    block_end = np.searchsorted(item_cluster[order], np.arange(num_clusters), side="right")
    block_start = np.r_[0, block_end[:-1]]
    mass_before = np.where(block_start > 0, cum[np.maximum(block_start - 1, 0)], 0.0)
    mass = np.where(block_end > block_start, cum[np.maximum(block_end - 1, 0)] - mass_before, 0)

    users = np.repeat(np.arange(num_users), deg)
    own = user_cluster[users]
    local = (rng.random(users.size) < in_cluster) & (mass[own] > 0)
    target = rng.random(users.size) * cum[-1]
    target[local] = mass_before[own[local]] + rng.random(local.sum()) * mass[own[local]]
    items = order[np.minimum(np.searchsorted(cum, target, side="right"), num_items - 1)]

    keys = np.unique(users * num_items + items)
    users, items = keys // num_items, keys % num_items

    # Per user, a random test_fraction of the interactions (none if only one) goes to test.
    counts = np.bincount(users, minlength=num_users)
    rank = rank_within_groups(users, rng.random(users.size))
    n_test = np.floor(counts * test_fraction).astype(np.int64)
    is_test = rank < n_test[users]
    return RawSplit(
        "synthetic", num_users, num_items,
        users[~is_test], items[~is_test], users[is_test], items[is_test],
    )

