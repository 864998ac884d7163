"""Test accuracy of gnnsys on P ranks against a single-process PyG model of the same architecture.

For every seed, trains a ``--layers``-layer GCN (ReLU between layers, dropout on the input of
every layer, Adam with weight decay on all parameters, mean cross-entropy over the train nodes,
full graph, test accuracy after the last epoch) twice on the same graph and split:

* gnnsys: ``mpirun -n P gnnsys train`` on a METIS partition into ``--parts`` parts;
* PyG: ``torch_geometric.nn.GCNConv(cached=True)`` in this process on the whole graph, with a
  ``torch.sparse_csr`` adjacency (rows = destinations, the in-edge CSR of the graph). PyG's
  ``gcn_norm`` then adds self-loops and weights edge ``j -> i`` by ``1 / sqrt((d_i + 1)(d_j +
  1))`` with ``d`` the in-degree, which is exactly gnnsys's :class:`gnnsys.nn.GCNConv`.

The two differ only in their random draws (weight init and dropout masks), so their mean test
accuracies over seeds should agree. Prints a markdown table (mean ± std of each, difference in
percentage points) and writes JSON with ``--out``.

    python benchmarks/synthetic_accuracy_bench.py --epochs 100 --seeds 0 1 2 3 4

Issue 4 target: on ``synthetic:200000``, |gnnsys - PyG| <= 0.5 pp (mean of 5 seeds).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.bench.accuracy import partition, run_seed
from gnnsys.data import load_dataset
from gnnsys.graph import Graph
from gnnsys.nn.spmm import csr_matrix


class PygGCN(nn.Module):
    """PyG GCN with gnnsys's layer stack: dropout -> GCNConv, ReLU between layers.

    Args:
        dims: widths ``[in, hidden, ..., classes]`` (one layer per consecutive pair).
        dropout: dropout probability on the input of every layer.
    """

    def __init__(self, dims: list, dropout: float) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.convs = nn.ModuleList(GCNConv(i, o, cached=True) for i, o in zip(dims, dims[1:]))
        self.dropout = dropout

    def forward(self, x: Tensor, adj_t: Tensor) -> Tensor:
        """Return the logits ``[N, classes]`` of features ``x`` on the adjacency ``adj_t``."""
        for index, conv in enumerate(self.convs):
            x = conv(F.dropout(x, self.dropout, self.training), adj_t)
            if index < len(self.convs) - 1:
                x = torch.relu(x)
        return x


def pyg_test_accuracy(graph: Graph, seed: int, args: argparse.Namespace) -> float:
    """Train :class:`PygGCN` on the whole ``graph`` for ``args.epochs``; return test accuracy."""
    torch.manual_seed(seed)
    n = graph.num_nodes
    indptr, indices = torch.as_tensor(graph.indptr), torch.as_tensor(graph.indices)
    adj_t = csr_matrix(indptr, indices, torch.ones(indices.numel()), (n, n))
    x = torch.from_numpy(np.asarray(graph.feat))
    y = torch.from_numpy(np.asarray(graph.label))
    train, test = (torch.from_numpy(np.asarray(m)) for m in (graph.train_mask, graph.test_mask))
    dims = [x.shape[1]] + [args.hidden] * (args.layers - 1) + [graph.num_classes]
    model = PygGCN(dims, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    model.train()
    for _ in range(args.epochs):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, adj_t)[train], y[train]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x, adj_t).argmax(1)
    return float((pred[test] == y[test]).float().mean())


def main() -> None:
    """Parse options, run both systems for every seed, print the table and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", default="synthetic:200000", help="dataset spec")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--parts", type=int, default=4, help="gnnsys ranks (METIS parts)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=100, help="epochs of both systems")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads of the PyG process (0 = all cores)")
    ap.add_argument("--work", default=None,
                    help="folder to keep the partition in across runs (default: a temporary one)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    graph = load_dataset(args.dataset)
    train_args = ["--layers", str(args.layers), "--hidden", str(args.hidden), "--dropout",
                  str(args.dropout), "--lr", str(args.lr), "--weight-decay",
                  str(args.weight_decay), "--optimizer", "adam", "--epochs", str(args.epochs),
                  "--eval-every", str(args.epochs)]
    acc = {"gnnsys": [], "pyg": []}
    secs = {"gnnsys": 0.0, "pyg": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        name = f"{args.dataset.replace(':', '-').replace(',', '_')}-{args.parts}"
        folder = partition(args.dataset, args.parts, Path(args.work or tmp) / name)
        for seed in args.seeds:
            t0 = time.perf_counter()
            acc["gnnsys"].append(run_seed(str(folder), args.parts, "gcn", seed, train_args))
            t1 = time.perf_counter()
            acc["pyg"].append(pyg_test_accuracy(graph, seed, args))
            secs["gnnsys"] += t1 - t0
            secs["pyg"] += time.perf_counter() - t1
            print(f"seed {seed}: gnnsys {acc['gnnsys'][-1]:.4f} ({t1 - t0:.0f} s), "
                  f"pyg {acc['pyg'][-1]:.4f} ({time.perf_counter() - t1:.0f} s)", flush=True)
    means = {k: float(np.mean(v)) for k, v in acc.items()}
    diff_pp = 100 * (means["gnnsys"] - means["pyg"])
    print(f"\n{args.dataset}, GCN {args.layers} layers hidden {args.hidden}, {args.epochs} "
          f"epochs, {len(args.seeds)} seeds; load average {os.getloadavg()}")
    print("| system | ranks | test acc mean ± std | range | total s |")
    print("|---|---|---|---|---|")
    for key, ranks in (("gnnsys", args.parts), ("pyg", 1)):
        a = np.array(acc[key])
        print(f"| {key} | {ranks} | {a.mean():.4f} ± {a.std():.4f} | {a.min():.4f}-{a.max():.4f}"
              f" | {secs[key]:.0f} |")
    print(f"difference gnnsys - PyG: {diff_pp:+.2f} pp (target |diff| <= 0.5)")
    if args.out:
        report = {"config": vars(args), "load_average": os.getloadavg(), "test_acc": acc,
                  "mean": means, "diff_pp": diff_pp, "seconds": secs}
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
