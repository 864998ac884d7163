"""Compute per epoch: gnnsys GCN / SAGE layers vs PyG on one machine, one process.

Epoch = forward + backward + Adam step of a 2-layer model (features -> hidden -> classes, ReLU)
on a random power-law-ish graph (default 200k nodes / 4M edges, 128 features, hidden 256,
16 classes), with ``torch.set_num_threads(threads)``. gnnsys runs on a full-graph ``Block``;
PyG 2.8 runs ``GCNConv(cached=True)`` / ``SAGEConv`` on a ``torch.sparse_csr`` adjacency and,
with ``--pyg-edge-index``, on ``edge_index`` (slow, several GB). Where ``dgl`` imports (run it
with ``.venv-dgl/bin/python``), DGL 2.1's ``GraphConv`` / ``SAGEConv`` join the same run
(``dgl-gcn``, ``dgl-sage``). Also times ``hashed_dropout``
against ``F.dropout`` on a ``[nodes, hidden]`` tensor. Epochs of the models are interleaved
round-robin (the machine may be shared); prints the median of ``--epochs`` epochs (after one
warm-up) per model and writes them as JSON to ``--out``.

Usage: ``python benchmarks/compute_bench.py --out bench_compute.json``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.graph import canonical_csr
from gnnsys.nn import Block, GCNConv, SAGEConv, hashed_dropout
from gnnsys.nn.spmm import csr_matrix


def power_law_graph(n: int, e: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical in-edge CSR with about ``e`` edges; endpoint popularity ~ rank^-0.7."""
    rng = np.random.default_rng(seed)
    w = (np.arange(1, n + 1, dtype=np.float64)) ** -0.7
    w /= w.sum()
    m = int(e * 1.04)  # a few duplicates get merged
    src = rng.permutation(n)[rng.choice(n, m, p=w)]
    dst = rng.integers(0, n, m)
    indptr, indices = canonical_csr(src.astype(np.int64), dst.astype(np.int64), n)
    return indptr, indices


class TwoLayerNet(nn.Module):
    """conv -> ReLU -> conv, each built as ``make(in_dim, out_dim)``; gnnsys and DGL convs are
    called as ``conv(graph, x)``, PyG convs (``graph_last=True``) as ``conv(x, graph)``."""

    def __init__(self, make, dims, graph_last: bool = False):
        super().__init__()
        self.l1, self.l2 = make(dims[0], dims[1]), make(dims[1], dims[2])
        self.graph_last = graph_last

    def forward(self, graph, x):
        conv = (lambda layer, h: layer(h, graph)) if self.graph_last else \
            (lambda layer, h: layer(graph, h))
        return conv(self.l2, torch.relu(conv(self.l1, x)))


def dgl_models(indptr: np.ndarray, indices: np.ndarray, dims: tuple) -> dict:
    """``name -> (factory, graph)`` of the DGL models, or {} where dgl does not import."""
    try:
        import dgl
        import dgl.nn as dglnn
    except ImportError:
        return {}
    n = len(indptr) - 1
    dst = np.repeat(np.arange(n), np.diff(indptr))
    g = dgl.graph((torch.as_tensor(indices), torch.as_tensor(dst)), num_nodes=n)
    g = dgl.add_self_loop(g)  # as gnnsys's and PyG's GCN
    return {
        "dgl-gcn": (lambda: TwoLayerNet(lambda i, o: dglnn.GraphConv(i, o, norm="both"), dims), g),
        "dgl-sage": (lambda: TwoLayerNet(lambda i, o: dglnn.SAGEConv(i, o, "mean"), dims), g),
    }


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, graph, x, y) -> float:
    """Run one epoch (forward, loss, backward, Adam step); return its seconds."""
    t0 = time.perf_counter()
    opt.zero_grad()
    F.cross_entropy(model(graph, x), y).backward()
    opt.step()
    return time.perf_counter() - t0


def time_interleaved(runs: dict, x, y, epochs: int) -> dict:
    """Seconds per epoch of every ``name -> (model, graph)``, epochs interleaved round-robin.

    One untimed warm-up epoch each; then every round runs one epoch of every model, so load
    from other processes on a shared machine hits all models alike.
    """
    opts = {name: torch.optim.Adam(model.parameters(), lr=0.01) for name, (model, _) in runs.items()}
    times = {name: [] for name in runs}
    for rnd in range(epochs + 1):
        for name, (model, graph) in runs.items():
            sec = train_epoch(model, opts[name], graph, x, y)
            if rnd:
                times[name].append(sec)
        print(f"round {rnd}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v),
              flush=True)
    return times


def time_dropout(n: int, d: int, reps: int) -> dict:
    """Median seconds of hashed_dropout and F.dropout on an ``[n, d]`` float32 tensor."""
    h, ids = torch.randn(n, d), torch.arange(n)
    out = {}
    for name, fn in [("hashed_dropout", lambda e: hashed_dropout(h, ids, 0.5, 0, e, 0)),
                     ("torch F.dropout", lambda e: F.dropout(h, 0.5))]:
        ts = []
        for e in range(reps + 1):
            t0 = time.perf_counter()
            fn(e)
            ts.append(time.perf_counter() - t0)
        out[name] = statistics.median(ts[1:])
    return out


def main() -> None:
    """Parse options, run every model, print the table and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200_000, help="number of nodes")
    ap.add_argument("--edges", type=int, default=4_000_000, help="target number of edges")
    ap.add_argument("--features", type=int, default=128, help="input feature width")
    ap.add_argument("--hidden", type=int, default=256, help="hidden width")
    ap.add_argument("--classes", type=int, default=16, help="number of classes")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per model")
    ap.add_argument("--models", default="gnnsys-gcn,pyg-csr-gcn,gnnsys-sage,pyg-csr-sage",
                    help="comma-separated models to run (also: pyg-ei-gcn, pyg-ei-sage, and "
                    "dgl-gcn, dgl-sage where dgl imports)")
    ap.add_argument("--pyg-edge-index", action="store_true",
                    help="also run PyG on edge_index (needs several GB of RAM)")
    ap.add_argument("--seed", type=int, default=0, help="graph / weight seed")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch_geometric.nn as pyg

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    indptr, indices = power_law_graph(args.nodes, args.edges, args.seed)
    n, e = len(indptr) - 1, len(indices)
    print(f"graph: {n} nodes, {e} edges, max in-degree {np.diff(indptr).max()}, "
          f"max out-degree {np.bincount(indices).max()} ({time.perf_counter() - t0:.1f} s)")
    x = torch.randn(n, args.features)
    y = torch.randint(0, args.classes, (n,))
    dims = (args.features, args.hidden, args.classes)
    block = Block.full_graph(indptr, indices)
    ip, ix = torch.as_tensor(indptr), torch.as_tensor(indices)
    adj_t = csr_matrix(ip, ix, torch.ones(e), (n, n))
    edge_index = torch.stack([ix, torch.repeat_interleave(torch.arange(n), ip[1:] - ip[:-1])])
    pyg_gcn = lambda i, o: pyg.GCNConv(i, o, cached=True)  # noqa: E731
    models = {
        "gnnsys-gcn": (lambda: TwoLayerNet(GCNConv, dims), block),
        "gnnsys-sage": (lambda: TwoLayerNet(SAGEConv, dims), block),
        "pyg-csr-gcn": (lambda: TwoLayerNet(pyg_gcn, dims, graph_last=True), adj_t),
        "pyg-csr-sage": (lambda: TwoLayerNet(pyg.SAGEConv, dims, graph_last=True), adj_t),
        "pyg-ei-gcn": (lambda: TwoLayerNet(pyg_gcn, dims, graph_last=True), edge_index),
        "pyg-ei-sage": (lambda: TwoLayerNet(pyg.SAGEConv, dims, graph_last=True), edge_index),
    }
    models.update(dgl_models(indptr, indices, dims))
    names = args.models.split(",") + (["pyg-ei-gcn", "pyg-ei-sage"] if args.pyg_edge_index else [])
    unknown = [name for name in names if name not in models]
    if unknown:
        raise SystemExit(f"unknown or unavailable models {unknown}; available: {sorted(models)}")
    runs = {name: (models[name][0](), models[name][1]) for name in names}
    times = time_interleaved(runs, x, y, args.epochs)
    results = {}
    print(f"{'model':<16}{'median s/epoch':>16}{'min':>8}{'max':>8}")
    for name, ts in times.items():
        results[name] = {"median_s": statistics.median(ts), "epochs_s": ts}
        print(f"{name:<16}{statistics.median(ts):>16.3f}{min(ts):>8.3f}{max(ts):>8.3f}")
    drop = time_dropout(n, args.hidden, args.epochs)
    for name, sec in drop.items():
        print(f"{name + ' [N, hidden]':<32} {sec * 1000:.0f} ms")
    report = {"config": vars(args), "graph": {"nodes": n, "edges": e},
              "load_average": os.getloadavg(), "results": results, "dropout_s": drop,
              "torch": torch.__version__}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
