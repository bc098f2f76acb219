"""Entity embeddings for graph recommenders: full table, coarse (LEGCF) and coarse-to-fine (CFME).

Every model maps the training graph to final embeddings ``H [N + V, d]`` (N entities,
users first, then V virtual codebook nodes) and ego embeddings ``E [N, d]``; scores
are ``<h_u, h_i>`` plus an optional per-entity bias.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from cfme import assignment
from cfme.graph import TrainingGraph, assignment_matrix, virtual_node_graph
from cfme.memory import index_dtype
from cfme.propagation import bridged_lightgcn, lightgcn, sparse_matmul

log = logging.getLogger(__name__)


class GraphRecommender(nn.Module):
    """Shared parts: sizes, optional bias (FM linear term, N + 1 floats), scoring.

    Subclasses define :meth:`forward` and :meth:`stored_arrays`, and, if they have
    assignments to learn, :meth:`update_assignment` and ``phases = ("fixed", "update")``.
    """

    phases: tuple[str, ...] = ("train",)

    def __init__(self, graph: TrainingGraph, dim: int, num_layers: int, bias: bool = False):
        super().__init__()
        if dim < 1 or num_layers < 0:
            raise ValueError(f"model dim must be >= 1 and num_layers >= 0, got {dim}, {num_layers}")
        self.graph = graph
        self.num_users, self.num_items = graph.num_users, graph.num_items
        self.num_entities = graph.num_nodes
        self.dim, self.num_layers = dim, num_layers
        self.bias = nn.Parameter(torch.zeros(self.num_entities + 1)) if bias else None

    def score(self, h_users: Tensor, h_items: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """``[B]`` scores of aligned (user, item) rows."""
        out = (h_users * h_items).sum(-1)
        if self.bias is not None:
            out = out + self.bias[users] + self.bias[items + self.num_users] + self.bias[-1]
        return out

    def score_all(self, h_users: Tensor, h_items: Tensor, users: Tensor) -> Tensor:
        """``[B, num_items]`` scores of ``users`` against every item."""
        out = h_users @ h_items.T
        if self.bias is not None:
            out = out + self.bias[users, None] + self.bias[self.num_users:-1][None] + self.bias[-1]
        return out

    def _init_bias(self, std: float) -> None:
        """Draw the N per-entity biases from N(0, std²); the global one stays 0.

        ``std = 0`` keeps them all zero and draws nothing. The authors' code starts from
        N(0, 1): its bias is torchfm's ``FeaturesLinear``, an ``nn.Embedding`` with
        PyTorch's default init, plus a zero global term.
        """
        if std < 0:
            raise ValueError(f"model.bias_init_std={std} must be >= 0")
        if std == 0:
            return
        if self.bias is None:
            log.warning("model.bias_init_std=%s has no effect: model.bias is off", std)
            return
        with torch.no_grad():
            self.bias[:-1].normal_(0.0, std)

    def update_assignment(self, h: Tensor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError(f"{type(self).__name__} has no assignment to update")

    def stored_arrays(self) -> list[tuple[str, int, str]]:
        """What a deployed model stores: ``(name, count, dtype)`` per array."""
        raise NotImplementedError

    def _bias_arrays(self) -> list[tuple[str, int, str]]:
        return [("bias", self.num_entities + 1, "float32")] if self.bias is not None else []


class FullEmbedding(GraphRecommender):
    """One row per entity (``[N, d]``, init N(0, 0.1²)); LightGCN (L >= 1) or MF (L = 0)."""

    def __init__(self, graph: TrainingGraph, dim: int = 128, num_layers: int = 3,
                 bias: bool = False, init_std: float = 0.1, bias_init_std: float = 0.0):
        super().__init__(graph, dim, num_layers, bias)
        self.weight = nn.Parameter(torch.randn(self.num_entities, dim) * init_std)
        self._init_bias(bias_init_std)
        self._adj: Tensor | None = None

    def forward(self) -> tuple[Tensor, Tensor]:
        """``(H [N, d], E [N, d])``."""
        if self.num_layers == 0:
            return self.weight, self.weight
        if self._adj is None or self._adj.device != self.weight.device:
            self._adj = self.graph.adjacency(self.weight.device)
        return lightgcn(self._adj, self.weight, self.num_layers), self.weight

    def stored_arrays(self):
        return [("table", self.num_entities * self.dim, "float32")] + self._bias_arrays()


class CoarseMetaEmbedding(GraphRecommender):
    """LEGCF: codebook ``C [c, d]`` and an assignment S with ``t`` nonzeros per entity.

    Ego embeddings ``E = tanh(S C)``; propagation over G₁ = [[Â, S], [Sᵀ, 0]] with the
    codebook rows as virtual nodes. ``forward`` returns ``(H [N + c, d], E [N, d])``.
    """

    phases = ("fixed", "update")

    def __init__(self, graph: TrainingGraph, dim: int = 128, num_layers: int = 3,
                 num_coarse: int = 300, t: int = 2, anchor_weight: float = 0.5,
                 partition: str = "metis", seed: int = 0, bias: bool = False,
                 bias_init_std: float = 0.0, metis_options: Mapping | None = None,
                 partition_file: str | None = None):
        super().__init__(graph, dim, num_layers, bias)
        if not 1 <= t <= num_coarse:
            raise ValueError(f"model.coarse.net.t={t} must be between 1 and num_coarse={num_coarse}")
        if not 0.0 <= anchor_weight <= 1.0:
            raise ValueError(f"model.coarse.net.anchor_weight={anchor_weight} must be in [0, 1]")
        self.num_coarse, self.t = num_coarse, t
        self.codebook = nn.Parameter(torch.randn(num_coarse, dim))
        self._init_bias(bias_init_std)  # after C: the option leaves C's draw as it was
        parts = assignment.partition(graph, num_coarse, seed, partition, metis_options,
                                     setting="model.coarse.net", file=partition_file)
        s_index, s_value = assignment.coarse_init(parts, num_coarse, t, anchor_weight, seed)
        self.register_buffer("s_index", s_index)
        self.register_buffer("s_value", s_value)
        self._adj: Tensor | None = None

    def invalidate_graph(self) -> None:
        self._adj = None

    def expanded_graph(self, device) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Ĝ₁ ``[N + c, N + c]`` and ``(S, Sᵀ)``, sparse CSR, cached until S changes."""
        if self._adj is None or self._adj[0].device != torch.device(device):
            n = self.num_entities
            adj = virtual_node_graph(self.graph, [(self.s_index, self.s_value, 0, n)],
                                     n + self.num_coarse, device)
            s = assignment_matrix(self.s_index.to(device), self.s_value.to(device),
                                  self.num_coarse)
            self._adj = (adj, s)
        return self._adj

    def forward(self) -> tuple[Tensor, Tensor]:
        adj, s = self.expanded_graph(self.codebook.device)
        e = torch.tanh(sparse_matmul(s[0], s[1], self.codebook))  # E = tanh(S C)
        h0 = torch.cat([e, self.codebook])
        return lightgcn(adj, h0, self.num_layers), e

    @torch.no_grad()
    def update_assignment(self, h: Tensor) -> None:
        """S <- top_t_rows(H_N pinv(H_C)); the graph is rebuilt on next use."""
        n = self.num_entities
        index, value = assignment.coarse_update(h[:n].float(), h[n:].float(), self.t)
        # new tensors, not in-place: the current step's autograd graph still holds the old S
        self.s_index, self.s_value = index, value
        self.invalidate_graph()

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.invalidate_graph()

    def stored_arrays(self):
        n, c = self.num_entities, self.num_coarse
        return [
            ("coarse_codebook", c * self.dim, "float32"),
            ("S_values", n * self.t, "float32"),
            ("S_indices", n * self.t, index_dtype(c)),
        ] + self._bias_arrays()


class CoarseToFineMetaEmbedding(GraphRecommender):
    """CFME stage 2: frozen C and S, sparse fine codebook F, coarse-to-fine assignment T.

    ``F_s = soft_threshold(F, λ)`` (what is stored), ``Ĉ = g T F_s + (1 - g) C``,
    ``H⁰ = [tanh(S C); Ĉ; tanh(F_s)]``, propagation over
    G₂ = [[Â, S, 0], [Sᵀ, 0, T], [0, Tᵀ, 0]] with per-layer bridging.
    ``forward`` returns ``(H [N + c + m, d], E [N, d])``.

    Args:
        coarse: stage-1 state: ``codebook [c, d]``, ``s_index``/``s_value [N, t]`` and
            optionally ``bias [N + 1]``.
    """

    phases = ("fixed", "update")

    def __init__(self, graph: TrainingGraph, coarse: dict[str, Tensor], dim: int = 128,
                 num_layers: int = 3, num_fine: int = 100, k: int = 4,
                 soft_threshold: float = 1.0, bridge: float = 0.2, k_pca: int = 80,
                 partition: str = "metis", seed: int = 0, bias: bool = False,
                 metis_options: Mapping | None = None, partition_file: str | None = None):
        super().__init__(graph, dim, num_layers, bias)
        c = coarse["codebook"].shape[0]
        if not 1 <= k <= num_fine:
            raise ValueError(f"model.fine.net.k={k} must be between 1 and num_fine={num_fine}")
        if not 1 <= k_pca <= dim:
            raise ValueError(f"model.fine.net.k_pca={k_pca} must be between 1 and dim={dim}")
        if not 0.0 <= bridge <= 1.0:
            raise ValueError(f"model.fine.net.bridge={bridge} (g) must be in [0, 1]")
        if soft_threshold < 0:
            raise ValueError(f"model.fine.net.soft_threshold={soft_threshold} (λ) must be >= 0")
        if coarse["codebook"].shape[1] != dim or coarse["s_index"].shape[0] != self.num_entities:
            raise ValueError(
                f"stage-1 state has codebook {tuple(coarse['codebook'].shape)} and "
                f"{coarse['s_index'].shape[0]} entities; this run needs dim={dim} and "
                f"{self.num_entities} entities (another dataset or size?)")
        self.num_coarse, self.num_fine, self.k = c, num_fine, k
        self.soft_threshold, self.bridge = soft_threshold, bridge
        self.register_buffer("codebook", coarse["codebook"].detach().clone().float())
        self.register_buffer("s_index", coarse["s_index"].detach().clone())
        self.register_buffer("s_value", coarse["s_value"].detach().clone())
        if self.bias is not None and coarse.get("bias") is not None:
            self.bias.data.copy_(coarse["bias"])
        self.fine = nn.Parameter(sparse_pca_init(self.codebook, num_fine, k_pca, seed))
        parts = assignment.partition(graph, num_fine, seed, partition, metis_options,
                                     setting="model.fine.net", file=partition_file)
        t_index, t_value = assignment.fine_init(self.s_index.cpu(), self.s_value.cpu(), parts, c,
                                                num_fine, k)
        self.register_buffer("t_index", t_index)
        self.register_buffer("t_value", t_value)
        self._cache: tuple | None = None

    def invalidate_graph(self) -> None:
        self._cache = None

    def _graphs(self, device):
        """(Ĝ₂, (S, Sᵀ), (T, Tᵀ)) as sparse CSR tensors and E ``[N, d]``, cached until T changes."""
        if self._cache is None or self._cache[0].device != torch.device(device):
            n, c, m = self.num_entities, self.num_coarse, self.num_fine
            adj = virtual_node_graph(
                self.graph,
                [(self.s_index, self.s_value, 0, n), (self.t_index, self.t_value, n, n + c)],
                n + c + m, device)
            s = assignment_matrix(self.s_index.to(device), self.s_value.to(device), c)
            t = assignment_matrix(self.t_index.to(device), self.t_value.to(device), m)
            # E = tanh(S C) is constant in this stage (C and S frozen)
            e = torch.tanh((self.s_value.unsqueeze(-1) * self.codebook[self.s_index]).sum(1))
            self._cache = (adj, s, t, e)
        return self._cache

    def sparse_fine(self) -> Tensor:
        """``F_s = sign(F) max(|F| - λ, 0)``: ``[m, d]``."""
        return soft_threshold(self.fine, self.soft_threshold)

    def forward(self) -> tuple[Tensor, Tensor]:
        f_s = self.sparse_fine()
        t_f = (self.t_value.unsqueeze(-1) * f_s[self.t_index]).sum(1)
        c_hat = self.bridge * t_f + (1 - self.bridge) * self.codebook
        adj, s, t, e = self._graphs(f_s.device)
        h0 = torch.cat([e, c_hat, torch.tanh(f_s)])
        sizes = (self.num_entities, self.num_coarse, self.num_fine)
        return bridged_lightgcn(adj, h0, self.num_layers, sizes, s, t, self.bridge), e

    @torch.no_grad()
    def update_assignment(self, h: Tensor) -> None:
        """T <- top_k_rows(softmax_rows(A1ᵀ A2)); the graph is rebuilt on next use."""
        n, c = self.num_entities, self.num_coarse
        index, value = assignment.fine_update(h[:n].float(), h[n:n + c].float(),
                                              h[n + c:].float(), self.k)
        self.t_index, self.t_value = index, value
        self.invalidate_graph()

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.invalidate_graph()

    def fine_nnz(self) -> int:
        return int((self.sparse_fine() != 0).sum())

    def stored_arrays(self):
        n, c, m, d = self.num_entities, self.num_coarse, self.num_fine, self.dim
        nnz = self.fine_nnz()
        return [
            ("coarse_codebook", c * d, "float32"),
            ("S_values", n * self.s_index.shape[1], "float32"),
            ("S_indices", n * self.s_index.shape[1], index_dtype(c)),
            ("fine_values", nnz, "float32"),
            ("fine_indices", nnz, index_dtype(m * d)),
            ("T_values", c * self.k, "float32"),
            ("T_indices", c * self.k, index_dtype(m)),
        ] + self._bias_arrays()


def soft_threshold(x: Tensor, lam: float) -> Tensor:
    """``sign(x) max(|x| - lam, 0)``: zero where ``|x| <= lam``, shrunk by ``lam`` elsewhere."""
    return torch.sign(x) * torch.clamp(x.abs() - lam, min=0.0)


def sparse_pca_init(codebook: Tensor, num_fine: int, k_pca: int, seed: int) -> Tensor:
    """F's initial value ``[m, d]`` from SparsePCA codes of m resampled coarse rows (SPEC).

    Rows of C are sampled with replacement; ``SparsePCA(n_components=k_pca, alpha=1)``
    gives ``[m, k_pca]`` codes; with k_pca < d each code row goes to k_pca distinct
    random (sorted) positions of a zero d-vector.
    """
    from sklearn.decomposition import SparsePCA

    rng = np.random.default_rng(seed)
    c, d = codebook.shape
    rows = codebook.detach().cpu().double().numpy()[rng.integers(c, size=num_fine)]
    # method="cd" solves the same lasso as the default "lars" (equal codes to ~1e-6 here)
    # and is several times faster on these shapes.
    codes = SparsePCA(n_components=k_pca, alpha=1, method="cd",
                      random_state=seed).fit_transform(rows)
    if k_pca == d:
        return torch.as_tensor(codes, dtype=torch.float32)
    out = np.zeros((num_fine, d), dtype=np.float32)
    positions = np.sort(np.argsort(rng.random((num_fine, d)), axis=1)[:, :k_pca], axis=1)
    np.put_along_axis(out, positions, codes.astype(np.float32), axis=1)
    return torch.from_numpy(out)
