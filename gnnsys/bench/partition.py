"""Suite ``partition``: `gnnsys partition` (METIS, 8 parts) vs DGL's ``partition_graph``, by size.

For each size N it generates ``synthetic:N,deg=20,feat=128`` once into an uncompressed ``.npz``
under the scratch folder (timed apart, in its own process, reused by later runs), then runs
``gnnsys partition --dataset X.npz --parts 8 --method metis`` as a child process: wall time,
CPU time (user + system, less sensitive to other load than wall time), peak RSS of its process
tree (sampled every 50 ms), the load average when it started, the time split it prints (load,
METIS, relabel/halo, write) and the edge cut and balances of the written manifest. Where the DGL
environment exists, a child with its python runs DGL 2.1's
``dgl.distributed.partition_graph(g, ..., part_method="metis")`` on the same graph (features,
labels and masks attached, balanced on train nodes and edges), measured the same way (up to
:data:`DGL_MAX_NODES` nodes: beyond, DGL needs more memory than this machine has).

Issue 3 targets at 1M nodes / 20M directed edges / 8 parts on 2 cores, generation excluded:
<= 33 s wall and <= 3.5 GiB peak RSS (DGL's partition_graph: 33 s / 5.2 GiB), cost linear in N.
The DGL child is this module run as ``python -m gnnsys.bench.partition GRAPH.npz OUT PARTS``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from gnnsys.bench import plots
from gnnsys.bench.common import dgl_python, gnnsys_cmd, run_measured
from gnnsys.bench.options import BenchOptions

NAME = "partition"
PARTS = 8
DGL_MAX_NODES = 1_000_000
TARGETS = {1_000_000: {"wall_s": 33.0, "peak_rss_gib": 3.5}}
DGL_REFERENCE = {1_000_000: {"wall_s": 33.0, "peak_rss_gib": 5.2}}  # issue 3, measured here
_GENERATE = ("import sys; from gnnsys.data import load_dataset, save_npz; "
             "g = load_dataset(sys.argv[1]); save_npz(g, sys.argv[2]); "
             "print(g.num_nodes, g.num_edges)")
_COUNT = ("import sys, numpy as np; a = np.load(sys.argv[1]); "
          "print(a['indptr'].shape[0] - 1, a['indices'].shape[0])")
_SPLIT = {key: re.compile(rf"[ ,]{pattern} ([\d.]+) s[,;]") for key, pattern in (
    ("load_s", "load"), ("assign_s", r"assign \(\w+\)"), ("relabel_halo_s", "relabel/halo"),
    ("write_s", "write"), ("preload_s", "preload"), ("total_s", "total"))}


def generate(size: int, scratch: Path) -> Dict[str, object]:
    """Write ``synthetic:size,deg=20,feat=128`` to ``scratch`` unless it is there; return its
    path, nodes, edges and generation seconds (None when reused)."""
    path = scratch / f"synthetic-{size}.npz"
    scratch.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    reuse = path.exists()
    args = [_COUNT, str(path)] if reuse else [_GENERATE, f"synthetic:{size},deg=20,feat=128",
                                              str(path)]
    done = subprocess.run([sys.executable, "-c", *args], check=True, capture_output=True,
                          text=True)
    seconds = None if reuse else time.perf_counter() - start
    nodes, edges = map(int, done.stdout.split()[-2:])
    return {"path": str(path), "nodes": nodes, "edges": edges, "generate_s": seconds}


def quality(out: Path) -> Dict[str, float]:
    """Return the edge cut (% of edges) and the balances (max/mean) of the partition ``out``."""
    report = json.loads((out / "manifest.json").read_text())["report"]
    return {"cut_pct": 100 * report["edge_cut_fraction"],
            **{f"balance_{key}": value for key, value in report["balance"].items()}}


def _measured(cmd: List[str], timeout: float) -> Dict[str, object]:
    """Run ``cmd`` measured; return the figures, or ``{"error": ...}`` when it failed."""
    res = run_measured(cmd, timeout)
    figures = {k: res[k] for k in ("wall_s", "cpu_s", "peak_rss_gib", "load_avg")}
    if res["returncode"] != 0:
        tail = (res["stderr"].strip().splitlines() or ["no output"])[-1]
        return {**figures, "error": f"exit {res['returncode']} (-9: out of memory): {tail}"}
    return {**figures, "stdout": res["stdout"]}


def run_gnnsys(npz: str, out: Path, timeout: float) -> Dict[str, object]:
    """Partition ``npz`` into :data:`PARTS` METIS parts with ``gnnsys partition``; return wall,
    CPU, peak RSS, time split and quality."""
    res = _measured([*gnnsys_cmd(), "partition", "--dataset", npz, "--parts", str(PARTS),
                     "--method", "metis", "--out", str(out), "--overwrite"], timeout)
    if "error" in res:
        return res
    stdout = res.pop("stdout")
    split = {key: float(m.group(1)) for key, pattern in _SPLIT.items()
             if (m := pattern.search(stdout))}
    result = {**res, **split, **quality(out)}
    shutil.rmtree(out, ignore_errors=True)
    return result


def run_dgl(npz: str, out: Path, timeout: float) -> Dict[str, object]:
    """Partition ``npz`` with DGL's ``partition_graph`` in the DGL env; return wall, CPU, peak
    RSS and its own split (load, partition_graph), or ``{"skipped": why}``."""
    python = dgl_python()
    if python is None:
        return {"skipped": "no .venv-dgl"}
    res = _measured([str(python), "-m", "gnnsys.bench.partition", npz, str(out), str(PARTS)],
                    timeout)
    shutil.rmtree(out, ignore_errors=True)
    if "error" in res:
        return res
    return {**res, **json.loads(res.pop("stdout").strip().splitlines()[-1])}


def run(opts: BenchOptions) -> dict:
    """Partition every size with gnnsys and DGL; return ``{"config", "rows"}``."""
    sizes = opts.pick(opts.sizes, [250_000, 1_000_000, 4_000_000], [5_000, 20_000])
    scratch = opts.work / "partition"
    rows = []
    for size in sizes:
        data = generate(size, scratch)
        row = {"size": size, "parts": PARTS, **{k: v for k, v in data.items() if k != "path"},
               "gnnsys": run_gnnsys(data["path"], scratch / f"gnnsys-{size}", opts.timeout)}
        if size <= DGL_MAX_NODES:
            row["dgl"] = run_dgl(data["path"], scratch / f"dgl-{size}", opts.timeout)
        else:
            row["dgl"] = {"skipped": f"above {DGL_MAX_NODES} nodes (DGL runs out of memory)"}
        rows.append(row)
        print(f"[partition] N={size}: gnnsys {_fmt(row['gnnsys'])}; DGL {_fmt(row['dgl'])}",
              flush=True)
    return {"config": {"sizes": sizes, "parts": PARTS, "dataset": "synthetic:N,deg=20,feat=128"},
            "targets": {str(k): v for k, v in TARGETS.items()}, "rows": rows}


def _fmt(res: dict) -> str:
    """One-line summary of one partitioner run."""
    if "wall_s" not in res or "error" in res:
        return res.get("skipped") or res.get("error", "?")
    return f"{res['wall_s']:.1f} s, {res['peak_rss_gib']:.2f} GiB"


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw wall time and peak RSS vs nodes for gnnsys and DGL; return the PNG paths."""
    fig, axes = plots.subplots(1, 2)
    for ax, key, label in ((axes[0][0], "wall_s", "wall s"),
                           (axes[0][1], "peak_rss_gib", "peak RSS GiB")):
        series = {}
        for system in ("gnnsys", "dgl"):
            pts = [(r["nodes"], r[system][key]) for r in result["rows"]
                   if key in r.get(system, {}) and "error" not in r[system]]
            if pts:
                series[f"{system} ({PARTS} parts)"] = tuple(zip(*pts))
        if key == "wall_s":
            pts = [(r["nodes"], r["gnnsys"]["assign_s"]) for r in result["rows"]
                   if "assign_s" in r["gnnsys"]]
            if pts:
                series["gnnsys: METIS alone"] = tuple(zip(*pts))
        plots.lines(ax, series, "nodes (20 edges each)", label, f"partitioner {label} vs size",
                    logx=True)
        target = TARGETS[1_000_000][key]
        ax.scatter([1_000_000], [target], marker="_", s=300, color="red", label="target at 1M")
        ax.legend(fontsize=6)
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table."""
    lines = ["| nodes | edges | gen s | gnnsys wall s | CPU s | peak GiB | load/METIS/relabel/"
             "write s | cut % | DGL wall s | DGL peak GiB |", "|" + "---|" * 10]
    for r in result["rows"]:
        g, d = r["gnnsys"], r.get("dgl", {})
        gen = f"{r['generate_s']:.1f}" if r["generate_s"] is not None else "cached"
        split = "/".join(f"{g.get(k, float('nan')):.1f}" for k in
                         ("load_s", "assign_s", "relabel_halo_s", "write_s"))
        gcell = (f"{g['wall_s']:.1f} | {g['cpu_s']:.1f} | {g['peak_rss_gib']:.2f} | {split} | "
                 f"{g['cut_pct']:.1f}") if "error" not in g else f"{g['error']} | | | |"
        dcell = (f"{d['wall_s']:.1f} | {d['peak_rss_gib']:.2f}"
                 if "wall_s" in d and "error" not in d else f"{_fmt(d)} |")
        lines.append(f"| {r['nodes']:,} | {r['edges']:,} | {gen} | {gcell} | {dcell} |")
    return "\n".join(lines)


def _child_main(argv: Optional[List[str]] = None) -> int:
    """The DGL-env child: ``GRAPH.npz OUT PARTS``; prints one JSON line with its own split."""
    npz, out, parts = (argv or sys.argv[1:])[:3]
    start = time.perf_counter()
    import dgl
    import torch

    from gnnsys.data import load_dataset

    graph = load_dataset(npz)
    dst = torch.repeat_interleave(torch.arange(graph.num_nodes),
                                  torch.from_numpy(graph.indptr).diff())
    g = dgl.graph((torch.from_numpy(graph.indices), dst), num_nodes=graph.num_nodes)
    g.ndata["feat"] = torch.from_numpy(graph.feat[:])
    g.ndata["label"] = torch.from_numpy(graph.label)
    for mask in ("train_mask", "val_mask", "test_mask"):
        g.ndata[mask] = torch.from_numpy(getattr(graph, mask))
    loaded = time.perf_counter()
    dgl.distributed.partition_graph(g, "bench", int(parts), out, part_method="metis",
                                    balance_ntypes=g.ndata["train_mask"], balance_edges=True)
    print(json.dumps({"load_s": loaded - start,
                      "partition_graph_s": time.perf_counter() - loaded,
                      "dgl": dgl.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
