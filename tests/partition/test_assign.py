"""Assignments: METIS beats random on clustered graphs, balance, determinism, two-level."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.errors import UserError
from gnnsys.partition.assign import assign_parts, random_parts
from tests.partition.conftest import clustered_graph


def _cut(graph, assignment):
    dst = np.repeat(np.arange(graph.num_nodes), np.diff(graph.indptr))
    return int(np.sum(assignment[graph.indices] != assignment[dst]))


def test_metis_cuts_far_fewer_edges_than_random():
    graph = clustered_graph()
    metis = _cut(graph, assign_parts(graph, 8, progress=False))
    rand = _cut(graph, assign_parts(graph, 8, method="random", progress=False))
    assert metis < 0.25 * rand


def test_metis_balance_on_nodes_edges_and_train():
    graph = clustered_graph(clusters=16, size=250)
    a = assign_parts(graph, 4, progress=False)
    nodes = np.bincount(a, minlength=4)
    edges = np.bincount(a, weights=np.diff(graph.indptr), minlength=4)
    train = np.bincount(a[graph.train_mask], minlength=4)
    assert nodes.max() / nodes.mean() <= 1.05
    assert edges.max() / edges.mean() <= 1.06
    assert train.max() / train.mean() <= 1.06


def test_train_nodes_balanced_even_when_concentrated():
    graph = clustered_graph(clusters=16, size=250)
    graph.train_mask[:] = False
    graph.train_mask[:1000] = True  # all train nodes in the first 4 clusters
    a = assign_parts(graph, 4, progress=False)
    train = np.bincount(a[graph.train_mask], minlength=4)
    assert train.max() / train.mean() <= 1.06


@pytest.mark.parametrize("method", ["metis", "random"])
def test_deterministic_for_a_seed(method):
    graph = clustered_graph(clusters=4, size=100)
    a = assign_parts(graph, 4, method=method, seed=3, progress=False)
    b = assign_parts(graph, 4, method=method, seed=3, progress=False)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.shape == (graph.num_nodes,)


def test_random_is_balanced_and_seeded():
    a = random_parts(103, 4, seed=1)
    assert sorted(np.bincount(a)) == [25, 26, 26, 26]
    assert not np.array_equal(a, random_parts(103, 4, seed=2))


def test_two_level_groups_parts_by_server():
    graph = clustered_graph(clusters=8, size=200, inter=0.1)
    a = assign_parts(graph, 8, servers=2, progress=False)
    assert set(np.unique(a)) == set(range(8))
    server = a // 4
    dst = np.repeat(np.arange(graph.num_nodes), np.diff(graph.indptr))
    cross_server = np.sum(server[graph.indices] != server[dst])
    rand_server = random_parts(graph.num_nodes, 8) // 4
    assert cross_server < 0.25 * np.sum(rand_server[graph.indices] != rand_server[dst])
    # each server holds about half the nodes
    assert np.bincount(server).max() / (graph.num_nodes / 2) <= 1.05


@pytest.mark.parametrize("parts,servers,method", [(0, 1, "metis"), (1001, 1, "metis"),
                                                  (4, 3, "metis"), (4, 0, "metis"),
                                                  (4, 1, "kmeans")])
def test_bad_options_are_user_errors(parts, servers, method):
    graph = clustered_graph(clusters=4, size=250)
    with pytest.raises(UserError):
        assign_parts(graph, parts, servers=servers, method=method, progress=False)
