"""Suite ``compute``: one process's epoch compute, gnnsys layers vs PyG (and DGL where installed).

Epoch = forward + backward + Adam step of a 2-layer model (features -> hidden -> classes, ReLU)
on a random power-law graph (``nodes`` nodes, 20 edges per node, 128 features, hidden 256,
16 classes), 2 torch threads. gnnsys runs on a full-graph ``Block``; PyG runs
``GCNConv(cached=True)`` / ``SAGEConv`` on a ``torch.sparse_csr`` adjacency. Epochs of the models
are interleaved round-robin (so load from other processes hits all alike) and the median counts.
Where the DGL environment (``.venv-dgl``) exists, a child process with its python times DGL 2.1's
``GraphConv`` / ``SAGEConv`` next to gnnsys's layers again on the same graph (saved to ``.npz``),
so DGL is compared with gnnsys inside one process too. Issue 4 target: gnnsys no slower than the
fastest of PyG and DGL (compute bound C of the performance model, one rank).

The DGL child is this module run as ``python -m gnnsys.bench.compute GRAPH.npz OUT.json ...``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.bench import plots
from gnnsys.bench.common import dgl_python
from gnnsys.bench.options import BenchOptions

NAME = "compute"
FEATURES, HIDDEN, CLASSES, DEGREE, THREADS = 128, 256, 16, 20, 2
MAIN_MODELS = ("gnnsys-gcn", "pyg-csr-gcn", "gnnsys-sage", "pyg-csr-sage")
DGL_MODELS = ("gnnsys-gcn", "dgl-gcn", "gnnsys-sage", "dgl-sage")


def power_law_graph(n: int, e: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return a canonical in-edge CSR ``(indptr, indices)`` with about ``e`` edges on ``n``
    nodes; endpoint popularity ~ rank^-0.7."""
    from gnnsys.graph import canonical_csr

    rng = np.random.default_rng(seed)
    w = (np.arange(1, n + 1, dtype=np.float64)) ** -0.7
    w /= w.sum()
    m = int(e * 1.04)  # a few duplicates get merged
    src = rng.permutation(n)[rng.choice(n, m, p=w)]
    dst = rng.integers(0, n, m)
    return canonical_csr(src.astype(np.int64), dst.astype(np.int64), n)


class TwoLayerNet(nn.Module):
    """conv -> ReLU -> conv, each built as ``make(in_dim, out_dim)``; gnnsys and DGL convs are
    called as ``conv(graph, x)``, PyG convs (``graph_last=True``) as ``conv(x, graph)``."""

    def __init__(self, make: Callable[[int, int], nn.Module], dims: Sequence[int],
                 graph_last: bool = False) -> None:
        super().__init__()
        self.l1, self.l2 = make(dims[0], dims[1]), make(dims[1], dims[2])
        self.graph_last = graph_last

    def forward(self, graph, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x`` on ``graph``."""
        if self.graph_last:
            return self.l2(torch.relu(self.l1(x, graph)), graph)
        return self.l2(graph, torch.relu(self.l1(graph, x)))


def model_factories(indptr: np.ndarray, indices: np.ndarray, names: Sequence[str],
                    device: str) -> Dict[str, Tuple[Callable[[], nn.Module], object]]:
    """Return ``name -> (factory, graph)`` for the ``names`` among gnnsys-*, pyg-csr-*, dgl-*."""
    n, e = len(indptr) - 1, len(indices)
    dims = (FEATURES, HIDDEN, CLASSES)
    out: Dict[str, Tuple[Callable[[], nn.Module], object]] = {}
    if any(name.startswith("gnnsys") for name in names):
        from gnnsys.nn import Block, GCNConv, SAGEConv

        block = Block.full_graph(indptr, indices).to(device)
        out["gnnsys-gcn"] = (lambda: TwoLayerNet(GCNConv, dims), block)
        out["gnnsys-sage"] = (lambda: TwoLayerNet(SAGEConv, dims), block)
    if any(name.startswith("pyg") for name in names):
        import torch_geometric.nn as pyg

        from gnnsys.nn.spmm import csr_matrix

        adj_t = csr_matrix(torch.as_tensor(indptr), torch.as_tensor(indices), torch.ones(e),
                           (n, n)).to(device)
        out["pyg-csr-gcn"] = (lambda: TwoLayerNet(lambda i, o: pyg.GCNConv(i, o, cached=True),
                                                  dims, graph_last=True), adj_t)
        out["pyg-csr-sage"] = (lambda: TwoLayerNet(pyg.SAGEConv, dims, graph_last=True), adj_t)
    if any(name.startswith("dgl") for name in names):
        import dgl
        import dgl.nn as dglnn

        dst = np.repeat(np.arange(n), np.diff(indptr))
        g = dgl.add_self_loop(dgl.graph((torch.as_tensor(indices), torch.as_tensor(dst)),
                                        num_nodes=n)).to(device)  # self-loops as GCN's
        out["dgl-gcn"] = (lambda: TwoLayerNet(lambda i, o: dglnn.GraphConv(i, o, norm="both"),
                                              dims), g)
        out["dgl-sage"] = (lambda: TwoLayerNet(lambda i, o: dglnn.SAGEConv(i, o, "mean"), dims),
                           g)
    return {name: out[name] for name in names}


def time_interleaved(indptr: np.ndarray, indices: np.ndarray, names: Sequence[str], epochs: int,
                     seed: int, device: str = "cpu") -> Dict[str, dict]:
    """Return ``name -> {"median_s", "epochs_s"}`` for every model, epochs interleaved
    round-robin after one untimed warm-up epoch each."""
    torch.manual_seed(seed)
    n = len(indptr) - 1
    x = torch.randn(n, FEATURES, device=device)
    y = torch.randint(0, CLASSES, (n,), device=device)
    runs = {name: (make().to(device), graph)
            for name, (make, graph) in model_factories(indptr, indices, names, device).items()}
    opts = {name: torch.optim.Adam(model.parameters(), lr=0.01)
            for name, (model, _) in runs.items()}
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for rnd in range(epochs + 1):
        for name, (model, graph) in runs.items():
            start = time.perf_counter()
            opts[name].zero_grad()
            F.cross_entropy(model(graph, x), y).backward()
            opts[name].step()
            if device == "cuda":
                torch.cuda.synchronize()
            if rnd:
                times[name].append(time.perf_counter() - start)
        if rnd:
            print(f"[compute] round {rnd}: " +
                  ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    return {name: {"median_s": statistics.median(ts), "epochs_s": ts}
            for name, ts in times.items()}


def run(opts: BenchOptions) -> dict:
    """Time gnnsys and PyG here and, in a child process, gnnsys and DGL in the DGL env."""
    nodes = opts.pick(opts.nodes, 200_000, 10_000)
    epochs = opts.pick(opts.epochs, 5, 3)
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", message=".*[Ss]parse invariant checks.*")
    indptr, indices = power_law_graph(nodes, DEGREE * nodes, opts.seed)
    print(f"[compute] graph: {nodes} nodes, {len(indices)} edges", flush=True)
    result = {"config": {"nodes": nodes, "edges": int(len(indices)), "features": FEATURES,
                         "hidden": HIDDEN, "classes": CLASSES, "threads": THREADS,
                         "epochs": epochs, "device": opts.device},
              "load_avg": list(os.getloadavg()),
              "models": time_interleaved(indptr, indices, MAIN_MODELS, epochs, opts.seed,
                                         opts.device)}
    result["dgl_env"] = dgl_peer(indptr, indices, epochs, opts)
    return result


def dgl_peer(indptr: np.ndarray, indices: np.ndarray, epochs: int,
             opts: BenchOptions) -> dict:
    """Time gnnsys and DGL models in a child process of the DGL env; return its models, or
    ``{"skipped": reason}`` when the env is missing or the child failed."""
    python = dgl_python()
    if python is None:
        print("[compute] DGL peer skipped: no .venv-dgl (bash launch/setup_dgl_env.sh makes it)",
              file=sys.stderr)
        return {"skipped": "no .venv-dgl"}
    opts.work.mkdir(parents=True, exist_ok=True)
    graph, out = opts.work / "compute-graph.npz", opts.work / "compute-dgl.json"
    np.savez(graph, indptr=indptr, indices=indices)
    cmd = [str(python), "-m", "gnnsys.bench.compute", str(graph), str(out), "--epochs",
           str(epochs), "--seed", str(opts.seed), "--device", opts.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    graph.unlink()
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"[compute] DGL peer failed: {reason}", file=sys.stderr)
        return {"skipped": f"DGL child failed: {reason}"}
    return json.loads(out.read_text())


def fastest_peer(result: dict, kind: str) -> Optional[Tuple[str, float]]:
    """Return ``(name, median s)`` of the fastest non-gnnsys model of ``kind`` (gcn|sage)."""
    peers = [(name, m["median_s"]) for name, m in all_models(result).items()
             if not name.startswith("gnnsys") and name.endswith(kind)]
    return min(peers, key=lambda p: p[1]) if peers else None


def all_models(result: dict) -> Dict[str, dict]:
    """Return every timed model of ``result``: the main run's, then the DGL env's
    (its own gnnsys runs named ``gnnsys-*@dgl-env``)."""
    models = dict(result["models"])
    for name, m in result.get("dgl_env", {}).get("models", {}).items():
        models[f"{name}@dgl-env" if name.startswith("gnnsys") else name] = m
    return models


def speed_ratio(result: dict, kind: str) -> Optional[float]:
    """Return gnnsys's epoch time over the fastest peer's for ``kind``, each compared inside
    its own process (gnnsys vs PyG here, gnnsys vs DGL in the DGL env); None without peers."""
    ratios = []
    models = result["models"]
    if f"pyg-csr-{kind}" in models:
        ratios.append(models[f"gnnsys-{kind}"]["median_s"] / models[f"pyg-csr-{kind}"]["median_s"])
    dgl = result.get("dgl_env", {}).get("models", {})
    if f"dgl-{kind}" in dgl:
        ratios.append(dgl[f"gnnsys-{kind}"]["median_s"] / dgl[f"dgl-{kind}"]["median_s"])
    return max(ratios) if ratios else None


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw the median epoch time of every model; return the PNG paths."""
    models = all_models(result)
    fig, axes = plots.subplots(1, 1, size=(7.5, 3.8))
    plots.bars(axes[0][0], list(models), [m["median_s"] for m in models.values()], "s / epoch",
               f"compute per epoch, 1 process, {result['config']['nodes']} nodes / "
               f"{result['config']['edges']} edges, hidden {HIDDEN}",
               notes=[f"{m['median_s']:.2f}" for m in models.values()])
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table."""
    lines = ["| model | median s/epoch | min | max |", "|---|---|---|---|"]
    for name, m in all_models(result).items():
        lines.append(f"| {name} | {m['median_s']:.3f} | {min(m['epochs_s']):.3f} | "
                     f"{max(m['epochs_s']):.3f} |")
    if "skipped" in result.get("dgl_env", {}):
        lines.append(f"\nDGL: {result['dgl_env']['skipped']}")
    return "\n".join(lines)


def _child_main(argv: Optional[List[str]] = None) -> int:
    """The DGL-env child: time gnnsys and DGL on GRAPH.npz, write ``{"models", ...}`` to OUT."""
    ap = argparse.ArgumentParser(description="compute suite, DGL child")
    ap.add_argument("graph")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    import dgl

    torch.set_num_threads(THREADS)
    data = np.load(args.graph)
    models = time_interleaved(data["indptr"], data["indices"], DGL_MODELS, args.epochs,
                              args.seed, args.device)
    Path(args.out).write_text(json.dumps({"models": models, "dgl": dgl.__version__,
                                          "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
