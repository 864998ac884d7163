"""Tests for gnnsys.nn.adapters.pyg: unmodified PyG convs run as gnnsys layers."""
import warnings

import pytest
import torch
import torch_geometric.nn as pyg

from gnnsys.nn import SAGEConv
from gnnsys.nn.adapters.pyg import PygLayer


def test_pyg_sage_through_adapter_equals_gnnsys_sage(split):
    full, shard, owned, src_ids = split
    conv = pyg.SAGEConv(5, 3).double()
    ours = SAGEConv(5, 3).double()
    ours.load_state_dict(conv.state_dict())
    layer = PygLayer(conv)
    assert layer.bipartite
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    for block, x in [(full, h), (shard, h[src_ids])]:
        torch.testing.assert_close(layer(block, x), ours(block, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: pyg.GATConv(5, 3, heads=2),
    lambda: pyg.GraphConv(5, 3),
    lambda: pyg.GINConv(torch.nn.Linear(5, 3)),
])
def test_bipartite_convs_are_exact_on_a_shard(split, make):
    full, shard, owned, src_ids = split
    layer = PygLayer(make().double())
    assert layer.bipartite
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(shard, h[src_ids]), layer(full, h)[owned], rtol=0, atol=1e-10)


def test_gcnconv_uses_plain_call_and_warns_on_halo_blocks(split):
    full, shard, _, src_ids = split
    layer = PygLayer(pyg.GCNConv(5, 3).double())
    assert not layer.bipartite
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer(full, h).shape == (full.num_dst, 3)  # no halo: no warning
    with pytest.warns(UserWarning, match="not exact"):
        assert layer(shard, h[src_ids]).shape == (shard.num_dst, 3)


def test_edge_index_is_cached_per_block(split):
    full, shard, _, _ = split
    layer = PygLayer(pyg.SAGEConv(5, 3))
    assert layer.edge_index(full) is layer.edge_index(full)
    ei = layer.edge_index(shard)
    assert ei.shape == (2, shard.num_edges) and int(ei[1].max()) < shard.num_dst
