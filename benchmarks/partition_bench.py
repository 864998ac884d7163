"""Benchmark `gnnsys partition` (METIS, 8 parts) on synthetic graphs of growing size.

For each size N it generates ``synthetic:N,deg=20,feat=128`` once (timed apart, in its own
process) into an uncompressed ``.npz`` in a scratch folder, then runs
``gnnsys partition --dataset X.npz --parts 8 --method metis`` as a subprocess, measuring its
wall time and peak RSS (psutil polling of the child's process tree every 50 ms; the child's own
``ru_maxrss`` is reported too), its CPU time (user + system, less sensitive than wall time to
other load on a shared machine), the machine's 1-minute load average when it started (wall
times taken at a load above the core count are inflated) and parsing its time split, and reads
the edge cut and balances from the written manifest. Costs are also given per directed edge
(ns/edge), which stays flat when the cost grows linearly. Beside them, ``gather ns/edge`` is
this machine's cost of one random read ``x[indices[e]]`` over an N-sized int64 array (the
access pattern of METIS's and the relabelling's inner loops), measured on the same graph: it
grows once the array no longer fits the CPU cache (8 MiB L3 here), and with it the cost per
edge of every step that chases edges. Prints a markdown table and writes JSON.

Targets at 1M nodes / 20M directed edges / 8 parts on 2 cores, generation excluded:
<= 33 s wall and <= 3.5 GiB peak RSS (DGL's partition_graph: 33 s / 5.2 GiB).

Usage: python benchmarks/partition_bench.py [--sizes 250000 1000000 4000000] [--parts 8]
       [--community-size S] [--scratch DIR] [--json FILE] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional

import psutil

TARGETS = {1_000_000: {"wall_s": 33.0, "peak_rss_gib": 3.5}}
_GENERATE = (
    "import sys; from gnnsys.data import load_dataset, save_npz; "
    "g = load_dataset(sys.argv[1]); save_npz(g, sys.argv[2]); print(g.num_nodes, g.num_edges)")
_GATHER = """
import sys, time, numpy as np
idx = np.load(sys.argv[1])["indices"]
x = np.arange(idx.max() + 1, dtype=np.int64)
out = np.empty(1 << 22, dtype=np.int64)
best = float("inf")
for _ in range(3):
    start = time.process_time()
    for i in range(0, idx.shape[0], out.shape[0]):
        chunk = idx[i:i + out.shape[0]]
        np.take(x, chunk, out=out[:chunk.shape[0]])
    best = min(best, time.process_time() - start)
print(best / idx.shape[0] * 1e9)
"""
_SPLIT = re.compile(r"time: load ([\d.]+) s, assign \(\w+\) ([\d.]+) s, relabel/halo ([\d.]+) s, "
                    r"write ([\d.]+) s, total ([\d.]+) s; peak RSS ([\d.]+) GiB")


def generate(size: int, scratch: str, community_size: Optional[int] = None) -> dict:
    """Write ``synthetic:size,deg=20,feat=128`` (with ``communities=size // community_size``
    when given) to ``scratch`` once; return path, N, E, seconds."""
    suffix = f",communities={max(10, size // community_size)}" if community_size else ""
    path = os.path.join(scratch, f"synthetic-{size}{suffix.replace(',communities=', '-c')}.npz")
    spec = f"synthetic:{size},deg=20,feat=128{suffix}"
    start = time.perf_counter()
    if os.path.exists(path):
        done = subprocess.run([sys.executable, "-c", "import sys, numpy as np; "
                               "a = np.load(sys.argv[1]); print(a['indptr'].shape[0] - 1, "
                               "a['indices'].shape[0])", path],
                              check=True, capture_output=True, text=True)
        seconds = None
    else:
        done = subprocess.run([sys.executable, "-c", _GENERATE, spec, path], check=True,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
    nodes, edges = map(int, done.stdout.split()[-2:])
    return {"path": path, "nodes": nodes, "edges": edges, "generate_s": seconds}


def gather_ns_per_edge(npz: str) -> float:
    """Return the CPU ns of one random int64 read per edge of ``npz`` (best of 3, own process)."""
    done = subprocess.run([sys.executable, "-c", _GATHER, npz], check=True, capture_output=True,
                          text=True)
    return float(done.stdout.split()[-1])


def quality(out: str) -> dict:
    """Return the edge cut (% of edges) and the balances (max/mean) of the partition ``out``."""
    with open(os.path.join(out, "manifest.json")) as f:
        report = json.load(f)["report"]
    return {"cut_pct": 100 * report["edge_cut_fraction"],
            **{f"balance_{key}": value for key, value in report["balance"].items()}}


def run_partition(npz: str, parts: int, out: str) -> dict:
    """Run ``gnnsys partition`` on ``npz`` as a subprocess; return wall, CPU, peak RSS, time
    split and quality."""
    cmd = [sys.executable, "-m", "gnnsys.cli", "partition", "--dataset", npz, "--parts",
           str(parts), "--method", "metis", "--out", out, "--overwrite"]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"gnnsys partition failed ({proc.returncode}; -9: killed, e.g. out "
                           f"of memory):\n{stderr[-2000:]}")
    match = _SPLIT.search(stdout)
    split = dict(zip(("load_s", "assign_s", "relabel_halo_s", "write_s", "total_s",
                      "self_peak_rss_gib"), map(float, match.groups()))) if match else {}
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": peak / 2**30, "load_avg": load,
            **split, **quality(out)}


def main() -> int:
    """Run the benchmark; print a markdown table and write JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000])
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--community-size", type=int, default=None,
                        help="nodes per community (communities=N//this): a graph family whose "
                             "structure does not change with N (default: the generator's "
                             "default, 100 communities from 100k nodes on, so they grow with N)")
    parser.add_argument("--scratch", default=None,
                        help="folder for the .npz files and partitions (default: a temp dir)")
    parser.add_argument("--json", default="bench/partition_bench.json", help="result file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = args.scratch or tempfile.mkdtemp(prefix="gnnsys-partition-bench-")
    os.makedirs(scratch, exist_ok=True)
    rows = []
    try:
        for size in args.sizes:
            data = generate(size, scratch, args.community_size)
            try:
                result = run_partition(data["path"], args.parts,
                                       os.path.join(scratch, f"out-{size}"))
            except RuntimeError as exc:  # keep the sizes done so far
                print(f"N={size}: {exc}", file=sys.stderr, flush=True)
                continue
            result["gather_ns"] = gather_ns_per_edge(data["path"])
            shutil.rmtree(os.path.join(scratch, f"out-{size}"), ignore_errors=True)
            rows.append({"size": size, "parts": args.parts, "cpus": os.cpu_count(),
                         **{k: v for k, v in data.items() if k != "path"}, **result,
                         "target": TARGETS.get(size)})
            print(f"done N={size}: {result['wall_s']:.1f} s, {result['peak_rss_gib']:.2f} GiB",
                  file=sys.stderr, flush=True)
    finally:
        if not args.keep and args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"| nodes | edges | gen s | wall s | CPU s | peak RSS GiB | load s | assign (METIS) s | "
          f"relabel/halo s | write s | CPU ns/edge | METIS wall ns/edge | RSS B/edge | "
          f"gather ns/edge | cut % | balance nodes/edges/train | machine load | target |\n"
          f"|{'---|' * 18}")
    for r in rows:
        per_edge = 1e9 / r["edges"]
        target = (f"<= {r['target']['wall_s']:.0f} s, <= {r['target']['peak_rss_gib']} GiB"
                  if r["target"] else "")
        gen = f"{r['generate_s']:.1f}" if r["generate_s"] is not None else "cached"
        print(f"| {r['nodes']:,} | {r['edges']:,} | {gen} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r.get('load_s', float('nan')):.1f} | "
              f"{r.get('assign_s', float('nan')):.1f} | {r.get('relabel_halo_s', float('nan')):.1f}"
              f" | {r.get('write_s', float('nan')):.1f} | {r['cpu_s'] * per_edge:.0f} | "
              f"{r.get('assign_s', float('nan')) * per_edge:.0f} | "
              f"{r['peak_rss_gib'] * 2**30 / r['edges']:.0f} | {r['gather_ns']:.1f} | "
              f"{r['cut_pct']:.1f} | {r['balance_owned']:.3f}/{r['balance_in_edges']:.3f}/"
              f"{r['balance_train']:.3f} | {r['load_avg']:.1f} | {target} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
