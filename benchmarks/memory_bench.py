"""Peak resident memory per rank of `gnnsys train`: P ranks against one, on a large graph.

Partitions ``--dataset`` (default ``synthetic:1000000``: 1M nodes, ~19M edges, 128 features)
with METIS into every ``--parts`` count under ``--work`` (kept there and reused by later runs),
then trains it once per part count (P = 1: plain ``gnnsys train``; P > 1: ``mpirun -n P
--oversubscribe --bind-to none``). Every rank runs ``gnnsys.cli.main`` in-process through a
tiny wrapper that prints the rank's own ``getrusage(RUSAGE_SELF).ru_maxrss`` when training has
finished, so the figure is exactly that rank's peak RSS (the parent's ``RUSAGE_CHILDREN`` would
mix mpirun, prted and the ranks). A psutil poller also samples the summed RSS of all ranks
every ``--interval`` seconds. Prints a markdown table (max / mean peak RSS per rank, summed
peak, ratio of the per-rank maximum to P = 1) and writes JSON with ``--out``.

    python benchmarks/memory_bench.py --out bench_memory.json

Issue 4 target: max peak RSS per rank at P = 4 <= 0.35 x that at P = 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from accuracy_bench import mpirun_env, partition  # sibling script (benchmarks/ is on sys.path)

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
GIB = 1 << 30


class TreeRssPoller:
    """Samples the summed RSS of a process and all its descendants in a background thread.

    Args:
        pid: the root process (mpirun, or the single rank).
        interval: seconds between samples.

    ``peak_bytes`` holds the largest sum seen (mpirun / prted included, a few tens of MB).
    """

    def __init__(self, pid: int, interval: float) -> None:
        self.root, self.interval, self.peak_bytes = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass  # a process ended mid-sample; the next sample counts the rest
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling; return the peak summed RSS in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


def train_peaks(folder: Path, parts: int, train_args: list, interval: float,
                timeout: float) -> dict:
    """Train the partition at ``folder`` on ``parts`` ranks; return peak RSS figures.

    Returns ``{"rank_peak_bytes": [one per rank], "tree_peak_bytes": int, "wall_s": float,
    "final_line": str}``; raises ``SystemExit`` with the tail of stderr if the run fails.
    """
    bindir = Path(sys.executable).parent
    cmd = [sys.executable, "-c", RANK_WRAPPER, "train", str(folder), *train_args]
    if parts > 1:
        cmd = [str(bindir / "mpirun"), "-n", str(parts), "--oversubscribe", "--bind-to", "none",
               "--mca", "btl", "self,sm", "--mca", "pml", "ob1",
               "--mca", "mpi_yield_when_idle", "1", *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpirun_env())
    poller = TreeRssPoller(proc.pid, interval)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        tree_peak = poller.stop()
    peaks = {int(r): int(kib) * 1024 for r, kib in _PEAK_LINE.findall(out)}
    if proc.returncode != 0 or sorted(peaks) != list(range(parts)):
        raise SystemExit(f"P={parts} failed ({proc.returncode}): {err[-2000:]}")
    final = next((line for line in out.splitlines() if line.startswith("test_acc=")), "")
    return {"rank_peak_bytes": [peaks[r] for r in range(parts)], "tree_peak_bytes": tree_peak,
            "wall_s": time.perf_counter() - start, "final_line": final}


def main() -> None:
    """Parse options, partition (once), train every part count, print the table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", default="synthetic:1000000", help="dataset spec")
    ap.add_argument("--parts", nargs="+", type=int, default=[1, 4],
                    help="part counts; the first is the baseline of the ratio")
    ap.add_argument("--work", default="/work/tmp-membench",
                    help="folder for the partitions (reused across runs)")
    ap.add_argument("--model", default="gcn", help="gnnsys train --model")
    ap.add_argument("--hidden", type=int, default=256, help="hidden width")
    ap.add_argument("--layers", type=int, default=2, help="number of layers")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs per run")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between RSS samples")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per training run")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    name = args.dataset.replace(":", "-").replace(",", "_")
    train_args = ["--model", args.model, "--hidden", str(args.hidden), "--layers",
                  str(args.layers), "--epochs", str(args.epochs), "--no-progress"]
    results = {}
    for parts in args.parts:
        folder = partition(args.dataset, parts, work / f"{name}-{parts}")
        res = train_peaks(folder, parts, train_args, args.interval, args.timeout)
        results[parts] = res
        print(f"P={parts}: peak RSS per rank (GiB) "
              f"{[round(b / GIB, 3) for b in res['rank_peak_bytes']]}, {res['final_line']}",
              flush=True)
    base = max(results[args.parts[0]]["rank_peak_bytes"])
    print(f"\n{args.dataset}, {args.model} hidden {args.hidden}, {args.layers} layers, "
          f"{args.epochs} epochs; load average {os.getloadavg()}")
    print("| ranks P | max peak RSS / rank (GiB) | mean / rank (GiB) | sum of ranks, sampled "
          f"(GiB) | ratio max / P={args.parts[0]} |")
    print("|---|---|---|---|---|")
    for parts, res in results.items():
        peaks = res["rank_peak_bytes"]
        res["ratio"] = max(peaks) / base
        print(f"| {parts} | {max(peaks) / GIB:.2f} | {sum(peaks) / len(peaks) / GIB:.2f} | "
              f"{res['tree_peak_bytes'] / GIB:.2f} | {res['ratio']:.3f} |")
    if args.out:
        report = {"config": vars(args), "load_average": os.getloadavg(), "results": results}
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
