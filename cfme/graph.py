"""The user-item training graph and its expansions with virtual (codebook) nodes.

Node order everywhere: users ``0..U-1``, items ``U..N-1``, then virtual nodes
(coarse codebook rows, then fine codebook rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm


@dataclass
class TrainingGraph:
    """Bipartite training graph A = [[0, R], [R^T, 0]] with its normalization.

    Attributes:
        num_users, num_items: sizes; ``num_nodes = num_users + num_items``.
        edge_index: ``[2, 2|R|]`` both directions, item nodes offset by ``num_users``.
        norm_weight: ``[2|R|]`` values of Â = D^-1/2 A D^-1/2 on those edges.
        file_ids: ``[N]`` the data files' id of each node (users, then items offset by
            ``num_users``) when the nodes were relabelled; ``None``: the files' order.
    """

    num_users: int
    num_items: int
    edge_index: Tensor
    norm_weight: Tensor
    file_ids: np.ndarray | None = None

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @classmethod
    def from_interactions(cls, users: np.ndarray, items: np.ndarray, num_users: int,
                          num_items: int) -> TrainingGraph:
        u = torch.as_tensor(users, dtype=torch.long)
        i = torch.as_tensor(items, dtype=torch.long) + num_users
        edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
        edge_index, weight = gcn_norm(edge_index, None, num_users + num_items,
                                      add_self_loops=False)
        return cls(num_users, num_items, edge_index, weight)

    def adjacency(self, device: torch.device | str = "cpu") -> Tensor:
        """Â as a sparse CSR ``[N, N]`` tensor."""
        return to_csr(self.edge_index, self.norm_weight, self.num_nodes, device)

    def partition_input(self) -> tuple[np.ndarray, np.ndarray]:
        """``(xadj, adjncy)`` CSR arrays of A for METIS."""
        csr = self.adjacency()
        return csr.crow_indices().numpy(), csr.col_indices().numpy()


def to_csr(edge_index: Tensor, weight: Tensor, num_nodes: int,
           device: torch.device | str = "cpu") -> Tensor:
    """Square sparse CSR tensor from COO edges (duplicates summed)."""
    coo = torch.sparse_coo_tensor(edge_index, weight, (num_nodes, num_nodes))
    return coo.coalesce().to_sparse_csr().to(device)


def assignment_edges(index: Tensor, value: Tensor, row_offset: int, col_offset: int):
    """Edges of a sparse assignment block and its transpose.

    Args:
        index: ``[n, k]`` column of each nonzero (within the block).
        value: ``[n, k]`` its weight.
    Returns:
        ``([2, 2nk] edge_index, [2nk] weight)`` in global node ids.
    """
    n, k = index.shape
    rows = torch.arange(n, device=index.device).repeat_interleave(k) + row_offset
    cols = index.reshape(-1) + col_offset
    return (torch.stack([torch.cat([rows, cols]), torch.cat([cols, rows])]),
            torch.cat([value.reshape(-1), value.reshape(-1)]))


def virtual_node_graph(graph: TrainingGraph, blocks: list[tuple[Tensor, Tensor, int, int]],
                       num_nodes: int, device: torch.device | str = "cpu") -> Tensor:
    """Expanded graph [[Â, S, 0], [S^T, 0, T], [0, T^T, 0]], renormalized symmetrically.

    Â enters already normalized (as in the authors' code); the whole matrix is then
    normalized again by its own row sums, D^-1/2 G D^-1/2 (rows with non-positive sum
    are left zero).

    Args:
        blocks: ``(index, value, row_offset, col_offset)`` per assignment block, e.g.
            S with offsets ``(0, N)`` and T with ``(N, N + c)``.
        num_nodes: side of the expanded matrix.
    Returns:
        sparse CSR ``[num_nodes, num_nodes]`` tensor.
    """
    edges = [graph.edge_index.to(device)]
    weights = [graph.norm_weight.to(device)]
    for index, value, row_off, col_off in blocks:
        e, w = assignment_edges(index.to(device), value.to(device).float(), row_off, col_off)
        edges.append(e)
        weights.append(w)
    edge_index, weight = torch.cat(edges, 1), torch.cat(weights)
    edge_index, weight = gcn_norm(edge_index, weight, num_nodes, add_self_loops=False)
    weight = torch.nan_to_num(weight, nan=0.0, posinf=0.0, neginf=0.0)
    return to_csr(edge_index, weight, num_nodes, device)


def assignment_matrix(index: Tensor, value: Tensor, num_cols: int) -> tuple[Tensor, Tensor]:
    """Sparse CSR assignment ``[n, num_cols]`` and its transpose, from ``[n, k]`` rows."""
    n, k = index.shape
    rows = torch.arange(n, device=index.device).repeat_interleave(k)
    coo = torch.sparse_coo_tensor(torch.stack([rows, index.reshape(-1)]), value.reshape(-1),
                                  (n, num_cols)).coalesce()
    return coo.to_sparse_csr(), coo.t().coalesce().to_sparse_csr()
