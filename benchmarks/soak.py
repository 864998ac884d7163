"""Soak: a long run with staleness and pipelining must keep memory flat and staleness bounded.

Trains Cora for 500 epochs (``--staleness 1 --pipeline --sync-every 10``) on an emulated cluster
of 2 hosts x 2 ranks (:class:`gnnsys.emulate.EmulatedCluster`, a two-level partition), or on one
host with 4 ranks where network namespaces are not available, and reads the metrics file:
``rss_mb`` (resident memory, max over ranks) at epoch 50 and at the last epoch, its growth in
percent, and the largest ``staleness`` any epoch observed against the bound. Exits 1 when the
growth exceeds ``--max-growth`` percent or the bound is broken.

    .venv/bin/python benchmarks/soak.py [--epochs 500] [--hosts 2] [--ranks-per-host 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gnnsys.data.registry import load_dataset  # noqa: E402
from gnnsys.emulate import EmulatedCluster, emulation_available  # noqa: E402
from gnnsys.partition.api import partition_graph  # noqa: E402
from tests._mpi import run_mpi  # noqa: E402

WARMUP_EPOCH = 50


def train_args(partition: Path, metrics: Path, epochs: int, staleness: int) -> list:
    """The ``gnnsys train`` command line of the soak run (after the python executable)."""
    return ["-m", "gnnsys.cli", "train", str(partition), "--epochs", str(epochs),
            "--staleness", str(staleness), "--pipeline", "--sync-every", "10",
            "--eval-every", "50", "--threads", "1", "--no-progress", "--metrics", str(metrics)]


def summarize(metrics: Path, staleness: int) -> dict:
    """Return RSS at the warm-up epoch and the last epoch, growth (%) and the max staleness.

    ``growth_pct`` compares the largest RSS of any epoch after the warm-up with the RSS at the
    warm-up epoch (the strict reading: a leak that the kernel's page reclaim hides at the last
    epoch still counts)."""
    records = [json.loads(line) for line in metrics.read_text().splitlines()[1:]]
    warm = next(r for r in records if r["epoch"] == WARMUP_EPOCH - 1)
    after = [r["rss_mb"] for r in records if r["epoch"] >= WARMUP_EPOCH - 1]
    last = records[-1]
    return {"epochs": len(records), "rss_mb_epoch50": warm["rss_mb"],
            "rss_mb_last": last["rss_mb"], "rss_mb_min_after_warmup": min(after),
            "rss_mb_max_after_warmup": max(after),
            "growth_pct": 100.0 * (max(after) - warm["rss_mb"]) / warm["rss_mb"],
            "max_staleness": max(r.get("staleness", 0) for r in records),
            "staleness_bound": staleness, "final_test_acc": last["test_acc"],
            "mean_epoch_s": sum(r["epoch_s"] for r in records) / len(records)}


def main() -> int:
    """Run the soak, print the figures as one JSON object; exit 1 if a limit is broken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--ranks-per-host", type=int, default=2)
    parser.add_argument("--staleness", type=int, default=1)
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep-metrics", default=None, help="copy the metrics JSONL here")
    args = parser.parse_args()
    ranks = args.hosts * args.ranks_per_host
    ok, why = emulation_available()
    with tempfile.TemporaryDirectory(prefix="gnnsys-soak-") as tmp:
        part, metrics = Path(tmp) / "cora", Path(tmp) / "soak.jsonl"
        partition_graph(load_dataset("cora"), ranks, str(part),
                        servers=args.hosts if ok else 1, method="metis", progress=False)
        cmd = train_args(part, metrics, args.epochs, args.staleness)
        start = time.perf_counter()
        if ok:
            where = f"emulated cluster, {args.hosts} hosts x {args.ranks_per_host} ranks"
            with EmulatedCluster(hosts=args.hosts, rate="1gbit",
                                 ranks_per_host=args.ranks_per_host) as cluster:
                proc = cluster.run([sys.executable, *cmd], timeout=args.timeout)
        else:
            where = f"one host, {ranks} ranks (no emulated cluster: {why})"
            proc = run_mpi(ranks, cmd, timeout=args.timeout)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"soak: training failed ({proc.returncode}): {proc.stderr[-2000:]}",
                  file=sys.stderr)
            return 1
        if args.keep_metrics:
            shutil.copy(metrics, args.keep_metrics)
        figures = {"where": where, "wall_s": round(wall, 1), **summarize(metrics, args.staleness)}
    print(json.dumps(figures, indent=1))
    broken = figures["growth_pct"] > args.max_growth or \
        figures["max_staleness"] > args.staleness
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
