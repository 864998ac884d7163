"""Tests for gnnsys.data.synthetic: the DC-SBM generator."""
import numpy as np
import pytest

from gnnsys.data import synthetic_graph
from gnnsys.errors import UserError

N = 5000


@pytest.fixture(scope="module")
def graph():
    return synthetic_graph(N, avg_degree=10, num_classes=5, num_features=16, seed=3)


def test_same_seed_same_graph_other_seed_other_graph(graph):
    again = synthetic_graph(N, avg_degree=10, num_classes=5, num_features=16, seed=3)
    other = synthetic_graph(N, avg_degree=10, num_classes=5, num_features=16, seed=4)
    assert again.content_hash() == graph.content_hash()
    assert other.content_hash() != graph.content_hash()
    assert not np.array_equal(other.label, graph.label)


def test_shapes_and_canonical_symmetric_edges(graph):
    assert (graph.num_nodes, graph.num_features, graph.num_classes) == (N, 16, 5)
    assert graph.feat.dtype == np.float32
    assert 0.8 * N * 10 < graph.num_edges <= N * 10  # duplicates/self-loops removed
    src, dst = graph.edge_index()
    assert not (src == dst).any()
    fwd = dst * N + src
    assert np.array_equal(np.sort(fwd), np.sort(src * N + dst))  # every edge both ways
    assert np.unique(fwd).size == fwd.size


def test_degrees_are_heavy_tailed(graph):
    deg = graph.in_degrees()
    assert deg.max() > 10 * np.median(deg)
    # a power law has many more high-degree nodes than a Poisson graph of equal mean
    assert (deg > 5 * deg.mean()).sum() > 10


def test_labels_correlate_with_edges_and_features(graph):
    src, dst = graph.edge_index()
    homophily = (graph.label[src] == graph.label[dst]).mean()
    assert homophily > 0.6  # default 0.8 gives ~0.8 with 5 classes
    means = np.stack([graph.feat[graph.label == c].mean(axis=0) for c in range(5)])
    nearest = np.argmin(((graph.feat[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == graph.label).mean() > 0.25  # 0.2 is chance; default snr 0.4 gives ~0.3


def test_communities_nest_in_classes_and_carry_the_structure():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    g = synthetic_graph(4000, avg_degree=8, num_classes=4, num_features=4, homophily=1.0,
                        num_communities=20, seed=2)
    src, dst = g.edge_index()
    assert (g.label[src] == g.label[dst]).all()  # every community lies inside one class
    adjacency = csr_matrix((np.ones(src.shape[0]), (src, dst)), shape=(4000, 4000))
    assert connected_components(adjacency, directed=False)[0] >= 20  # no inter-community edge
    assert g.meta["num_communities"] == 20


def test_default_communities_grow_with_size_up_to_ten_per_class():
    def communities(n):
        return synthetic_graph(n, avg_degree=2, num_classes=3, num_features=1).meta[
            "num_communities"]
    assert [communities(2000), communities(12_000), communities(60_000)] == [3, 12, 30]


def test_split_is_disjoint_10_10_80(graph):
    masks = np.stack([graph.train_mask, graph.val_mask, graph.test_mask])
    assert (masks.sum(axis=0) == 1).all()
    assert masks.sum(axis=1).tolist() == [N // 10, N // 10, N - N // 5]


def test_homophily_zero_is_near_chance_and_one_is_pure():
    for h, low, high in ((0.0, 0.0, 0.3), (1.0, 0.99, 1.0)):
        g = synthetic_graph(2000, avg_degree=8, num_classes=5, num_features=4, homophily=h)
        src, dst = g.edge_index()
        assert low <= (g.label[src] == g.label[dst]).mean() <= high


@pytest.mark.parametrize("kwargs, match", [
    ({"num_nodes": 1}, "num_nodes"),
    ({"num_nodes": 100, "avg_degree": 0}, "avg_degree"),
    ({"num_nodes": 100, "num_classes": 0}, "num_classes"),
    ({"num_nodes": 100, "homophily": 1.5}, "homophily"),
    ({"num_nodes": 100, "num_classes": 5, "num_communities": 4}, "num_communities"),
    ({"num_nodes": 100, "num_communities": 101}, "num_communities"),
    ({"num_nodes": 100, "degree_exponent": 2.0}, "degree_exponent"),
    ({"num_nodes": 100, "train_fraction": 0.6, "val_fraction": 0.5}, "train_fraction"),
])
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        synthetic_graph(**kwargs)
