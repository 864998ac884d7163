"""Contraction before METIS: exact coarse graph, projection, refinement, balanced partitions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gnnsys.data import load_dataset
from gnnsys.partition import assign, coarsen as coarsen_module
from gnnsys.partition.assign import assign_parts, balance_weights
from gnnsys.partition.coarsen import coarse_kway, coarsen, contract, refine
from gnnsys.partition.csr import symmetric_adjacency
from gnnsys.partition.metis import metis_kway


@pytest.fixture
def contract_small(monkeypatch):
    """Let :func:`coarse_kway` contract graphs of a few thousand vertices too."""
    monkeypatch.setattr(coarsen_module, "MIN_VERTICES_PER_PART", 10)


@pytest.fixture(scope="module")
def synthetic():
    """``synthetic:5000``: symmetric CSR, its balance weights and bounds."""
    graph = load_dataset("synthetic:5000")
    indptr, indices = symmetric_adjacency(graph.indptr, graph.indices)
    weights, ubvec = balance_weights(graph)
    return indptr, indices, weights, ubvec


def _matrix(indptr, indices, data=None):
    n = indptr.shape[0] - 1
    data = np.ones(indices.shape[0], np.int64) if data is None else data
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def _cut(indptr, indices, parts):
    dst = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    return int(np.sum(parts[indices] != parts[dst]))


def _balance(parts, weights, nparts):
    return [np.bincount(parts, weights=weights[:, j], minlength=nparts).max()
            / (weights[:, j].sum() / nparts) for j in range(weights.shape[1])]


@pytest.mark.parametrize("levels", [1, 2])
def test_coarse_graph_is_the_exact_contraction(synthetic, levels):
    indptr, indices, weights, _ = synthetic
    n = indptr.shape[0] - 1
    coarse = coarsen(indptr, indices, weights, levels)
    c = coarse.indptr.shape[0] - 1
    # every fine vertex has a coarse vertex; each coarse vertex has 1 .. 2**levels members
    assert coarse.cmap.shape == (n,) and coarse.cmap.min() == 0 and coarse.cmap.max() == c - 1
    members = np.bincount(coarse.cmap, minlength=c)
    assert members.min() >= 1 and members.max() <= 2 ** levels
    assert c < 0.7 ** levels * n  # the matching merges most vertices
    # vertex weights summed per constraint, total kept
    np.testing.assert_array_equal(coarse.vwgt.sum(axis=0), weights.sum(axis=0))
    np.testing.assert_array_equal(coarse.vwgt[:, 0], members)
    # coarse edges = P^T A P without its diagonal, parallel edges merged with summed weights
    proj = sp.csr_matrix((np.ones(n, np.int64), (np.arange(n), coarse.cmap)), shape=(n, c))
    expected = (proj.T @ _matrix(indptr, indices) @ proj).tolil()
    expected.setdiag(0)
    expected = expected.tocsr()
    expected.eliminate_zeros()
    got = _matrix(coarse.indptr, coarse.indices, coarse.adjwgt)
    assert got.nnz == coarse.indices.shape[0]  # no duplicate entries in a row
    assert (got != expected).nnz == 0
    # the weight of the cut edges is the fine edge cut
    assert int(coarse.adjwgt.sum()) == int(np.sum(coarse.cmap[indices] != coarse.cmap[
        np.repeat(np.arange(n), np.diff(indptr))]))


def test_heavy_edge_is_matched_first():
    # triangle with edge 0-2 heaviest: 0 merges with 2, not with its first neighbour 1
    indptr = np.array([0, 2, 4, 6])
    indices = np.array([1, 2, 0, 2, 0, 1])
    coarse = contract(indptr, indices, np.ones((3, 1), np.int64),
                      adjwgt=np.array([1, 5, 1, 1, 5, 1]))
    assert coarse.cmap[0] == coarse.cmap[2] != coarse.cmap[1]
    np.testing.assert_array_equal(coarse.adjwgt, [2, 2])


def test_metis_minimises_weighted_cut():
    # ring 0-1-2-3-0: edges 0-1 and 2-3 heavy, so the bisection cuts 1-2 and 3-0
    indptr = np.array([0, 2, 4, 6, 8])
    indices = np.array([1, 3, 0, 2, 1, 3, 0, 2])
    adjwgt = np.array([10, 1, 10, 1, 1, 10, 1, 10])
    parts = metis_kway(indptr, indices, np.ones((4, 1), np.int64), 2, adjwgt=adjwgt)
    assert parts[0] == parts[1] and parts[2] == parts[3] and parts[0] != parts[2]


@pytest.mark.parametrize("levels", [1, 2])
def test_partition_through_contraction_is_valid_and_balanced(synthetic, levels, contract_small):
    indptr, indices, weights, ubvec = synthetic
    parts = coarse_kway(indptr, indices, weights, 8, levels, seed=0, ubvec=ubvec)
    assert parts.dtype == np.int64 and parts.shape == (indptr.shape[0] - 1,)
    assert np.array_equal(np.unique(parts), np.arange(8))
    for got, bound in zip(_balance(parts, weights, 8), ubvec):
        assert got <= bound + 1e-9
    plain = coarse_kway(indptr, indices, weights, 8, 0, seed=0, ubvec=ubvec)
    assert not np.array_equal(parts, plain)  # the contraction did run
    assert _cut(indptr, indices, parts) <= 1.15 * _cut(indptr, indices, plain)
    np.testing.assert_array_equal(
        parts, coarse_kway(indptr, indices, weights, 8, levels, seed=0, ubvec=ubvec))


def test_coarsen_goes_on_while_over_max_vertices(synthetic):
    indptr, indices, weights, _ = synthetic
    one = coarsen(indptr, indices, weights, 1)
    more = coarsen(indptr, indices, weights, 1, max_vertices=one.indptr.shape[0] - 2)
    assert more.indptr.shape[0] - 1 <= one.indptr.shape[0] - 2  # contracted again
    np.testing.assert_array_equal(more.vwgt.sum(axis=0), weights.sum(axis=0))
    # stopping below min_vertices wins over max_vertices; MAX_LEVELS bounds the contractions
    assert coarsen(indptr, indices, weights, 1, min_vertices=10 ** 9, max_vertices=1).cmap.max() \
        == one.cmap.max()
    deepest = coarsen(indptr, indices, weights, 1, max_vertices=1)
    assert np.bincount(deepest.cmap).max() <= 2 ** coarsen_module.MAX_LEVELS


def test_coarsen_stops_going_on_when_contraction_stalls(monkeypatch):
    calls = []
    real = coarsen_module.contract
    monkeypatch.setattr(coarsen_module, "contract",
                        lambda *args: calls.append(1) or real(*args))
    n = 50  # no edges: no vertex can be matched, every contraction keeps all 50
    edgeless = coarsen(np.zeros(n + 1, np.int64), np.zeros(0, np.int64),
                       np.ones((n, 1), np.int64), 1, max_vertices=1)
    assert len(calls) == 1 and edgeless.cmap.max() == n - 1
    calls.clear()
    coarsen(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.ones((n, 1), np.int64), 3)
    assert len(calls) == 3  # asked levels are done regardless


def test_refine_lowers_the_cut_within_the_bounds(synthetic):
    indptr, indices, weights, ubvec = synthetic
    coarse = coarsen(indptr, indices, weights, 2)
    start = metis_kway(coarse.indptr, coarse.indices, coarse.vwgt, 8, 0, ubvec,
                       adjwgt=coarse.adjwgt)[coarse.cmap]  # projected, not refined
    refined = refine(indptr, indices, weights, start, 8, ubvec)
    assert _cut(indptr, indices, refined) < 0.95 * _cut(indptr, indices, start)
    for got, was, bound in zip(_balance(refined, weights, 8), _balance(start, weights, 8),
                               ubvec):
        assert got <= max(was, bound) + 1e-9


def test_assign_two_level_through_contraction(synthetic, monkeypatch, contract_small):
    monkeypatch.setattr(assign, "FAST_METIS_EDGES", 0)  # contract even this small graph
    graph = load_dataset("synthetic:5000")
    parts = assign_parts(graph, 8, servers=2, progress=False)
    weights, ubvec = balance_weights(graph)
    assert np.array_equal(np.unique(parts), np.arange(8))
    for got, bound in zip(_balance(parts, weights, 8), ubvec):
        assert got <= bound * bound + 1e-9  # two bounded splits compound
    indptr, indices, _, _ = synthetic
    rand = assign_parts(graph, 8, method="random", progress=False)
    assert _cut(indptr, indices, parts) < 0.7 * _cut(indptr, indices, rand)


def test_small_graphs_are_not_contracted(synthetic):
    indptr, indices, weights, ubvec = synthetic  # 5000 vertices < 1000 per part for 8 parts
    np.testing.assert_array_equal(coarse_kway(indptr, indices, weights, 8, 3, 0, ubvec),
                                  metis_kway(indptr, indices, weights, 8, 0, ubvec))
