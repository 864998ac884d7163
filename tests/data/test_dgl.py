"""Tests for gnnsys.data.dgl.graph_from_dgl: a DGLGraph becomes the same canonical Graph
(DGL env only)."""
import numpy as np
import pytest
import torch

from gnnsys.graph import Graph, GraphError

pytestmark = pytest.mark.dgl
dgl = pytest.importorskip("dgl", reason="dgl is not installed (run in .venv-dgl)")

from gnnsys.data.dgl import graph_from_dgl  # noqa: E402


def make_dgl(n=20, seed=0):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, 80), rng.integers(0, n, 80)
    g = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=n)
    g.ndata["feat"] = torch.randn(n, 4, dtype=torch.float64)
    g.ndata["label"] = torch.from_numpy(rng.integers(0, 3, n)).unsqueeze(1)  # [N, 1] as OGB
    g.ndata["train_mask"] = torch.arange(n) < 10
    return g, src, dst


def test_dgl_graph_equals_from_arrays():
    g, src, dst = make_dgl()
    got = graph_from_dgl(g, name="x")
    want = Graph.from_arrays(edge_index=np.stack([src, dst]), feat=g.ndata["feat"].numpy(),
                             label=g.ndata["label"].numpy()[:, 0],
                             train_mask=g.ndata["train_mask"].numpy(), name="x")
    assert got.content_hash() == want.content_hash()
    assert got.val_mask.sum() == 0 and got.train_mask.sum() == 10  # given masks kept


def test_undirected_keys_and_subgraph_ids():
    g, _, _ = make_dgl()
    g.ndata["y"] = g.ndata.pop("label")
    assert graph_from_dgl(g, undirected=True, keys={"label": "y"}).num_edges >= \
        graph_from_dgl(g, keys={"label": "y"}).num_edges
    sub = dgl.node_subgraph(g, torch.tensor([3, 5, 7, 11]))
    assert graph_from_dgl(sub, keys={"label": "y"}).orig_ids.tolist() == [3, 5, 7, 11]


def test_bad_inputs_are_graph_errors():
    g, _, _ = make_dgl()
    del g.ndata["label"]
    with pytest.raises(GraphError, match="ndata\\['label'\\]"):
        graph_from_dgl(g)
    hetero = dgl.heterograph({("a", "r", "b"): (torch.tensor([0]), torch.tensor([0]))})
    with pytest.raises(GraphError, match="homogeneous"):
        graph_from_dgl(hetero)
