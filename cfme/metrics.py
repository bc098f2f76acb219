"""Full-ranking evaluation: Recall@K and NDCG@K (binary gains) via PyG's link-prediction metrics."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.metrics import LinkPredMetricCollection, LinkPredNDCG, LinkPredRecall


class RankingEvaluator:
    """Accumulates Recall@K / NDCG@K over chunks of users.

    Users with no relevant items do not count; NDCG's ideal DCG runs over
    ``min(K, |relevant|)`` positions (SPEC).
    """

    def __init__(self, ks=(5, 10, 20, 50)):
        self.ks = tuple(int(k) for k in ks)
        self.metrics = LinkPredMetricCollection(
            {f"recall@{k}": LinkPredRecall(k) for k in self.ks}
            | {f"ndcg@{k}": LinkPredNDCG(k) for k in self.ks})

    @property
    def max_k(self) -> int:
        return max(self.ks)

    def reset(self) -> None:
        self.metrics.reset()

    def update(self, scores: Tensor, mask_index: Tensor, label_index: Tensor) -> Tensor:
        """Rank one chunk.

        Args:
            scores: ``[B, num_items]`` scores (modified in place: masked items get -inf).
            mask_index: ``[2, *]`` (row, item) pairs to exclude (training items).
            label_index: ``[2, *]`` (row, item) relevant pairs.
        Returns:
            ``[B, max_k]`` top item ids (``num_items`` where fewer unmasked items remain).
        """
        scores[mask_index[0], mask_index[1]] = float("-inf")
        best = torch.topk(scores, min(self.max_k, scores.shape[1]), dim=1)
        # fewer unmasked items than K: pad with the sentinel num_items (never relevant)
        top = best.indices.masked_fill(best.values == float("-inf"), scores.shape[1])
        self.metrics.to(scores.device).update(top, label_index)
        return top

    def compute(self) -> dict[str, float]:
        return {name: float(v) for name, v in self.metrics.compute().items()}
