"""CSR kernels agree with scipy."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gnnsys.partition.csr import induced_subgraph, symmetric_adjacency
from tests.partition.conftest import random_graph


def _scipy(graph):
    return sp.csr_matrix((np.ones(graph.num_edges), graph.indices, graph.indptr),
                         shape=(graph.num_nodes, graph.num_nodes))


def test_symmetric_adjacency_is_a_plus_a_transpose():
    graph = random_graph()
    ptr, idx = symmetric_adjacency(graph.indptr, graph.indices)
    want = _scipy(graph) + _scipy(graph).T
    want.sort_indices()
    np.testing.assert_array_equal(ptr, want.indptr)
    np.testing.assert_array_equal(idx, want.indices)


def test_symmetric_input_is_returned_without_copy():
    graph = random_graph()
    ptr, idx = symmetric_adjacency(graph.indptr, graph.indices)
    ptr2, idx2 = symmetric_adjacency(ptr, idx)
    assert ptr2 is ptr and idx2 is idx


def test_induced_subgraph_matches_scipy_submatrix():
    graph = random_graph()
    nodes = np.flatnonzero(np.arange(graph.num_nodes) % 3 != 0)
    ptr, idx = induced_subgraph(graph.indptr, graph.indices, nodes)
    want = _scipy(graph)[nodes][:, nodes]
    want.sort_indices()
    np.testing.assert_array_equal(ptr, want.indptr)
    np.testing.assert_array_equal(idx, want.indices)


def test_one_missing_reverse_edge_is_added():
    # 0 <-> 1, 0 <-> 2, and 1 -> 2 without 2 -> 1: the check must not call this symmetric
    for missing_at_row_end in (True, False):
        src = np.array([1, 0, 2, 0, 1 if missing_at_row_end else 2])
        dst = np.array([0, 1, 0, 2, 2 if missing_at_row_end else 1])
        a = sp.csr_matrix((np.ones(5), (dst, src)), shape=(3, 3))
        a.sort_indices()
        ptr, idx = symmetric_adjacency(a.indptr.astype(np.int64), a.indices.astype(np.int64))
        want = a + a.T
        want.sort_indices()
        np.testing.assert_array_equal(ptr, want.indptr)
        np.testing.assert_array_equal(idx, want.indices)
