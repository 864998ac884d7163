"""Built-in layers vs independent dense / loop references (float64), forward and gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gnnsys.nn import GATConv, GCNConv, GINConv, SAGEConv
from gnnsys.nn.block import Block

from tests.nn.conftest import dense_adj, random_csr

DIMS = [(6, 3), (3, 6)]  # narrowing (weight first) and widening (aggregate first)


def gcn_ref(layer, a, h):
    deg = a.sum(1) + 1  # in-degree + 1
    norm = (a + torch.eye(len(a), dtype=a.dtype)) / torch.sqrt(deg[:, None] * deg[None, :])
    return norm @ h @ layer.lin.weight.T + layer.bias


def sage_ref(layer, a, h):
    mean = a / a.sum(1, keepdim=True).clamp(min=1)
    return mean @ h @ layer.lin_l.weight.T + layer.lin_l.bias + h @ layer.lin_r.weight.T


def gin_ref(layer, a, h):
    z = (1 + layer.eps) * h + a @ h
    return layer.lin2(torch.relu(layer.lin1(z)))


def gat_ref(layer, a, h):
    hh, c = layer.heads, layer.out_dim
    x = (h @ layer.lin.weight.T).view(-1, hh, c)
    a_src, a_dst = (x * layer.att_src).sum(-1), (x * layer.att_dst).sum(-1)
    rows = []
    for i in range(len(a)):
        nb = torch.cat([torch.nonzero(a[i]).flatten(), torch.tensor([i])])
        e = F.leaky_relu(a_src[nb] + a_dst[i], layer.negative_slope)  # [k, H]
        alpha = torch.softmax(e, 0)
        rows.append((alpha[:, :, None] * x[nb]).sum(0))
    out = torch.stack(rows)
    out = out.reshape(len(a), -1) if layer.concat else out.mean(1)
    return out + layer.bias


LAYERS = {
    "gcn": (lambda i, o: GCNConv(i, o), gcn_ref),
    "sage": (lambda i, o: SAGEConv(i, o), sage_ref),
    "gin": (lambda i, o: GINConv(i, o, eps=0.3, train_eps=True), gin_ref),
    "gat": (lambda i, o: GATConv(i, o, heads=2), gat_ref),
    "gat_mean": (lambda i, o: GATConv(i, o, heads=3, concat=False, negative_slope=0.1), gat_ref),
}


def _grads(out, inputs, g):
    return torch.autograd.grad(out, inputs, g)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dims", DIMS)
def test_layer_matches_reference_forward_and_backward(graph, name, dims):
    torch.manual_seed(0)
    make, ref = LAYERS[name]
    layer = make(*dims).double()
    with torch.no_grad():  # non-zero biases so they are checked too
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    h = torch.randn(block.num_src, dims[0], dtype=torch.float64, requires_grad=True)
    out = layer(block, h)
    expected = ref(layer, dense_adj(indptr, indices), h)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    inputs = [h] + list(layer.parameters())
    g = torch.randn_like(out)
    for got, want in zip(_grads(out, inputs, g), _grads(expected, inputs, g)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_halo_block_equals_full_graph_rows(split, name):
    full, shard, owned, src_ids = split
    torch.manual_seed(1)
    layer = LAYERS[name][0](4, 3).double()
    h = torch.randn(full.num_src, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(shard, h[src_ids]), layer(full, h)[owned], rtol=0, atol=1e-12)


def test_layers_run_in_float32(graph):
    block = Block.full_graph(*graph)
    h = torch.randn(block.num_src, 5)
    for make, _ in LAYERS.values():
        out = make(5, 4)(block, h)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_gat_output_width():
    block = Block.full_graph(*random_csr(10, 20, seed=2))
    h = torch.randn(10, 4)
    assert GATConv(4, 3, heads=2)(block, h).shape == (10, 6)
    assert GATConv(4, 3, heads=2, concat=False)(block, h).shape == (10, 3)


def test_gin_eps_trainable_flag():
    assert "eps" in dict(GINConv(2, 2, train_eps=True).named_parameters())
    assert "eps" not in dict(GINConv(2, 2).named_parameters())
    assert np.isclose(float(GINConv(2, 2, eps=0.5).eps), 0.5)


@pytest.mark.parametrize("dims", [(6, 3), (3, 6)])  # narrowing (weight first) and widening
def test_gcn_control_variate_on_full_block_equals_plain_layer(graph, dims):
    """With every in-edge kept, ``(control + A noise) W + b`` is the layer on ``x + noise``."""
    torch.manual_seed(2)
    layer = GCNConv(*dims).double()
    with torch.no_grad():
        layer.bias.add_(0.3)
    block = Block.full_graph(*graph)
    x = torch.randn(block.num_src, dims[0], dtype=torch.float64)
    noise = torch.randn_like(x)
    control = layer.control_aggregate(block, x)
    want = layer(block, x + noise)
    torch.testing.assert_close(layer(block, noise, control=control), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(block, layer.pre_exchange(noise), pre_exchanged=True,
                                     control=control), want, rtol=0, atol=1e-12)


def test_gcn_control_variate_noise_on_sampled_edges_keeps_full_graph_mean_and_variance():
    """Node 0 has 24 in-neighbours of mixed degrees, 6 kept per draw. The noise term of the
    control variate over the sampled edges has mean 0 and, averaged over draws, the variance
    of the full-graph noise term (within 4 standard errors / 10 %)."""
    n, deg, k, draws = 25, 24, 6, 2000
    rng = np.random.default_rng(3)
    in_deg = torch.as_tensor(np.concatenate([[deg], rng.integers(1, 40, n - 1)]))

    def block_of(src: np.ndarray) -> Block:
        return Block(torch.tensor([0, len(src)]), torch.as_tensor(src), n, in_deg,
                     torch.ones(n, dtype=torch.int64))

    layer = GCNConv(1, 1, bias=False).double()
    with torch.no_grad():
        layer.lin.weight.fill_(1.0)
    zero = torch.zeros(1, 1, dtype=torch.float64)
    full = block_of(np.arange(1, n))
    scale = torch.as_tensor(rng.uniform(0.5, 2.0, (n, 1)))  # per-node noise scale
    full_var = float(((full.gcn_norm_weights(torch.float64) * scale[1:, 0]) ** 2).sum()
                     + (full.gcn_self_weights(torch.float64)[0] * scale[0, 0]) ** 2)
    out = np.empty(draws)
    for d in range(draws):
        src = np.sort(rng.choice(np.arange(1, n), k, replace=False))
        noise = torch.as_tensor(rng.choice([-1.0, 1.0], (n, 1))) * scale  # dropout-like +-x
        with torch.no_grad():
            out[d] = layer(block_of(src), noise, control=zero).item()
    se = np.sqrt(full_var / draws)
    assert abs(out.mean()) < 4 * se
    assert abs(out.var() / full_var - 1) < 0.1
