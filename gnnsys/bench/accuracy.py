"""Suite ``accuracy``: test accuracy per epoch and over seeds, per setting, under real mpirun.

Partitions each dataset (Cora, CiteSeer) into 4 METIS parts once, then trains GCN (2 layers,
hidden 16, dropout 0.5, Adam lr 0.01, weight decay 5e-4, features row-normalised as in Kipf &
Welling) with ``mpirun -n 4 gnnsys train --eval-every 1 --metrics`` for every setting and seed
on this host (no emulated links: accuracy does not depend on the link). Reports the mean, std
and range of the final test accuracy per (dataset, setting), the difference of each setting to
fp32 sync in percentage points, and the mean test accuracy per epoch (the accuracy curves).
Targets: issue 4 GCN Cora >= 0.805, CiteSeer >= 0.695 (Kipf & Welling 0.815 / 0.703); issue 5
1-bit + pipeline within 0.3 pp of fp32 sync. Preload settings need several hosts: skipped here.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from gnnsys.bench import plots
from gnnsys.bench.common import mpirun_env
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.settings import BASELINE, BY_KEY, Setting
from gnnsys.errors import RuntimeFailure

NAME = "accuracy"
PARTS = 4
PUBLISHED = {"cora": 0.815, "citeseer": 0.703}  # Kipf & Welling, GCN
TARGETS = {"cora": 0.805, "citeseer": 0.695, "pp_vs_fp32": 0.3}
TRAIN_FLAGS = ["--model", "gcn", "--normalize-features", "row", "--no-progress"]
DEFAULT_SETTINGS = ("fp32", "1bit", "1bit-pipeline")
QUICK_SETTINGS = ("fp32", "1bit-pipeline")


def partition(dataset: str, parts: int, out: Path) -> Path:
    """Partition ``dataset`` into ``parts`` METIS parts at ``out``, unless one is there; return it.

    An existing folder with a manifest is reused as is (``gnnsys train`` verifies the checksum
    of every shard it opens), so large partitions can be kept across benchmark runs.
    """
    out = Path(out)
    if not (out / "manifest.json").exists():
        proc = subprocess.run([str(Path(sys.executable).parent / "gnnsys"), "partition",
                               "--dataset", dataset, "--parts", str(parts), "--out", str(out),
                               "--overwrite"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeFailure(f"partitioning {dataset} failed: "
                                 f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return out


def run_seed(folder: str, parts: int, model: str, seed: int, extra: Sequence[str],
             timeout: float = 1800) -> float:
    """Train ``model`` on the partition ``folder`` with ``mpirun -n parts`` (this host, shared
    memory) and ``seed``; return the test accuracy of its final line."""
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "mpirun"), "-n", str(parts), "--oversubscribe", "--bind-to", "none",
           "--mca", "btl", "self,sm", "--mca", "pml", "ob1", "--mca", "mpi_yield_when_idle", "1",
           str(bindir / "gnnsys"), "train", folder, "--model", model, "--seed", str(seed),
           "--no-progress", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpirun_env(), timeout=timeout)
    match = re.search(r"test_acc=([0-9.]+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeFailure(f"training run failed ({proc.returncode}): "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(match.group(1))


def _curve(metrics: Path) -> List[float]:
    """Return the test accuracy of every epoch of a metrics file."""
    lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [r["test_acc"] for r in lines if "epoch" in r]


def run(opts: BenchOptions) -> dict:
    """Train every (dataset, setting, seed); return final accuracies and mean curves."""
    datasets = ["cora"] if opts.quick else ["cora", "citeseer"]
    seeds = list(range(opts.pick(opts.seeds, 5, 1)))
    epochs = opts.pick(opts.epochs, 200, 100)
    default = QUICK_SETTINGS if opts.quick else DEFAULT_SETTINGS
    keys = [k for k in (opts.settings or default) if BY_KEY[k].needs is None]
    settings: List[Setting] = [BY_KEY[k] for k in dict.fromkeys([BASELINE, *keys])]
    work = opts.work / "accuracy"
    result: Dict[str, object] = {
        "config": {"datasets": datasets, "seeds": seeds, "epochs": epochs, "parts": PARTS,
                   "train_flags": TRAIN_FLAGS, "settings": {s.key: s.label for s in settings}},
        "targets": TARGETS, "published": PUBLISHED, "results": {}}
    for dataset in datasets:
        folder = partition(dataset, PARTS, work / f"{dataset}-{PARTS}")
        per: Dict[str, dict] = {}
        for s in settings:
            finals, curves = [], []
            for seed in seeds:
                metrics = work / "runs" / f"{dataset}-{s.key}-{seed}.jsonl"
                metrics.parent.mkdir(parents=True, exist_ok=True)
                finals.append(run_seed(str(folder), PARTS, "gcn", seed, [
                    *TRAIN_FLAGS, *s.train_flags, "--epochs", str(epochs), "--eval-every", "1",
                    "--metrics", str(metrics)], opts.timeout))
                curves.append(_curve(metrics))
            acc = np.array(finals)
            per[s.key] = {"setting": s.label, "test_acc": finals, "mean": float(acc.mean()),
                          "std": float(acc.std()), "curve": np.mean(curves, axis=0).tolist()}
            print(f"[accuracy] {dataset} {s.label}: {acc.mean():.4f} ± {acc.std():.4f}",
                  flush=True)
        for row in per.values():
            row["pp_vs_fp32"] = 100 * (row["mean"] - per[BASELINE]["mean"])
        result["results"][dataset] = per
    return result


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw the mean test accuracy per epoch of every setting, one panel per dataset."""
    data = result["results"]
    fig, axes = plots.subplots(1, len(data))
    for ax, (dataset, per) in zip(axes[0], data.items()):
        plots.lines(ax, {r["setting"]: (list(range(len(r["curve"]))), r["curve"])
                         for r in per.values()}, "epoch", "test accuracy (mean of seeds)",
                    f"{dataset}, {PARTS} ranks, {len(result['config']['seeds'])} seed(s)")
        ax.set_ylim(bottom=max(0.0, min(min(r["curve"][len(r["curve"]) // 2:])
                                        for r in per.values()) - 0.1))
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table."""
    lines = ["| dataset | setting | test acc mean ± std | range | vs fp32 sync | target | "
             "published |", "|" + "---|" * 7]
    for dataset, per in result["results"].items():
        for r in per.values():
            lines.append(f"| {dataset} | {r['setting']} | {r['mean']:.4f} ± {r['std']:.4f} | "
                         f"{min(r['test_acc']):.4f}-{max(r['test_acc']):.4f} | "
                         f"{r['pp_vs_fp32']:+.2f} pp | {TARGETS.get(dataset, '-')} | "
                         f"{PUBLISHED.get(dataset, '-')} |")
    return "\n".join(lines)
