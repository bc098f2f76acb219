"""DataModule: METIS/RCM relabeling changes ids only; ranking chunks respect the memory cap."""

import numpy as np
import pytest

from cfme.data import InteractionDataModule


def pairs(csr, user_ids, item_ids):
    users = np.repeat(np.arange(len(csr.indptr) - 1), csr.degree())
    return set(zip(user_ids[users].tolist(), item_ids[csr.indices].tolist(), strict=True))


@pytest.mark.parametrize("reorder", ["metis", "rcm", True])
def test_reorder_keeps_pairs_and_split(reorder):
    kw = dict(name="synthetic", synthetic=dict(num_users=300, num_items=400, seed=1))
    a = InteractionDataModule(reorder=reorder, **kw)
    b = InteractionDataModule(reorder=False, **kw)
    a.setup()
    b.setup()
    assert not np.array_equal(a.user_ids, np.arange(300))  # really relabeled
    assert sorted(a.user_ids) == list(range(300)) and sorted(a.item_ids) == list(range(400))
    for part in ("train", "val", "test"):
        assert pairs(getattr(a, part), a.user_ids, a.item_ids) == \
            pairs(getattr(b, part), b.user_ids, b.item_ids)
    # Â of one is Â of the other under the node permutation
    perm = np.concatenate([a.user_ids, a.item_ids + 300])
    dense_a = a.graph.adjacency().to_dense().numpy()
    dense_b = b.graph.adjacency().to_dense().numpy()
    np.testing.assert_allclose(dense_a, dense_b[np.ix_(perm, perm)], atol=1e-6)


def test_reorder_orders_differ_and_bad_value_is_refused():
    kw = dict(name="synthetic", synthetic=dict(num_users=300, num_items=400, seed=1))
    metis, rcm = InteractionDataModule(reorder="metis", **kw), InteractionDataModule(reorder="rcm", **kw)
    metis.setup()
    rcm.setup()
    assert not np.array_equal(metis.user_ids, rcm.user_ids)
    assert InteractionDataModule(reorder=True, **kw).reorder == "rcm"  # the older spelling
    assert InteractionDataModule(reorder="True", **kw).reorder == "rcm"
    assert InteractionDataModule(reorder="METIS", **kw).reorder == "metis"
    with pytest.raises(ValueError, match="data.reorder='spectral'"):
        InteractionDataModule(reorder="spectral", **kw)


def test_ranking_chunk_fits_memory_cap():
    dm = InteractionDataModule("synthetic", synthetic=dict(num_users=300, num_items=4000),
                               eval_chunk=2048, eval_memory_mb=1)
    dm.setup()
    chunk = dm.ranking_chunk()
    assert chunk * 4000 * 4 <= 1 << 20 and chunk == (1 << 20) // 16000
    batches = list(dm.val_dataloader())
    assert max(len(b["users"]) for b in batches) == chunk
    assert sum(len(b["users"]) for b in batches) == int((dm.val.degree() > 0).sum())
