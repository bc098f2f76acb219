"""LightGCN-style propagation as one autograd node whose backward reuses the graph.

The output is the layer mean ``(1 / (L + 1)) Σ_l M^l H⁰`` for a per-layer linear map M,
evaluated by Horner's rule (``acc ← H⁰ + M acc``, L times). Its gradient is
``(1 / (L + 1)) Σ_l (Mᵀ)^l G``, evaluated the same way (``acc ← G + Mᵀ acc``), with no
intermediate layer kept for backward. For
plain LightGCN M = Ĝ is symmetric, so Mᵀ is one more sparse-dense product with the
same CSR matrix: no transpose is built, nothing is stored per step. The bridged map
of CFME's stage 2 is Ĝ₂ followed by small corrections through S and T (see
:class:`BridgedLayer`), whose transposes are applied in the same pass.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SymmetricLayer:
    """``M h = Ĝ h`` with Ĝ symmetric sparse ``[n, n]``."""

    def __init__(self, adj: Tensor):
        self.adj = adj

    def forward_add(self, h0: Tensor, h: Tensor) -> Tensor:
        """``h0 + M h``."""
        return torch.addmm(h0, self.adj, h)

    def backward_add(self, grad: Tensor, acc: Tensor, owned: bool = False) -> Tensor:
        """``grad + Mᵀ acc``."""
        return torch.addmm(grad, self.adj, acc)


class BridgedLayer:
    """Stage-2 layer: Z = Ĝ₂ H split into (Z_N, Z_C, Z_F), then (SPEC)
    Z_N -= S Z_C; Z_C -= T Z_F; Z_C = g T Z_F + (1 - g) Z_C; Z_N += S Z_C.

    Algebraically Z_C' = Z_C + u and Z_N' = Z_N + S u with
    ``u = (2g - 1) T Z_F - g Z_C`` (``[c, d]``), which is what is computed.

    Args:
        adj: symmetric Ĝ₂ ``[N + c + m, N + c + m]``.
        sizes: ``(N, c, m)``.
        s, t: ``(S, Sᵀ)`` with S ``[N, c]`` and ``(T, Tᵀ)`` with T ``[c, m]``, sparse.
        g: bridging weight.
    """

    def __init__(self, adj: Tensor, sizes: tuple[int, int, int], s, t, g: float):
        self.adj, self.sizes, self.s, self.t, self.g = adj, sizes, s, t, g

    def forward_add(self, h0: Tensor, h: Tensor) -> Tensor:
        """``h0 + M h``."""
        n, c, _ = self.sizes
        z = torch.addmm(h0, self.adj, h)  # h0 + Ĝ₂ h; the corrections below are linear in Ĝ₂ h
        z_c = z[n:n + c] - h0[n:n + c]
        u = torch.addmm(z_c, self.t[0], z[n + c:] - h0[n + c:], beta=-self.g,
                        alpha=2 * self.g - 1)
        z[n:n + c] += u
        z[:n].addmm_(self.s[0], u)
        return z

    def backward_add(self, grad: Tensor, acc: Tensor, owned: bool = False) -> Tensor:
        """``grad + Mᵀ acc`` with Mᵀ = Ĝ₂ (I + P)ᵀ; ``acc`` is modified if ``owned``."""
        n, c, _ = self.sizes
        g_u = torch.addmm(acc[n:n + c], self.s[1], acc[:n])  # Sᵀ a_N + a_C
        a = acc if owned else acc.clone()
        a[n:n + c] -= self.g * g_u
        a[n + c:].addmm_(self.t[1], g_u, alpha=2 * self.g - 1)
        return torch.addmm(grad, self.adj, a)


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h0: Tensor, layer, num_layers: int) -> Tensor:
        ctx.layer, ctx.num_layers = layer, num_layers
        acc = h0  # Horner: Σ_l M^l H⁰ = H⁰ + M(H⁰ + M(...))
        for _ in range(num_layers):
            acc = layer.forward_add(h0, acc)
        return acc / (num_layers + 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous()
        acc = grad
        for layer in range(ctx.num_layers):  # after the first, acc is ours to modify
            acc = ctx.layer.backward_add(grad, acc, owned=layer > 0)
        return acc / (ctx.num_layers + 1), None, None


def propagate(h0: Tensor, layer, num_layers: int) -> Tensor:
    """Mean of ``[H⁰, M H⁰, ..., M^L H⁰]`` for a layer map with ``forward_add``/``backward_add``."""
    if num_layers == 0:
        return h0
    return _Propagate.apply(h0, layer, num_layers)


def lightgcn(adj: Tensor, h0: Tensor, num_layers: int) -> Tensor:
    """LightGCN over a symmetric sparse ``adj [n, n]``; ``h0 [n, d]`` -> ``[n, d]``."""
    return propagate(h0, SymmetricLayer(adj), num_layers)


def bridged_lightgcn(adj: Tensor, h0: Tensor, num_layers: int, sizes: tuple[int, int, int],
                     s: tuple[Tensor, Tensor], t: tuple[Tensor, Tensor], g: float) -> Tensor:
    """Stage-2 propagation with weight bridging at every layer: ``[N + c + m, d]`` in and out."""
    return propagate(h0, BridgedLayer(adj, sizes, s, t, g), num_layers)



class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.a_t @ grad


def sparse_matmul(a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` for a constant sparse ``a [n, m]`` (transpose ``a_t`` given) and ``x [m, d]``."""
    return _SparseMatmul.apply(a, a_t, x)
