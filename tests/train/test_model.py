"""The layer stack: dropout after the exchange (keyed by the source rows' global IDs) equals
dropout before it, in values and gradients; blocks restricted to the rows a pass reads
(select_rows) give those rows' values and every gradient of the full blocks."""
import numpy as np
import pytest
import torch

from gnnsys.nn.block import Block
from gnnsys.nn.registry import build_layer
from gnnsys.train.model import GNN, select_rows

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
    in_deg = torch.tensor([3.0, 4, 2, 5, 3, 6, 3, 2, 4])  # one per source, halo copies alike
    out_deg = torch.tensor([2.0, 5, 3, 4, 6, 3, 2, 3, 6])
    return Block(indptr, src, 9, in_deg, out_deg)


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


@pytest.mark.parametrize("kind", ["gcn", "sage", "gat", "gin"])
def test_selected_rows_give_the_rows_a_pass_reads_and_its_gradients(kind):
    torch.manual_seed(0)
    model = GNN([build_layer(kind, 5, 8), build_layer(kind, 8, 3)], dropout=0.5, seed=7).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    source_ids = torch.cat([OWN_IDS, OWN_IDS[HALO_OF]])
    loss_rows = torch.tensor([0, 5])  # the last layer's rows 0 and 5 read rows 0, 1, 3, 6
    full = block()
    # Layer 1 computes the loss rows; layer 0 the rows they read: themselves, owned rows 1
    # and 3, and halo row 6, a copy of owned row 0. Halo rows 7 and 8 (copies of 2 and 4) are
    # read by no computed row.
    selected = [select_rows(full, np.array([0, 1, 3, 5])), select_rows(full, loss_rows.numpy())]
    assert selected[0].src_order.tolist() == [0, 1, 3, 5, 6, 7, 8]  # row 2 and 4 unread
    assert selected[1].src_order.tolist() == [0, 5, 1, 3, 6]
    results = []
    for blocks in ([full, full], selected):
        model.zero_grad()
        out = model(blocks, x, OWN_IDS, epoch=3, exchange=exchange, source_ids=source_ids)
        out[loss_rows].square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_full, grads_full), (out_sel, grads_sel) = results
    assert torch.allclose(out_sel[loss_rows], out_full[loss_rows], rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(out_sel[[1, 2, 3, 4]]) == 0  # rows not computed are zeros
    for g_full, g_sel in zip(grads_full, grads_sel):
        assert torch.allclose(g_full, g_sel, rtol=1e-12, atol=1e-12)
