"""cfme.metrics.RankingEvaluator against a per-user reference of SPEC's Recall@K / NDCG@K."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfme.data import InteractionDataModule
from cfme.metrics import RankingEvaluator

KS = (5, 10, 20, 50)


def reference_user(scores: np.ndarray, masked: set[int], relevant: set[int], k: int):
    """Recall@k and NDCG@k of one user, written from SPEC (binary gains)."""
    ranking = sorted((i for i in range(len(scores)) if i not in masked),
                     key=lambda i: -scores[i])[:k]
    hits = [pos for pos, item in enumerate(ranking) if item in relevant]
    recall = len(hits) / len(relevant)
    dcg = sum(1.0 / math.log2(pos + 2) for pos in hits)
    idcg = sum(1.0 / math.log2(pos + 2) for pos in range(min(k, len(relevant))))
    return recall, dcg / idcg


def reference(rows, ks=KS) -> dict[str, float]:
    """Average over users with >= 1 relevant item; ``rows`` = [(scores, masked, relevant)]."""
    out = {}
    counted = [r for r in rows if r[2]]
    for k in ks:
        per_user = [reference_user(s, m, r, k) for s, m, r in counted]
        out[f"recall@{k}"] = sum(p[0] for p in per_user) / len(per_user)
        out[f"ndcg@{k}"] = sum(p[1] for p in per_user) / len(per_user)
    return out


def to_index(sets: list[set[int]]) -> torch.Tensor:
    rows = [r for r, s in enumerate(sets) for _ in s]
    cols = [c for s in sets for c in sorted(s)]
    return torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)


def random_chunk(rng: np.random.Generator, batch: int, num_items: int, max_k: int):
    scores = rng.standard_normal((batch, num_items)).astype(np.float32)
    masks, rels = [], []
    for _ in range(batch):
        n_mask = int(rng.integers(0, num_items - max_k - 10))
        kind = rng.random()
        if kind < 0.15:
            n_rel = 0  # excluded from the average
        elif kind < 0.5:
            n_rel = int(rng.integers(1, 5))  # fewer relevant items than most K
        else:
            n_rel = int(rng.integers(5, 70))
        perm = rng.permutation(num_items)
        masks.append(set(perm[:n_mask].tolist()))
        rels.append(set(perm[n_mask:n_mask + n_rel].tolist()))
    # users whose relevant items score high, so hits happen at every K
    for b in range(0, batch, 3):
        for item in rels[b]:
            if rng.random() < 0.6:
                scores[b, item] += 3.0
        for item in masks[b]:  # masked items scored highest: must still be excluded
            if rng.random() < 0.5:
                scores[b, item] += 10.0
    return scores, masks, rels


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_over_chunks(seed):
    rng = np.random.default_rng(seed)
    num_items = 150
    ev = RankingEvaluator(KS)
    rows = []
    for batch in (17, 1, 40, 23):
        scores, masks, rels = random_chunk(rng, batch, num_items, max(KS))
        rows += list(zip(scores, masks, rels, strict=True))
        top = ev.update(torch.from_numpy(scores.copy()), to_index(masks), to_index(rels))
        assert top.shape == (batch, max(KS))
        for b in range(batch):
            assert not set(top[b].tolist()) & masks[b], "a training item was ranked"
            assert len(set(top[b].tolist())) == max(KS)
            # the returned order is by decreasing score over unmasked items
            expected = sorted((i for i in range(num_items) if i not in masks[b]),
                              key=lambda i: -scores[b, i])[:max(KS)]
            assert top[b].tolist() == expected
    got = ev.compute()
    want = reference(rows)
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert 0 < want["ndcg@5"] < 1 and 0 < want["recall@50"] < 1


def test_users_without_relevant_items_do_not_count():
    rng = np.random.default_rng(9)
    scores, masks, rels = random_chunk(rng, 12, 100, 50)
    rels = [r if r else {int(rng.integers(100))} - m for r, m in zip(rels, masks, strict=True)]
    ev = RankingEvaluator(KS)
    ev.update(torch.from_numpy(scores.copy()), to_index(masks), to_index(rels))
    with_users = ev.compute()
    # add users with no relevant items at all: nothing changes
    ev.update(torch.from_numpy(scores.copy()), to_index(masks), torch.zeros(2, 0, dtype=torch.long))
    padded = ev.compute()
    for name in with_users:
        assert padded[name] == pytest.approx(with_users[name], rel=1e-6), name


def test_hand_computed_case():
    # 1 user, items 0..5, item 0 is training; scores rank 1 > 2 > 3 > 4 > 5
    scores = torch.tensor([[9.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    ev = RankingEvaluator((2, 5))
    top = ev.update(scores, torch.tensor([[0], [0]]), torch.tensor([[0, 0], [2, 5]]))
    assert top.tolist() == [[1, 2, 3, 4, 5]]
    m = ev.compute()
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(6))
                                        / (1 + 1 / math.log2(3)))


def test_reset():
    ev = RankingEvaluator((1,))
    ev.update(torch.tensor([[1.0, 0.0]]), torch.zeros(2, 0, dtype=torch.long),
              torch.tensor([[0], [0]]))
    assert ev.compute()["recall@1"] == pytest.approx(1.0)
    ev.reset()
    ev.update(torch.tensor([[1.0, 0.0]]), torch.zeros(2, 0, dtype=torch.long),
              torch.tensor([[0], [1]]))
    assert ev.compute()["recall@1"] == pytest.approx(0.0)


def _evaluate(dm: InteractionDataModule, user_emb: torch.Tensor, item_emb: torch.Tensor):
    ev = RankingEvaluator(KS)
    seen: list[int] = []
    batches = 0
    rows = []
    for batch in dm.val_dataloader():
        users = batch["users"]
        scores = user_emb[users] @ item_emb.T
        raw = scores.numpy().copy()
        top = ev.update(scores, batch["mask_index"], batch["label_index"])
        mask, label = batch["mask_index"], batch["label_index"]
        for b, u in enumerate(users.tolist()):
            masked = set(mask[1, mask[0] == b].tolist())
            relevant = set(label[1, label[0] == b].tolist())
            assert masked == set(dm.train.indices[dm.train.indptr[u]:dm.train.indptr[u + 1]])
            assert not set(top[b].tolist()) & masked
            rows.append((raw[b], masked, relevant))
        seen += users.tolist()
        batches += 1
    return ev.compute(), seen, batches, rows


def test_chunked_evaluation_equals_unchunked():
    synthetic = dict(num_users=300, num_items=400, seed=0)
    chunked = InteractionDataModule(name="synthetic", synthetic=synthetic, eval_chunk=37)
    whole = InteractionDataModule(name="synthetic", synthetic=synthetic, eval_chunk=10_000)
    chunked.setup()
    whole.setup()
    g = torch.Generator().manual_seed(0)
    user_emb = torch.randn(300, 16, generator=g)
    item_emb = torch.randn(400, 16, generator=g)

    m_chunked, seen_c, n_chunked, rows = _evaluate(chunked, user_emb, item_emb)
    m_whole, seen_w, n_whole, _ = _evaluate(whole, user_emb, item_emb)

    val_users = np.flatnonzero(chunked.val.degree() > 0).tolist()
    assert seen_c == seen_w == val_users  # every user with validation items, once
    assert n_whole == 1 and n_chunked == math.ceil(len(val_users) / 37) > 1
    for name in m_whole:
        assert m_chunked[name] == pytest.approx(m_whole[name], rel=1e-5), name
    want = reference(rows)
    for name in want:
        assert m_chunked[name] == pytest.approx(want[name], rel=1e-5, abs=1e-6), name


def test_masked_items_absent_even_when_few_items_remain():
    ev = RankingEvaluator((5,))
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.3, 0.4]])
    top = ev.update(scores, torch.tensor([[0, 0, 0], [0, 1, 2]]), torch.tensor([[0], [5]]))
    assert ev.compute()["recall@5"] == pytest.approx(1.0)  # metrics themselves are right
    assert not {0, 1, 2} & set(top[0].tolist()), top
