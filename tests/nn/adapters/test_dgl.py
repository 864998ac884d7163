"""Tests for gnnsys.nn.adapters.dgl: unmodified DGL convs run as gnnsys layers (DGL env only).

Each DGL conv through the adapter equals gnnsys's built-in layer of the same kind (float64,
1e-8) on a whole graph and on a shard with halo rows, and a shard computes exactly the owned
rows of the whole-graph output.
"""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.dgl
dgl = pytest.importorskip("dgl", reason="dgl is not installed (run in .venv-dgl: "
                          "bash launch/setup_dgl_env.sh)")
import dgl.nn as dglnn  # noqa: E402

from gnnsys.nn import GATConv, GCNConv, SAGEConv  # noqa: E402
from gnnsys.nn.adapters.dgl import DglLayer  # noqa: E402
from gnnsys.nn.block import Block  # noqa: E402
from gnnsys.nn.registry import build_layer  # noqa: E402
from tests.nn.conftest import halo_block, random_csr  # noqa: E402

TOL = dict(rtol=0, atol=1e-8)


@pytest.fixture
def sym_split():
    """A symmetric random graph (in-degree = out-degree, as GCN's normalisation assumes)."""
    indptr, indices = random_csr(30, 100, seed=2, symmetric=True)
    owned = np.sort(np.random.default_rng(3).permutation(30)[:14])
    block, src_ids = halo_block(indptr, indices, owned)
    return Block.full_graph(indptr, indices), block, owned, src_ids


def pairs():
    """(DGL conv, built-in layer with the same parameters), float64."""
    torch.manual_seed(0)
    gcn_dgl, gcn = dglnn.GraphConv(5, 3, norm="both"), GCNConv(5, 3)
    with torch.no_grad():
        gcn.bias.normal_()
        gcn_dgl.weight.copy_(gcn.lin.weight.T)
        gcn_dgl.bias.copy_(gcn.bias)
    sage_dgl, sage = dglnn.SAGEConv(5, 3, "mean"), SAGEConv(5, 3)
    sage_dgl.load_state_dict({"fc_neigh.weight": sage.lin_l.weight,
                              "fc_self.weight": sage.lin_r.weight, "fc_self.bias": sage.lin_l.bias})
    gat_dgl, gat = dglnn.GATConv(5, 3, num_heads=2), GATConv(5, 3, heads=2)
    with torch.no_grad():
        gat.bias.normal_()
    gat_dgl.load_state_dict({"fc.weight": gat.lin.weight, "attn_l": gat.att_src,
                             "attn_r": gat.att_dst, "bias": gat.bias})
    return {"GraphConv": (gcn_dgl, gcn), "SAGEConv": (sage_dgl, sage), "GATConv": (gat_dgl, gat)}


@pytest.mark.parametrize("name", ["GraphConv", "SAGEConv", "GATConv"])
def test_dgl_conv_equals_builtin_on_graph_and_shard(sym_split, name):
    full, shard, owned, src_ids = sym_split
    conv, ours = (m.double() for m in pairs()[name])
    layer = DglLayer(conv)
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    whole = layer(full, h)
    torch.testing.assert_close(whole, ours(full, h), **TOL)
    part = layer(shard, h[src_ids])
    torch.testing.assert_close(part, ours(shard, h[src_ids]), **TOL)
    torch.testing.assert_close(part, whole[owned], **TOL)


def test_graphconv_shard_needs_the_degree_correction(sym_split):
    full, shard, owned, src_ids = sym_split
    conv = pairs()["GraphConv"][0].double()
    layer = DglLayer(conv)
    graph, weight = layer.dgl_block(shard)
    assert weight is not None and layer.dgl_block(full)[1] is None  # whole graph: exact as is
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    plain = conv(graph, h[src_ids])  # what DGL alone computes on the shard (local degrees)
    assert not torch.allclose(plain, layer(full, h)[owned], atol=1e-6)
    assert layer.dgl_block(shard)[0] is graph  # built once per block


def test_gradients_match_builtin(sym_split):
    full, shard, _, src_ids = sym_split
    conv, ours = (m.double() for m in pairs()["GATConv"])
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    DglLayer(conv)(shard, h[src_ids]).square().sum().backward()
    ours(shard, h[src_ids]).square().sum().backward()
    torch.testing.assert_close(conv.fc.weight.grad, ours.lin.weight.grad, **TOL)
    torch.testing.assert_close(conv.attn_l.grad, ours.att_src.grad, **TOL)


@pytest.mark.parametrize("spec, shape", [("dgl.nn:GraphConv", (30, 4)),
                                         ("dgl.nn:SAGEConv", (30, 4)),
                                         ("dgl.nn:GATConv", (30, 4))])
def test_registry_builds_dgl_convs_with_defaults(sym_split, spec, shape):
    full = sym_split[0]
    layer = build_layer(spec, 5, 4)
    assert isinstance(layer, DglLayer)
    assert layer(full, torch.randn(30, 5)).shape == shape
    assert build_layer("dgl.nn:SAGEConv", 5, 4, aggregator_type="pool").conv._aggre_type == "pool"
