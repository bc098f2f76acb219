"""Memory accounting: what a deployed model stores, in parameters and bytes.

Counts C, the nonzeros of F_s with their indices, S and T values and indices, and the
optional bias, each in the dtype an export uses (fp32 values, indices in the smallest
unsigned type that fits), against a full ``N x d`` fp32 table.
"""

from __future__ import annotations

DTYPE_BYTES = {"uint8": 1, "uint16": 2, "uint32": 4, "int64": 8, "float16": 2, "float32": 4}


def index_dtype(size: int) -> str:
    """Smallest unsigned integer type that can address ``size`` positions (0..size-1)."""
    for name, bits in (("uint8", 8), ("uint16", 16), ("uint32", 32)):
        if size <= 2**bits:
            return name
    return "int64"


def memory_report(net) -> dict:
    """Per-array and total counts of a model's stored arrays.

    Args:
        net: a :class:`cfme.embeddings.GraphRecommender` (``stored_arrays()``,
            ``num_entities``, ``dim``).
    Returns:
        flat dict: ``memory/<array>_params``, ``memory/<array>_bytes``,
        ``memory/<array>_dtype``, ``memory/total_params``, ``memory/total_bytes``,
        ``memory/full_table_bytes`` and ``memory/ratio_to_full`` (bytes over the fp32
        ``N x d`` table).
    """
    out: dict = {}
    params = nbytes = 0
    for name, count, dtype in net.stored_arrays():
        size = count * DTYPE_BYTES[dtype]
        out[f"memory/{name}_params"] = count
        out[f"memory/{name}_bytes"] = size
        out[f"memory/{name}_dtype"] = dtype
        params += count
        nbytes += size
    full = net.num_entities * net.dim * DTYPE_BYTES["float32"]
    out.update({
        "memory/total_params": params,
        "memory/total_bytes": nbytes,
        "memory/full_table_params": net.num_entities * net.dim,
        "memory/full_table_bytes": full,
        "memory/ratio_to_full": nbytes / full,
    })
    return out
