"""The layer stack: dropout after the exchange (keyed by the source rows' global IDs) equals
dropout before it, in values and gradients."""
import pytest
import torch

from gnnsys.nn.block import Block
from gnnsys.nn.registry import build_layer
from gnnsys.train.model import GNN

OWN_IDS = torch.tensor([10, 11, 12, 13, 14, 15])
HALO_OF = torch.tensor([0, 2, 4])  # the halo rows are copies of these owned rows (same IDs)


def block():
    """6 destinations, sources = 6 owned rows then the 3 halo copies."""
    edges = [(0, 1), (1, 0), (2, 6), (3, 7), (4, 8), (5, 3), (1, 8), (0, 6), (2, 1)]
    dst = torch.tensor([d for d, _ in edges])
    order = torch.argsort(dst, stable=True)
    src = torch.tensor([s for _, s in edges])[order]
    indptr = torch.zeros(7, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(dst, minlength=6), 0)
    deg = torch.full((9,), 3.0)
    return Block(indptr, src, 9, deg, deg)


def exchange(h, layer):
    """A fake exchange: the owned rows, then copies of the rows the halo mirrors."""
    return torch.cat([h, h[HALO_OF]])


@pytest.mark.parametrize("kind", ["gcn", "sage", "gin"])
def test_dropout_after_exchange_equals_dropout_before(kind):
    torch.manual_seed(0)
    layers = [build_layer(kind, 5, 8), build_layer(kind, 8, 3)]
    model = GNN(layers, dropout=0.5, seed=7).double()
    model.project_before_exchange = False  # every layer exchanges its input rows
    x = torch.randn(6, 5, dtype=torch.float64)
    source_ids = torch.cat([OWN_IDS, OWN_IDS[HALO_OF]])
    results = []
    for ids in (None, source_ids):
        model.zero_grad()
        out = model(block(), x, OWN_IDS, epoch=3, exchange=exchange, source_ids=ids)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_before, grads_before), (out_after, grads_after) = results
    assert torch.allclose(out_before, out_after, rtol=1e-12, atol=1e-12)
    for g_before, g_after in zip(grads_before, grads_after):
        assert torch.allclose(g_before, g_after, rtol=1e-12, atol=1e-12)
    model.eval()
    assert not torch.equal(model(block(), x, OWN_IDS, 3, exchange, source_ids), out_after)
