"""Tests for gnnsys.nn.block: aggregation helpers vs loops, softmax, halo blocks, caching."""
import numpy as np
import pytest
import torch

from gnnsys.nn.block import Block


def _loop_aggregate(indptr, indices, h, reduce):
    out = torch.zeros(len(indptr) - 1, *h.shape[1:], dtype=h.dtype)
    for i in range(len(indptr) - 1):
        nb = torch.as_tensor(indices[indptr[i]:indptr[i + 1]])
        if len(nb):
            rows = h[nb]
            out[i] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0).values}[reduce]
    return out


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_aggregate_matches_loop(graph, reduce):
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    h = torch.randn(block.num_src, 4, dtype=torch.float64)
    out = block.aggregate(h, reduce)
    torch.testing.assert_close(out, _loop_aggregate(indptr, indices, h, reduce), rtol=0, atol=1e-12)
    assert torch.all(out[-1] == 0)  # the last node has no in-edges


def test_aggregate_gradients_match_loop(graph):
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    for reduce in ["sum", "mean", "max"]:
        h1 = torch.randn(block.num_src, 3, dtype=torch.float64, requires_grad=True)
        h2 = h1.detach().clone().requires_grad_(True)
        g = torch.randn(block.num_dst, 3, dtype=torch.float64)
        (block.aggregate(h1, reduce) * g).sum().backward()
        (_loop_aggregate(indptr, indices, h2, reduce) * g).sum().backward()
        torch.testing.assert_close(h1.grad, h2.grad, rtol=0, atol=1e-12)


def test_structure_and_degrees(graph):
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    assert block.num_src == block.num_dst == 30 and block.num_edges == len(indices)
    assert torch.equal(block.in_deg, torch.as_tensor(np.diff(indptr)))
    assert torch.equal(block.out_deg, torch.as_tensor(np.bincount(indices, minlength=30)))
    for e in range(block.num_edges):
        i = int(block.edge_dst[e])
        assert indptr[i] <= e < indptr[i + 1] and block.edge_src[e] == indices[e]


def test_edge_softmax_sums_to_one_and_matches_loop(graph):
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    scores = torch.randn(block.num_edges, 3, dtype=torch.float64) * 50  # large: needs the max shift
    alpha = block.edge_softmax(scores)
    sums = torch.zeros(block.num_dst, 3, dtype=torch.float64).index_add_(0, block.edge_dst, alpha)
    has_edges = block.local_in_degree() > 0
    torch.testing.assert_close(sums[has_edges], torch.ones_like(sums[has_edges]), rtol=0, atol=1e-12)
    for i in range(block.num_dst):
        lo, hi = indptr[i], indptr[i + 1]
        if hi > lo:
            torch.testing.assert_close(alpha[lo:hi], torch.softmax(scores[lo:hi], 0), rtol=0, atol=1e-12)
    assert torch.isfinite(alpha).all()


def test_halo_block_equals_full_graph_rows(split):
    full, shard, owned, src_ids = split
    assert shard.num_src > shard.num_dst == len(owned)
    h = torch.randn(full.num_src, 5, dtype=torch.float64)
    for reduce in ["sum", "mean", "max"]:
        torch.testing.assert_close(shard.aggregate(h[src_ids], reduce),
                                   full.aggregate(h, reduce)[owned], rtol=0, atol=1e-12)
    w_full = full.gcn_norm_weights(torch.float64)
    g_full = full.spmm(h, w_full) + full.gcn_self_weights(torch.float64)[:, None] * h
    g_shard = (shard.spmm(h[src_ids], shard.gcn_norm_weights(torch.float64))
               + shard.gcn_self_weights(torch.float64)[:, None] * h[owned])
    torch.testing.assert_close(g_shard, g_full[owned], rtol=0, atol=1e-12)


def test_gcn_norm_weights_use_in_degree_plus_one(graph):
    indptr, indices = graph
    block = Block.full_graph(indptr, indices)
    deg = np.diff(indptr).astype(np.float64)
    w = block.gcn_norm_weights(torch.float64)
    for e in range(block.num_edges):
        i, j = int(block.edge_dst[e]), int(block.edge_src[e])
        assert abs(float(w[e]) - 1 / np.sqrt((deg[i] + 1) * (deg[j] + 1))) < 1e-14
    torch.testing.assert_close(block.gcn_self_weights(torch.float64), torch.as_tensor(1 / (deg + 1)))


def test_sampled_block_gcn_weights_are_scaled_by_deg_over_sampled_count(graph):
    """Row i keeps k_i of its deg_i in-edges: each kept edge weighs deg_i / k_i times its
    full-graph weight, so a uniform sample's expected sum is the full-graph sum."""
    indptr, indices = graph
    full = Block.full_graph(indptr, indices)
    w_full = full.gcn_norm_weights(torch.float64)
    deg = np.diff(indptr)
    k = (deg + 1) // 2
    rng = np.random.default_rng(0)
    kept = np.concatenate([np.sort(rng.choice(np.arange(indptr[i], indptr[i + 1]), k[i],
                                              replace=False)) for i in range(len(deg))])
    sampled = Block(torch.as_tensor(np.concatenate([[0], np.cumsum(k)])),
                    torch.as_tensor(indices[kept]), len(deg), full.in_deg, full.out_deg)
    dst = np.repeat(np.arange(len(deg)), k)
    expected = w_full[torch.as_tensor(kept)] * torch.as_tensor(deg[dst] / k[dst])
    torch.testing.assert_close(sampled.gcn_norm_weights(torch.float64), expected,
                               rtol=1e-15, atol=0)
    assert (deg > k).any()  # some rows really are subsampled
    # zero-mean terms (a control variate's noise) are scaled by sqrt(deg_i / k_i) instead
    root = w_full[torch.as_tensor(kept)] * torch.as_tensor(np.sqrt(deg[dst] / k[dst]))
    torch.testing.assert_close(sampled.gcn_norm_weights(torch.float64, zero_mean=True), root,
                               rtol=1e-15, atol=0)
    torch.testing.assert_close(full.gcn_norm_weights(torch.float64, zero_mean=True), w_full,
                               rtol=0, atol=0)


def test_with_self_loops_appends_one_loop_per_row(graph):
    indptr, indices = graph
    loops = Block.full_graph(indptr, indices).with_self_loops()
    assert loops.num_edges == len(indices) + 30
    for i in range(30):
        row = loops.indices[loops.indptr[i]:loops.indptr[i + 1]].tolist()
        assert row == list(indices[indptr[i]:indptr[i + 1]]) + [i]


def test_to_casts_float_degrees_and_rebuilds_cache(split):
    _, shard, _, _ = split
    f = Block(shard.indptr, shard.indices, shard.num_src, shard.in_deg.double(), shard.out_deg.double())
    moved = f.to("cpu", torch.float32)
    assert moved.in_deg.dtype == torch.float32 and moved.indices.dtype == torch.int64
    assert moved.num_src == shard.num_src and moved.num_dst == shard.num_dst


def test_matrix_cache_sees_in_place_changes(graph):
    block = Block.full_graph(*graph)
    h = torch.randn(30, 2, dtype=torch.float64)
    w = torch.ones(block.num_edges, dtype=torch.float64)
    first = block.spmm(h, w)
    w.mul_(2.0)
    torch.testing.assert_close(block.spmm(h, w), 2 * first)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        Block(torch.tensor([0, 0, 0]), torch.zeros(0, dtype=torch.int64), 1, torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError):
        Block.full_graph(np.array([0, 0]), np.zeros(0, dtype=np.int64)).aggregate(torch.zeros(1, 1), "min")
