"""Sparse assignments of entities to codebook rows: METIS init and least-squares updates.

An assignment with k nonzeros per row is stored as ``index [n, k]`` (int64) and
``value [n, k]`` (float32).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from cfme.graph import TrainingGraph

# pymetis.Options fields that shape a partition (numbering, help, debug output stay pymetis's)
METIS_OPTIONS = ("objtype", "ctype", "iptype", "rtype", "niter", "ncuts", "seed",
                 "no2hop", "minconn", "contig", "ufactor")


def partition(graph: TrainingGraph, num_parts: int, seed: int, method: str = "metis",
              metis_options: Mapping | None = None, setting: str = "model.coarse.net",
              file: str | None = None) -> np.ndarray:
    """Part id ``[N]`` of every entity: METIS on the training graph, uniform random, or
    read from ``file``.

    ``method="random"`` is only used when asked for in config (``*.partition=random``).
    METIS runs with ``seed`` and pymetis's defaults, overridden by ``metis_options``
    (integer ``pymetis.Options`` fields named in ``METIS_OPTIONS``, e.g. ``{"niter": 1}``;
    a ``seed`` there replaces the run's). pymetis's METIS seeds the C library's ``rand()``
    with ``srand(seed)``, and glibc's ``srand`` treats 0 as 1, so seeds 0 and 1 give the
    same partition there. ``file`` (``*.partition_file``) replaces METIS by a partition
    made elsewhere (``read_partition``). ``setting`` names the config node in errors.
    """
    n = graph.num_nodes
    options = _metis_option_items(metis_options, setting)
    if file is not None:
        if method != "metis":
            raise ValueError(f"{setting}.partition_file is set, so no partition is drawn; "
                             f"drop {setting}.partition={method!r} or the file")
        if options:
            raise ValueError(f"{setting}.partition_file is set, so METIS does not run; "
                             f"drop {setting}.metis_options or the file")
        return read_partition(file, graph, num_parts, f"{setting}.partition_file")
    if method == "random":
        if options:
            raise ValueError(f"{setting}.metis_options is set but {setting}.partition=random "
                             "runs no METIS; drop one of them")
        return np.random.default_rng(seed).integers(num_parts, size=n)
    if method != "metis":
        raise ValueError(f"{setting}.partition must be 'metis' or 'random', got {method!r}")
    try:
        import pymetis
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "METIS partitioning needs pymetis: `pip install pymetis` (or "
            "`pip install -e .`, which depends on it). To use a uniform random partition "
            "instead, set model.coarse.net.partition=random (and model.fine.net.partition)."
        ) from err
    metis = pymetis.Options(seed=seed)
    for name, value in options:
        setattr(metis, name, value)
    xadj, adjncy = graph.partition_input()
    if num_parts == 1:
        return np.zeros(n, dtype=np.int64)
    result = pymetis.part_graph(num_parts, xadj=xadj, adjncy=adjncy, options=metis)
    return np.asarray(result.vertex_part, dtype=np.int64)


def read_partition(path: str, graph: TrainingGraph, num_parts: int, setting: str) -> np.ndarray:
    """Part ids ``[N]`` read from ``path``, in the graph's node order.

    The file holds one integer part id in ``[0, num_parts)`` per entity in the data files'
    order: users ``0..U-1``, then items offset by ``U`` (the order of the authors'
    ``metis_assignment.pickle``). ``.npy`` files are read with ``numpy.load``, any other
    file as text, one id per line. Ids are mapped through ``graph.file_ids`` when the
    nodes were relabelled (``data.reorder``). ``setting`` names the config key in errors.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{setting}={path}: no such file (relative paths are read from "
                                f"the directory the run was started in, {os.getcwd()})")
    try:
        ids = np.load(path, allow_pickle=False) if path.endswith(".npy") else \
            np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (ValueError, OSError, EOFError) as err:  # not numbers, pickled data, truncated
        raise ValueError(f"{setting}={path}: not a .npy array nor text with one part id per "
                         f"line ({err})") from err
    n = graph.num_nodes
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"{setting}={path}: holds {ids.size} ids of shape {ids.shape}, expected "
                         f"{n}: one per user ({graph.num_users}), then one per item "
                         f"({graph.num_items})")
    if ids.dtype.kind not in "iuf" or (ids.dtype.kind == "f" and (ids != np.round(ids)).any()):
        raise ValueError(f"{setting}={path}: part ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    bad = np.flatnonzero((ids < 0) | (ids >= num_parts))
    if bad.size:
        raise ValueError(f"{setting}={path}: entry {bad[0]} (0-based) is part {ids[bad[0]]}, not "
                         f"in [0, {num_parts}) for the {num_parts} parts of this codebook")
    return ids if graph.file_ids is None else ids[graph.file_ids]


def _metis_option_items(metis_options, setting: str) -> list[tuple[str, int]]:
    """``metis_options`` as checked ``(name, int)`` pairs; errors name ``setting``."""
    if metis_options is None:
        return []
    if not isinstance(metis_options, Mapping):
        raise ValueError(f"{setting}.metis_options must be a mapping such as {{niter: 1}}, "
                         f"got {metis_options!r}")
    items = []
    for name, value in metis_options.items():
        if name not in METIS_OPTIONS:
            raise ValueError(f"{setting}.metis_options.{name}: not one of {', '.join(METIS_OPTIONS)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{setting}.metis_options.{name}={value!r} must be an integer")
        items.append((name, value))
    return items


def coarse_init(parts: np.ndarray, num_coarse: int, t: int, anchor_weight: float,
                seed: int) -> tuple[Tensor, Tensor]:
    """Initial S: ``anchor_weight`` on the own part, ``(1 - w)/(t - 1)`` on t-1 other parts.

    The other parts are distinct, drawn uniformly at random. With t = 1, weight 1.
    Returns ``(index [N, t], value [N, t])``.
    """
    n = parts.shape[0]
    rng = np.random.default_rng(seed)
    index = np.empty((n, t), dtype=np.int64)
    index[:, 0] = parts
    if t > 1:
        # distinct parts != own: sample from {0..c-2} without replacement, then skip own.
        others = _distinct_draws(rng, n, num_coarse - 1, t - 1)
        index[:, 1:] = others + (others >= parts[:, None])
        value = np.full((n, t), (1.0 - anchor_weight) / (t - 1), dtype=np.float32)
        value[:, 0] = anchor_weight
    else:
        value = np.ones((n, 1), dtype=np.float32)
    return torch.from_numpy(index), torch.from_numpy(value)


def _distinct_draws(rng: np.random.Generator, n: int, high: int, k: int) -> np.ndarray:
    """``[n, k]`` draws from ``0..high-1``, distinct within each row."""
    out = rng.integers(high, size=(n, k))
    while True:
        dup = np.zeros(out.shape, dtype=bool)
        for c in range(1, k):
            dup[:, c] = (out[:, :c] == out[:, c : c + 1]).any(axis=1)
        if not dup.any():
            return out
        out[dup] = rng.integers(high, size=int(dup.sum()))


def top_k_rows(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest values of each row of ``x [n, c]`` with their columns (values kept)."""
    value, index = torch.topk(x, k, dim=1)
    return index, value


def least_squares(h_entities: Tensor, h_virtual: Tensor) -> Tensor:
    """``H_N pinv(H_V)``: ``[n, d] x [v, d] -> [n, v]``, each entity as a mix of virtual rows."""
    return h_entities @ torch.linalg.pinv(h_virtual)


def coarse_update(h_entities: Tensor, h_coarse: Tensor, t: int) -> tuple[Tensor, Tensor]:
    """S <- top_t_rows(H_N pinv(H_C))."""
    return top_k_rows(least_squares(h_entities, h_coarse), t)


def fine_init(s_index: Tensor, s_value: Tensor, parts: np.ndarray, num_coarse: int,
              num_fine: int, k: int) -> tuple[Tensor, Tensor]:
    """Initial T: top_k_rows(softmax_rows(S^T P)) with P the METIS affinity ``[N, m]``.

    P has 0.5 on the entity's own part and 0.5/(m - 1) on every other part; S^T P is
    formed without materializing P.
    """
    n, t = s_index.shape
    own = 0.5 if num_fine > 1 else 1.0
    other = 0.5 / (num_fine - 1) if num_fine > 1 else 0.0
    rows = s_index.reshape(-1)
    vals = s_value.reshape(-1).double()
    part = torch.as_tensor(parts, dtype=torch.long).repeat_interleave(t)
    st_p = torch.zeros(num_coarse, num_fine, dtype=torch.float64)
    st_p.index_put_((rows, part), vals * (own - other), accumulate=True)
    col_sum = torch.zeros(num_coarse, dtype=torch.float64).index_add_(0, rows, vals)
    st_p += other * col_sum[:, None]
    return top_k_rows(torch.softmax(st_p, dim=1).float(), k)


def fine_update(h_entities: Tensor, h_coarse: Tensor, h_fine: Tensor, k: int):
    """T <- top_k_rows(softmax_rows(A1^T A2)), A1 = H_N pinv(H_C), A2 = H_N pinv(H_F)."""
    a1 = least_squares(h_entities, h_coarse)
    a2 = least_squares(h_entities, h_fine)
    return top_k_rows(torch.softmax(a1.T @ a2, dim=1), k)
