"""gnnsys layers vs PyG's reference implementations with the same weights (float64)."""
import torch
import torch_geometric.nn as pyg

from gnnsys.nn import GATConv, GCNConv, GINConv, SAGEConv
from gnnsys.nn.block import Block

from tests.nn.conftest import random_csr


def _setup(symmetric=False):
    indptr, indices = random_csr(40, 160, seed=7, symmetric=symmetric)
    block = Block.full_graph(indptr, indices)
    edge_index = torch.stack([block.edge_src, block.edge_dst])
    h = torch.randn(40, 6, dtype=torch.float64)
    return block, edge_index, h


def test_gcn_equals_pyg_gcnconv_on_symmetric_graph():
    block, edge_index, h = _setup(symmetric=True)
    ours, ref = GCNConv(6, 4).double(), pyg.GCNConv(6, 4).double()
    with torch.no_grad():
        ref.lin.weight.copy_(ours.lin.weight)
        ref.bias.copy_(torch.randn(4))
        ours.bias.copy_(ref.bias)
    torch.testing.assert_close(ours(block, h), ref(h, edge_index), rtol=0, atol=1e-10)


def test_sage_equals_pyg_sageconv():
    block, edge_index, h = _setup()
    ours, ref = SAGEConv(6, 4).double(), pyg.SAGEConv(6, 4).double()
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(block, h), ref(h, edge_index), rtol=0, atol=1e-10)


def test_gat_equals_pyg_gatconv():
    block, edge_index, h = _setup()
    ours, ref = GATConv(6, 4, heads=3).double(), pyg.GATConv(6, 4, heads=3).double()
    with torch.no_grad():
        ref.bias.copy_(torch.randn(12))
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if k in ours.state_dict()})
    torch.testing.assert_close(ours(block, h), ref(h, edge_index), rtol=0, atol=1e-10)


def test_gin_equals_pyg_ginconv():
    block, edge_index, h = _setup()
    ours = GINConv(6, 4, eps=0.25).double()
    ref = pyg.GINConv(torch.nn.Sequential(ours.lin1, torch.nn.ReLU(), ours.lin2), eps=0.25)
    torch.testing.assert_close(ours(block, h), ref(h, edge_index), rtol=0, atol=1e-10)
