"""Benchmark `gnnsys partition` (METIS, 8 parts) on synthetic graphs of growing size.

For each size N it generates ``synthetic:N,deg=20,feat=128`` once (timed apart, in its own
process) into an uncompressed ``.npz`` in a scratch folder, then runs
``gnnsys partition --dataset X.npz --parts 8 --method metis`` as a subprocess, measuring its
wall time and peak RSS (psutil polling of the child's process tree every 50 ms; the child's own
``ru_maxrss`` is reported too), its CPU time (user + system, less sensitive than wall time to
other load on a shared machine), the machine's 1-minute load average when it started (wall
times taken at a load above the core count are inflated) and parsing its time split. Prints a
markdown table and writes JSON.

Targets at 1M nodes / 20M directed edges / 8 parts on 2 cores, generation excluded:
<= 33 s wall and <= 3.5 GiB peak RSS (DGL's partition_graph: 33 s / 5.2 GiB).

Usage: python benchmarks/partition_bench.py [--sizes 250000 1000000 4000000] [--parts 8]
       [--scratch DIR] [--json FILE] [--keep]
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

import psutil

TARGETS = {1_000_000: {"wall_s": 33.0, "peak_rss_gib": 3.5}}
_GENERATE = (
    "import sys; from gnnsys.data import load_dataset, save_npz; "
    "g = load_dataset(sys.argv[1]); save_npz(g, sys.argv[2]); print(g.num_nodes, g.num_edges)")
_SPLIT = re.compile(r"time: load ([\d.]+) s, assign \(\w+\) ([\d.]+) s, relabel/halo ([\d.]+) s, "
                    r"write ([\d.]+) s, total ([\d.]+) s; peak RSS ([\d.]+) GiB")


def generate(size: int, scratch: str) -> dict:
    """Write ``synthetic:size,deg=20,feat=128`` to ``scratch`` once; return path, N, E, seconds."""
    path = os.path.join(scratch, f"synthetic-{size}.npz")
    spec = f"synthetic:{size},deg=20,feat=128"
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


def run_partition(npz: str, parts: int, out: str) -> dict:
    """Run ``gnnsys partition`` on ``npz`` as a subprocess; return wall, peak RSS and split."""
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
        raise SystemExit(f"gnnsys partition failed ({proc.returncode}):\n{stderr[-2000:]}")
    match = _SPLIT.search(stdout)
    split = dict(zip(("load_s", "assign_s", "relabel_halo_s", "write_s", "total_s",
                      "self_peak_rss_gib"), map(float, match.groups()))) if match else {}
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": peak / 2**30, "load_avg": load,
            **split}


def main() -> int:
    """Run the benchmark; print a markdown table and write JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000])
    parser.add_argument("--parts", type=int, default=8)
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
            data = generate(size, scratch)
            result = run_partition(data["path"], args.parts, os.path.join(scratch, f"out-{size}"))
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
          f"relabel/halo s | write s | machine load | target |\n"
          f"|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        target = (f"<= {r['target']['wall_s']:.0f} s, <= {r['target']['peak_rss_gib']} GiB"
                  if r["target"] else "")
        gen = f"{r['generate_s']:.1f}" if r["generate_s"] is not None else "cached"
        print(f"| {r['nodes']:,} | {r['edges']:,} | {gen} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r.get('load_s', float('nan')):.1f} | "
              f"{r.get('assign_s', float('nan')):.1f} | {r.get('relabel_halo_s', float('nan')):.1f}"
              f" | {r.get('write_s', float('nan')):.1f} | {r['load_avg']:.1f} | {target} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
