"""Suite ``memory``: peak resident memory per rank of `gnnsys train`, P ranks against one.

Partitions ``synthetic:<nodes>`` (128 features) with METIS into 1 and 4 parts (kept in the
scratch folder and reused), then trains each once (P = 1: plain ``gnnsys train``; P = 4:
``mpirun -n 4 --oversubscribe --bind-to none`` on this host; GCN, 2 layers, hidden 256). Every
rank runs ``gnnsys.cli.main`` in-process through a tiny wrapper that prints the rank's own
``getrusage(RUSAGE_SELF).ru_maxrss`` when training has finished, so the figure is exactly that
rank's peak RSS; a poller also samples the summed RSS of the whole process tree. Issue 4 target:
max peak RSS per rank at P = 4 <= 0.35 x that at P = 1. The model's floor for that ratio is the
share of the graph's rows a rank holds, replication factor / P (owned + halo rows over N): every
per-layer tensor over source rows scales with it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from gnnsys.bench import plots
from gnnsys.bench.accuracy import partition
from gnnsys.bench.common import GIB, TreeRssPoller, local_mpirun, mpirun_env
from gnnsys.bench.options import BenchOptions
from gnnsys.errors import RuntimeFailure

NAME = "memory"
PARTS = (1, 4)
TARGET = 0.35
# Runs one rank of `gnnsys train` in-process and reports that process's peak RSS at exit.
RANK_WRAPPER = """
import os, resource, sys
from gnnsys.cli import main
code = main(sys.argv[1:])
rank = os.environ.get("OMPI_COMM_WORLD_RANK", "0")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"membench rank={rank} maxrss_kib={peak}", flush=True)
sys.exit(code)
"""
_PEAK_LINE = re.compile(r"membench rank=(\d+) maxrss_kib=(\d+)")


def train_peaks(folder: Path, parts: int, train_args: List[str], timeout: float) -> dict:
    """Train the partition at ``folder`` on ``parts`` ranks; return peak RSS figures.

    Returns ``{"rank_peak_bytes": [one per rank], "tree_peak_bytes": int, "wall_s": float,
    "final_line": str}``; raises :class:`RuntimeFailure` with the last error line on failure.
    """
    cmd = [sys.executable, "-c", RANK_WRAPPER, "train", str(folder), *train_args]
    if parts > 1:
        cmd = [*local_mpirun(parts), *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpirun_env())
    poller = TreeRssPoller(proc.pid, 0.2)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        tree_peak = poller.stop()
    peaks = {int(r): int(kib) * 1024 for r, kib in _PEAK_LINE.findall(out)}
    if proc.returncode != 0 or sorted(peaks) != list(range(parts)):
        raise RuntimeFailure(f"memory suite: P={parts} failed ({proc.returncode}): "
                             f"{(err.strip().splitlines() or ['?'])[-1]}")
    final = next((line for line in out.splitlines() if line.startswith("test_acc=")), "")
    return {"rank_peak_bytes": [peaks[r] for r in range(parts)], "tree_peak_bytes": tree_peak,
            "wall_s": time.perf_counter() - start, "final_line": final}


def run(opts: BenchOptions) -> dict:
    """Train ``synthetic:<nodes>`` on 1 and 4 ranks; return peak RSS per rank and the ratio."""
    nodes = opts.pick(opts.nodes, 1_000_000, 10_000)
    train_args = ["--model", "gcn", "--hidden", "256", "--layers", "2", "--epochs",
                  str(opts.pick(opts.epochs, 3, 2)), "--no-progress", "--seed", str(opts.seed)]
    results: Dict[str, dict] = {}
    for parts in PARTS:
        folder = partition(f"synthetic:{nodes}", parts,
                           opts.work / "memory" / f"synthetic-{nodes}-{parts}")
        res = train_peaks(folder, parts, train_args, opts.timeout)
        report = json.loads((folder / "manifest.json").read_text())["report"]
        res["replication_factor"] = report["replication_factor"]
        results[str(parts)] = res
        print(f"[memory] P={parts}: peak RSS per rank (GiB) "
              f"{[round(b / GIB, 3) for b in res['rank_peak_bytes']]}", flush=True)
    base = max(results[str(PARTS[0])]["rank_peak_bytes"])
    for parts, res in results.items():
        res["ratio"] = max(res["rank_peak_bytes"]) / base
        res["rows_share"] = res["replication_factor"] / int(parts)
    return {"config": {"dataset": f"synthetic:{nodes}", "parts": list(PARTS),
                       "train_args": train_args}, "target": TARGET, "results": results}


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw the max and mean peak RSS per rank for each rank count; return the PNG paths."""
    fig, axes = plots.subplots(1, 1, size=(5.5, 3.6))
    res = result["results"]
    labels = [f"P = {p}" for p in res]
    plots.bars(axes[0][0], labels, [max(r["rank_peak_bytes"]) / GIB for r in res.values()],
               "max peak RSS per rank, GiB", f"{result['config']['dataset']}, GCN hidden 256",
               notes=[f"{r['ratio']:.2f}x (rows {r['rows_share']:.2f})" for r in res.values()])
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table."""
    lines = ["| ranks P | max peak RSS / rank GiB | mean / rank GiB | tree peak GiB | ratio to "
             "P = 1 | rows held / N (replication / P) |", "|" + "---|" * 6]
    for parts, r in result["results"].items():
        peaks = r["rank_peak_bytes"]
        lines.append(f"| {parts} | {max(peaks) / GIB:.2f} | {sum(peaks) / len(peaks) / GIB:.2f} |"
                     f" {r['tree_peak_bytes'] / GIB:.2f} | {r['ratio']:.3f} | "
                     f"{r['rows_share']:.2f} |")
    return "\n".join(lines)
