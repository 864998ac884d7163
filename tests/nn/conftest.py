"""Shared fixtures for tests/nn: small random graphs, dense references, halo blocks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnsys.graph import canonical_csr
from gnnsys.nn.block import Block


def random_csr(n: int, e: int, seed: int, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Canonical in-edge CSR of a random graph with about ``e`` edges (some isolated nodes)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n - 2, e)  # the last two nodes have no out-edges
    dst = rng.integers(0, n - 1, e)  # the last node has no in-edges
    if symmetric:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    return canonical_csr(src.astype(np.int64), dst.astype(np.int64), n)


def dense_adj(indptr: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    """float64 ``[N, N]`` with ``A[i, j] = 1`` for every edge ``j -> i``."""
    n = len(indptr) - 1
    a = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        a[i, torch.as_tensor(indices[indptr[i]:indptr[i + 1]])] = 1.0
    return a


def halo_block(indptr: np.ndarray, indices: np.ndarray, owned: np.ndarray) -> tuple[Block, np.ndarray]:
    """The block of the ``owned`` nodes of a graph, as a shard would hold it.

    Returns ``(block, src_ids)``: ``src_ids`` are the global IDs of the block's source rows
    (the owned nodes, then the halo nodes in first-seen order).
    """
    n = len(indptr) - 1
    local = -np.ones(n, dtype=np.int64)
    local[owned] = np.arange(len(owned))
    src_ids = list(owned)
    rows, ptr = [], [0]
    for v in owned:
        for u in indices[indptr[v]:indptr[v + 1]]:
            if local[u] < 0:
                local[u] = len(src_ids)
                src_ids.append(u)
            rows.append(local[u])
        ptr.append(len(rows))
    src_ids = np.array(src_ids, dtype=np.int64)
    in_deg = np.diff(indptr)[src_ids]
    out_deg = np.bincount(indices, minlength=n)[src_ids]
    block = Block(torch.tensor(ptr), torch.tensor(rows, dtype=torch.int64), len(src_ids),
                  torch.as_tensor(in_deg), torch.as_tensor(out_deg))
    return block, src_ids


@pytest.fixture
def graph() -> tuple[np.ndarray, np.ndarray]:
    """A random directed graph: 30 nodes, about 120 edges, isolated rows included."""
    return random_csr(30, 120, seed=0)


@pytest.fixture
def split(graph):
    """``(full_block, shard_block, owned, src_ids)``: the graph and a random half of it."""
    indptr, indices = graph
    owned = np.sort(np.random.default_rng(1).permutation(len(indptr) - 1)[:15])
    block, src_ids = halo_block(indptr, indices, owned)
    return Block.full_graph(indptr, indices), block, owned, src_ids
