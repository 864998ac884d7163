"""Distributed training is exactly single-process training.

For P in {1, 2, 4} and the shards of metis, random and two-level partitions, 20 epochs of
GCN, SAGE, GAT, GIN and a PyG conv through the adapter (float64, dropout on) give the same
per-epoch loss as the plain-torch reference in ``reference.py`` to 1e-8 relative, and the same
final weights to 1e-7.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnsys.graph import Graph
from gnnsys.partition.api import partition_graph
from gnnsys.train.model import build_model
from tests._mpi import run_mpi
from tests.train._train_worker import job_config
from tests.train.reference import train_reference

WORKER = str(Path(__file__).with_name("_train_worker.py"))
KINDS = ("gcn", "sage", "gat", "gin", "pyg-sage")


def community_graph(n=240, classes=4, features=12, seed=0) -> Graph:
    """A small clustered graph with duplicates, self-loops and an isolated node."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    src = rng.integers(0, n, 6 * n)
    same = rng.random(6 * n) < 0.8
    pool = [np.flatnonzero(label == c) for c in range(classes)]
    dst = np.where(same, [rng.choice(pool[label[s]]) for s in src], rng.integers(0, n, 6 * n))
    keep = (src != n - 1) & (dst != n - 1)  # node n-1 stays isolated
    edges = np.stack([src[keep], dst[keep]])
    edges = np.concatenate([edges, edges[:, :10], [[3, 4], [3, 4]]], axis=1)  # dups, self-loops
    feat = (np.eye(classes)[label] @ rng.normal(size=(classes, features))
            + rng.normal(size=(n, features))).astype(np.float32)
    train = rng.random(n) < 0.5
    return Graph.from_arrays(edge_index=edges, feat=feat, label=label, train_mask=train,
                             val_mask=~train, test_mask=~train, undirected=False, name="comm")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("equiv")
    graph = community_graph()
    layouts = {}
    for parts in (1, 2, 4):
        layouts[parts] = []
        for method, servers in (("metis", 1), ("random", 1), ("metis", 2)):
            if servers > parts:
                continue
            out = root / f"{method}-{parts}-s{servers}"
            partition_graph(graph, parts, str(out), servers=servers, method=method, seed=0,
                            progress=False)
            layouts[parts].append(str(out))
    return root, graph, layouts


@pytest.fixture(scope="module")
def references(setup):
    _, graph, layouts = setup
    refs = {}
    for kind in KINDS:
        cfg = job_config(layouts[1][0], kind)
        model = build_model(cfg, graph.num_features, graph.num_classes).double()
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        refs[kind] = train_reference(kind, state, {k for k, _ in model.named_parameters()},
                                     graph, cfg)
    return refs


@pytest.mark.mpi
@pytest.mark.parametrize("parts", [1, 2, 4])
def test_distributed_equals_single_process(setup, references, parts, tmp_path):
    _, graph, layouts = setup
    jobs = [f"{layout}:{kind}" for layout in layouts[parts] for kind in KINDS]
    if parts > 1:  # the input layer's halo exchanged every epoch instead of cached
        jobs.append(f"{layouts[parts][0]}:gcn:input_halo_cache=0")
    if parts == 1:
        import subprocess
        proc = subprocess.run([sys.executable, WORKER, str(tmp_path), *jobs],
                              capture_output=True, text=True, timeout=300)
    else:
        proc = run_mpi(parts, [WORKER, str(tmp_path), *jobs], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for index, job in enumerate(jobs):
        kind = job.split(":")[1]
        ref_losses, ref_params = references[kind]
        got = np.load(tmp_path / f"{index}.npz")
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-8, atol=0,
                                   err_msg=f"loss differs for {job}")
        for name, value in ref_params.items():
            np.testing.assert_allclose(got["param:" + name], value.numpy(), rtol=1e-7,
                                       atol=1e-9, err_msg=f"{name} differs for {job}")
