"""The ``pre_exchange`` hook of the built-in layers: same outputs and gradients, narrow rows."""
import pytest
import torch
from torch import nn

from gnnsys.nn import GATConv, GCNConv, GINConv, SAGEConv
from gnnsys.train.model import apply_layer

BUILD = {
    "gcn": lambda i, o: GCNConv(i, o),
    "sage": lambda i, o: SAGEConv(i, o),
    "gin": lambda i, o: GINConv(i, o, eps=0.3, train_eps=True),
    "gat": lambda i, o: GATConv(i, o // 2, heads=2),
}
# (in, out, width of pre_exchange's rows): SAGE projects first only when 2 * out < in.
CASES = {
    "gcn": [(12, 3, 3), (6, 5, 5), (3, 6, 3)],
    "sage": [(12, 3, 6), (6, 4, 6), (3, 6, 3)],
    "gin": [(12, 3, 3), (6, 5, 5), (3, 6, 3)],
    "gat": [(12, 4, 4), (6, 6, 6), (3, 6, 3)],  # out = heads * out_dim, heads = 2
}
PARAMS = [(name, *dims) for name, cases in CASES.items() for dims in cases]


def _layer(name: str, in_dim: int, out_dim: int) -> nn.Module:
    torch.manual_seed(0)
    layer = BUILD[name](in_dim, out_dim).double()
    with torch.no_grad():  # non-zero biases, so a dropped bias would show
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("name,in_dim,out_dim,width", PARAMS)
def test_pre_exchanged_call_equals_plain_call(split, name, in_dim, out_dim, width):
    _, block, _, _ = split
    layer = _layer(name, in_dim, out_dim)
    h = torch.randn(block.num_src, in_dim, dtype=torch.float64, requires_grad=True)
    g = torch.randn(block.num_dst, out_dim, dtype=torch.float64)
    inputs = [h, *layer.parameters()]
    plain = layer(block, h)
    grads_plain = torch.autograd.grad(plain, inputs, g)
    rows = layer.pre_exchange(h)
    assert rows.shape == (block.num_src, width)
    hooked = layer(block, rows, pre_exchanged=True)
    grads_hooked = torch.autograd.grad(hooked, inputs, g)
    torch.testing.assert_close(hooked, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_hooked, grads_plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,in_dim,out_dim,width", PARAMS)
def test_pre_exchange_is_row_wise(name, in_dim, out_dim, width):
    layer = _layer(name, in_dim, out_dim)
    h = torch.randn(20, in_dim, dtype=torch.float64)
    perm = torch.randperm(20)[:13]
    torch.testing.assert_close(layer.pre_exchange(h)[perm], layer.pre_exchange(h[perm]),
                               rtol=1e-13, atol=1e-13)
    if width == in_dim:
        assert layer.pre_exchange(h) is h  # a widening layer sends its input as it is


class _Recorder(nn.Module):
    """A user layer without ``pre_exchange``: sum over in-edges, then a linear map."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim).double()

    def forward(self, block, h):
        return self.lin(block.aggregate(h, "sum"))


@pytest.mark.parametrize("layer_kind", ["plain", "gcn", "gat"])
def test_apply_layer_exchanges_the_narrow_rows(split, layer_kind):
    _, block, _, _ = split
    owned = block.num_dst
    layer = {"plain": lambda: _Recorder(12, 3), "gcn": lambda: _layer("gcn", 12, 3),
             "gat": lambda: GATConv(12, 3, heads=1).double()}[layer_kind]()
    h_src = torch.randn(block.num_src, 12, dtype=torch.float64)
    seen = []

    def exchange(x):  # stands in for the halo exchange: the owned rows, then the halo rows
        seen.append(x.shape[1])
        halo = layer.pre_exchange(h_src[owned:]) if hasattr(layer, "pre_exchange") else \
            h_src[owned:]
        return torch.cat([x, halo])

    out = apply_layer(layer, block, h_src[:owned], exchange)
    torch.testing.assert_close(out, layer(block, h_src), rtol=1e-12, atol=1e-12)
    assert seen == [12 if layer_kind == "plain" else 3]
