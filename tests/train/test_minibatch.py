"""Minibatch forward with fanouts -1 equals the full-graph forward (float64), with and without
the input layer's control variate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnsys.data.registry import load_dataset
from gnnsys.nn.block import Block
from gnnsys.nn.registry import build_layer
from gnnsys.train.minibatch import minibatch_forward
from gnnsys.train.model import GNN
from gnnsys.train.sampler import LocalGraph, NeighborSampler


def _model(kind: str, in_dim: int, classes: int) -> GNN:
    torch.manual_seed(0)
    dims = [in_dim, 16, 16, classes]
    layers = [build_layer(kind, dims[i], dims[i + 1]) for i in range(3)]
    return GNN(layers, dropout=0.3, seed=5).to(torch.float64)


@pytest.mark.parametrize("dataset", ["karate", "cora"])
@pytest.mark.parametrize("kind", ["gcn", "sage", "gat", "gin"])
def test_all_neighbour_minibatch_equals_full_graph(dataset, kind):
    g = load_dataset(dataset)
    feat = torch.from_numpy(np.asarray(g.feat)).to(torch.float64)
    ids = torch.arange(g.num_nodes)
    model = _model(kind, feat.shape[1], int(g.label.max()) + 1).train()
    full = model(Block.full_graph(g.indptr, g.indices), feat, ids, epoch=2)
    sampler = NeighborSampler(LocalGraph.from_csr(g.indptr, g.indices), [-1, -1, -1], seed=1)
    train = np.flatnonzero(g.train_mask)
    for seeds in (np.arange(g.num_nodes), train):  # full batch, then a subset of seeds
        batch = sampler.sample(seeds, epoch=2, step=0)
        out = minibatch_forward(model, batch, feat[batch.rows[0]], ids, epoch=2)
        np.testing.assert_array_equal(batch.seeds, seeds)
        torch.testing.assert_close(out, full[seeds], rtol=0, atol=1e-10)


def test_sampled_minibatch_differs_and_has_gradients():
    g = load_dataset("karate")
    feat = torch.from_numpy(np.asarray(g.feat)).to(torch.float64)
    model = _model("sage", feat.shape[1], int(g.label.max()) + 1).train()
    full = model(Block.full_graph(g.indptr, g.indices), feat, torch.arange(g.num_nodes), 0)
    batch = NeighborSampler(LocalGraph.from_csr(g.indptr, g.indices), [2, 2, 2]).sample(
        np.arange(g.num_nodes))
    assert batch.num_edges < 3 * g.num_edges
    out = minibatch_forward(model, batch, feat[batch.rows[0]], torch.arange(g.num_nodes), 0)
    assert not torch.allclose(out, full)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("training", [True, False])
def test_input_control_variate_with_all_neighbours_equals_full_graph(training):
    """The input layer fed the exact aggregate plus the dropout noise (zeros in eval mode) on
    unsampled blocks gives the full-graph logits: rows, control rows and noise line up."""
    g = load_dataset("cora")
    feat = torch.from_numpy(np.asarray(g.feat)).to(torch.float64)
    ids = torch.arange(g.num_nodes)
    model = _model("gcn", feat.shape[1], int(g.label.max()) + 1).train(training)
    block = Block.full_graph(g.indptr, g.indices)
    full = model(block, feat, ids, epoch=4)
    control = model.layers[0].control_aggregate(block, feat)
    sampler = NeighborSampler(LocalGraph.from_csr(g.indptr, g.indices), [-1, -1, -1], seed=1)
    seeds = np.flatnonzero(g.train_mask)
    batch = sampler.sample(seeds, epoch=4, step=0)
    out = minibatch_forward(model, batch, feat[batch.rows[0]], ids, epoch=4,
                            input_aggregate=control)
    torch.testing.assert_close(out, full[seeds], rtol=0, atol=1e-10)
