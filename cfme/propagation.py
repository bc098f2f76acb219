"""LightGCN-style propagation whose backward reuses the (symmetric) graph.

For y = G x with G symmetric, dL/dx = G^T dL/dy = G dL/dy: the backward is one more
sparse-dense product with the same CSR matrix, no transpose built per step.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _SparseMatmul(torch.autograd.Function):
    """y = A x with a constant sparse A whose transpose is given (or A itself)."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.a_t @ grad


def sparse_matmul(a: Tensor, x: Tensor, a_t: Tensor | None = None) -> Tensor:
    """``a @ x`` for a constant sparse ``a [n, m]`` and dense ``x [m, d]``.

    ``a_t`` is ``a``'s transpose; leave it out when ``a`` is symmetric.
    """
    return _SparseMatmul.apply(a, a if a_t is None else a_t, x)


def lightgcn(adj: Tensor, h0: Tensor, num_layers: int) -> Tensor:
    """Mean of ``[h0, G h0, ..., G^L h0]``; ``adj`` symmetric ``[n, n]``, ``h0 [n, d]``."""
    out, h = h0, h0
    for _ in range(num_layers):
        h = sparse_matmul(adj, h)
        out = out + h
    return out / (num_layers + 1)


def bridged_lightgcn(adj: Tensor, h0: Tensor, num_layers: int, sizes: tuple[int, int, int],
                     s: tuple[Tensor, Tensor], t: tuple[Tensor, Tensor], g: float) -> Tensor:
    """Stage-2 propagation with weight bridging at every layer (SPEC).

    Per layer: Z = Ĝ₂ H split into (Z_N, Z_C, Z_F); Z_N -= S Z_C; Z_C -= T Z_F;
    Z_C = g T Z_F + (1 - g) Z_C; Z_N += S Z_C.

    Args:
        adj: symmetric ``[N + c + m]`` square Ĝ₂.
        h0: ``[N + c + m, d]`` layer-0 embeddings.
        sizes: ``(N, c, m)``.
        s, t: ``(S, S^T)`` with S ``[N, c]`` and ``(T, T^T)`` with T ``[c, m]``, sparse.
        g: bridging weight.
    Returns:
        ``[N + c + m, d]`` mean over layers.
    """
    n, c, _ = sizes
    out, h = h0, h0
    for _ in range(num_layers):
        z = sparse_matmul(adj, h)
        z_n, z_c, z_f = z[:n], z[n:n + c], z[n + c:]
        t_zf = sparse_matmul(t[0], z_f, t[1])
        z_n = z_n - sparse_matmul(s[0], z_c, s[1])
        z_c = g * t_zf + (1 - g) * (z_c - t_zf)
        z_n = z_n + sparse_matmul(s[0], z_c, s[1])
        h = torch.cat([z_n, z_c, z_f])
        out = out + h
    return out / (num_layers + 1)
