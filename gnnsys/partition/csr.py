"""CSR kernels the partitioner needs for METIS: transpose, symmetrise, induced subgraph.

All take and return ``int64`` CSR arrays with sorted rows (the canonical form of
:class:`gnnsys.graph.Graph`) and run as numba kernels in two passes (count, then fill), so
no intermediate edge list is built. The kernels release the GIL, so other threads (hashing
the dataset) run meanwhile.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def transpose_csr(indptr, indices, num_cols, with_perm):  # pragma: no cover - compiled
    """Transpose a CSR structure by a counting sort: O(E), stable in row order.

    Takes ``int64`` ``indptr [R + 1]``, ``indices [E]`` (columns ``< num_cols``). Returns
    ``(t_indptr [num_cols + 1], t_indices [E], perm)``: for every entry of the transpose, its
    row in the original and (``with_perm``) its position there (``perm`` is empty otherwise).
    """
    out_ptr = np.zeros(num_cols + 1, dtype=np.int64)
    for e in range(indices.shape[0]):
        out_ptr[indices[e] + 1] += 1
    for v in range(num_cols):
        out_ptr[v + 1] += out_ptr[v]
    fill = out_ptr[:-1].copy()
    out_idx = np.empty(indices.shape[0], dtype=np.int64)
    perm = np.empty(indices.shape[0] if with_perm else 0, dtype=np.int64)
    for v in range(indptr.shape[0] - 1):
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            out_idx[fill[u]] = v
            if with_perm:
                perm[fill[u]] = e
            fill[u] += 1
    return out_ptr, out_idx, perm


@njit(cache=True, nogil=True)
def _merge_rows(a_ptr, a_idx, b_ptr, b_idx, out_idx, count_only):
    """Union of the sorted rows of A and B; counts per row, or fills ``out_idx``."""
    n = a_ptr.shape[0] - 1
    counts = np.zeros(n + 1, dtype=np.int64)
    pos = 0
    for v in range(n):
        i, i_end = a_ptr[v], a_ptr[v + 1]
        j, j_end = b_ptr[v], b_ptr[v + 1]
        start = pos
        while i < i_end or j < j_end:
            if j == j_end or (i < i_end and a_idx[i] < b_idx[j]):
                u = a_idx[i]
                i += 1
            elif i == i_end or b_idx[j] < a_idx[i]:
                u = b_idx[j]
                j += 1
            else:
                u = a_idx[i]
                i += 1
                j += 1
            if not count_only:
                out_idx[pos] = u
            pos += 1
        counts[v + 1] = pos - start
    return counts


@njit(cache=True, nogil=True)
def _is_symmetric(indptr, indices):
    """True when every edge has its reverse, for rows without duplicates.

    Only the edges ``v -> u`` with ``u > v`` are looked up (binary search of ``v`` in row
    ``u``); as that lookup is one-to-one, equal counts of edges above and below the diagonal
    then prove that the edges below have their reverse too.
    """
    above = 0
    below = 0
    for v in range(indptr.shape[0] - 1):
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if u < v:
                below += 1
            elif u > v:
                above += 1
                lo, hi = indptr[u], indptr[u + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if indices[mid] < v:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == indptr[u + 1] or indices[lo] != v:
                    return False
    return above == below


def symmetric_adjacency(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the CSR of ``A + A^T`` (duplicates merged) for the canonical CSR ``A`` (rows
    sorted, no duplicates, no self-loops).

    Returns the inputs themselves (no copy, no extra memory) when ``A`` is already symmetric,
    which is checked by binary searches (no transpose). Otherwise peak extra memory is one
    transposed copy of ``A`` plus the result.
    """
    if _is_symmetric(indptr, indices):
        return indptr, indices
    t_ptr, t_idx, _ = transpose_csr(indptr, indices, indptr.shape[0] - 1, False)
    counts = _merge_rows(indptr, indices, t_ptr, t_idx, np.empty(0, np.int64), True)
    out_ptr = np.cumsum(counts)
    out_idx = np.empty(int(out_ptr[-1]), dtype=np.int64)
    _merge_rows(indptr, indices, t_ptr, t_idx, out_idx, False)
    return out_ptr, out_idx


@njit(cache=True, nogil=True)
def _induced(indptr, indices, nodes, local, out_idx, count_only):
    counts = np.zeros(nodes.shape[0] + 1, dtype=np.int64)
    pos = 0
    for i in range(nodes.shape[0]):
        v = nodes[i]
        start = pos
        for e in range(indptr[v], indptr[v + 1]):
            u = local[indices[e]]
            if u >= 0:
                if not count_only:
                    out_idx[pos] = u
                pos += 1
        counts[i + 1] = pos - start
    return counts


def induced_subgraph(indptr: np.ndarray, indices: np.ndarray,
                     nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the CSR of the subgraph induced by ``nodes`` (sorted global IDs), relabelled.

    Node ``nodes[i]`` becomes ``i``; edges leaving the set are dropped. Rows stay sorted.
    """
    local = np.full(indptr.shape[0] - 1, -1, dtype=np.int64)
    local[nodes] = np.arange(nodes.shape[0], dtype=np.int64)
    counts = _induced(indptr, indices, nodes, local, np.empty(0, np.int64), True)
    out_ptr = np.cumsum(counts)
    out_idx = np.empty(int(out_ptr[-1]), dtype=np.int64)
    _induced(indptr, indices, nodes, local, out_idx, False)
    return out_ptr, out_idx
