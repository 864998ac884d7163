"""Test accuracy of full-graph exchange, sampled minibatches and server preload (issue 6).

Per dataset and seed, trains a 2-layer GCN on 4 ranks grouped into 2 servers x 2 workers
(``ranks_per_server=2``, servers emulated on this host) in four settings, side by side:

* ``exact``: full-graph layer-wise exchange (``--mode exchange --batch-size full``), exact;
* ``minibatch``: ``--batch-size 1024 --fanouts 10,25`` (seeds per server per step), exchange;
* ``preload-full``: ``--mode preload`` on a partition preloading the full 2-hop closure
  (``--ext-fanout -1``): must equal ``exact`` up to float noise;
* ``preload-f15``: ``--mode preload`` on a partition with ``--ext-fanout 15``.

Partitions (``gnnsys partition --parts 4 --servers 2 --preload-hops 2``) are kept in ``--work``.
All jobs of a dataset run in ONE ``mpirun -n 4`` of this file (``--worker``), which builds a
:class:`gnnsys.train.loop.Trainer` per job (no start-up cost per job; the trainer seeds the
weights from the job's seed, so this equals separate ``gnnsys train`` runs). Minibatch runs the
same number of epochs as full-graph by default (an epoch = one pass over the train nodes, i.e.
several optimizer steps): ``--minibatch-epochs`` changes it. Test accuracy after the last
epoch; the curve (every ``epochs // 10``) shows convergence. Prints a markdown table (mean ±
std, difference to exact in pp) and writes JSON with ``--out``.

    python benchmarks/preload_accuracy_bench.py --datasets citeseer --out citeseer.json

Issue 6 targets: minibatch within 1 pp of full-graph (CiteSeer, synthetic:200000); preload
f = 15 within 1 pp of exact.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gnnsys.bench.common import mpirun_env

RANKS, RANKS_PER_SERVER, SERVERS, HOPS = 4, 2, 2, 2
#: per dataset: the hyper-parameters of the README's accuracy runs (citeseer: Kipf & Welling;
#: synthetic: benchmarks/synthetic_accuracy_bench.py).
PRESETS = {
    "citeseer": dict(hidden=16, epochs=200, normalize_features="row"),
    "synthetic:200000": dict(hidden=256, epochs=100, normalize_features="none"),
}
COMMON = dict(model="gcn", layers=2, dropout=0.5, lr=0.01, weight_decay=5e-4, optimizer="adam",
              progress=False)
#: key -> (label, partition --ext-fanout, TrainConfig overrides)
SETTINGS = {
    "exact": ("full-graph exchange (exact)", -1, dict(mode="exchange")),
    "minibatch": ("minibatch 1024, fanouts 10,25", -1,
                  dict(mode="exchange", batch_size="1024", fanouts="10,25")),
    "preload-full": ("preload, full closure (f=-1)", -1, dict(mode="preload")),
    "preload-f15": ("preload, f=15", 15, dict(mode="preload")),
}
TARGET_PP = 1.0


def partition(dataset: str, ext_fanout: int, work: Path) -> Path:
    """Write (unless present) the 4-part, 2-server, 2-hop preload partition of ``dataset``
    with ``ext_fanout`` under ``work``; return its folder."""
    out = work / f"{dataset.replace(':', '-').replace(',', '_')}-f{ext_fanout}"
    if not (out / "manifest.json").exists():
        subprocess.run([str(Path(sys.executable).parent / "gnnsys"), "partition", "--dataset",
                        dataset, "--parts", str(RANKS), "--servers", str(SERVERS),
                        "--preload-hops", str(HOPS), "--ext-fanout", str(ext_fanout),
                        "--out", str(out), "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
    return out


def mpirun_script(script: str, args: list, timeout: float) -> None:
    """Run ``python script *args`` on :data:`RANKS` ranks of this host (shared memory);
    raise :class:`subprocess.CalledProcessError` if it fails."""
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / "mpirun"), "-n", str(RANKS), "--oversubscribe", "--bind-to",
                    "none", "--mca", "btl", "self,sm", "--mca", "pml", "ob1", "--mca",
                    "mpi_yield_when_idle", "1", sys.executable, script, *args],
                   check=True, timeout=timeout, env=mpirun_env())


def jobs_of(dataset: str, seeds: list, keys: list, epochs: int, mb_epochs: int,
            work: Path) -> list:
    """Return the jobs of ``dataset``: one dict (dataset, setting, seed, config) per pair."""
    preset = {**PRESETS[dataset]}
    preset.pop("epochs")
    jobs = []
    for seed in seeds:  # seeds outermost: every finished seed has all settings
        for key in keys:
            _, fanout, overrides = SETTINGS[key]
            n = mb_epochs if key == "minibatch" else epochs
            config = {**COMMON, **preset, **overrides, "epochs": n, "seed": seed,
                      "eval_every": max(1, n // 10),
                      "partition": str(partition(dataset, fanout, work))}
            jobs.append({"dataset": dataset, "setting": key, "seed": seed, "config": config})
    return jobs


def worker(jobs_file: str, results_file: str) -> None:
    """Under mpirun: train every job of ``jobs_file``; rank 0 appends one JSON line per job."""
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.config import TrainConfig
    from gnnsys.train.loop import Trainer

    ctx = init_distributed(ranks_per_server=RANKS_PER_SERVER)
    for job in json.loads(Path(jobs_file).read_text()):
        start = time.perf_counter()
        result = Trainer(TrainConfig(**job["config"]).validate(), ctx).run()
        if ctx.rank == 0:
            hist = result.history
            row = {**job, "test_acc": result.test_acc, "val_acc": result.val_acc,
                   "final_loss": hist[-1]["loss"], "seconds": time.perf_counter() - start,
                   "epoch_s": float(np.mean([r["epoch_s"] for r in hist])),
                   "steps_per_epoch": hist[-1].get("steps", 1),
                   "sampled_edges_per_step": hist[-1].get("sampled_edges"),
                   "preload_rows": hist[-1].get("preload_rows", 0),
                   "preload_bytes": hist[-1].get("preload_bytes", 0),
                   "inter_feature_bytes_per_epoch": hist[-1]["bytes"]["inter"]["features"]
                   + hist[-1]["bytes"]["inter"]["feature_grads"],
                   "curve": [(r["epoch"], r["test_acc"]) for r in hist
                             if r.get("test_acc") is not None]}
            with open(results_file, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{job['dataset']} {job['setting']} seed {job['seed']}: test "
                  f"{result.test_acc:.4f} ({row['seconds']:.0f} s)", flush=True)
    ctx.close()


def run_dataset(jobs: list, work: Path, timeout: float) -> list:
    """Run the ``jobs`` not yet in ``work``'s results file in one mpirun; return all results.

    A result is reused when its job (dataset, setting, seed, config) is identical, so an
    interrupted run continues where it stopped.
    """
    name = jobs[0]["dataset"].replace(":", "-")
    results_file = work / f"results-{name}.jsonl"
    done = _read(results_file)
    key = lambda j: json.dumps([j["dataset"], j["setting"], j["seed"], j["config"]])  # noqa: E731
    have = {key(r) for r in done}
    todo = [j for j in jobs if key(j) not in have]
    if todo:
        jobs_file = work / f"jobs-{name}.json"
        jobs_file.write_text(json.dumps(todo))
        mpirun_script(__file__, ["--worker", str(jobs_file), str(results_file)], timeout)
    wanted = {key(j) for j in jobs}
    return [r for r in _read(results_file) if key(r) in wanted]


def _read(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def summarize(results: list) -> dict:
    """Return ``{dataset: {setting: stats}}``: accuracies, mean, std, pp vs exact, costs, and
    for preload-full the largest per-seed |test acc - exact| and |final loss - exact|."""
    out: dict = {}
    for r in results:
        out.setdefault(r["dataset"], {}).setdefault(r["setting"], []).append(r)
    summary = {}
    for dataset, per in out.items():
        exact = {r["seed"]: r for r in per.get("exact", [])}
        rows = {}
        for key in (k for k in SETTINGS if k in per):
            runs = sorted(per[key], key=lambda r: r["seed"])
            acc = np.array([r["test_acc"] for r in runs])
            row = {"setting": SETTINGS[key][0], "seeds": [r["seed"] for r in runs],
                   "test_acc": acc.tolist(), "mean": float(acc.mean()), "std": float(acc.std()),
                   "epochs": runs[0]["config"]["epochs"],
                   "steps_per_epoch": runs[0]["steps_per_epoch"],
                   "epoch_s": float(np.mean([r["epoch_s"] for r in runs])),
                   "preload_rows": runs[0]["preload_rows"],
                   "inter_feature_bytes_per_epoch": runs[0]["inter_feature_bytes_per_epoch"],
                   "curve": np.mean([[a for _, a in r["curve"]] for r in runs], 0).tolist(),
                   "curve_epochs": [e for e, _ in runs[0]["curve"]]}
            paired = [(r, exact[r["seed"]]) for r in runs if r["seed"] in exact]
            if paired:
                row["pp_vs_exact"] = 100 * float(np.mean([r["test_acc"] - e["test_acc"]
                                                          for r, e in paired]))
                row["max_abs_acc_diff_vs_exact"] = max(abs(r["test_acc"] - e["test_acc"])
                                                       for r, e in paired)
                row["max_abs_loss_diff_vs_exact"] = max(abs(r["final_loss"] - e["final_loss"])
                                                        for r, e in paired)
            rows[key] = row
        summary[dataset] = rows
    return summary


def markdown(summary: dict) -> str:
    """Return the summary as a markdown table (one row per dataset and setting)."""
    lines = ["| dataset | setting | epochs x steps | test acc mean ± std | vs exact | "
             "within 1 pp | inter-server feature B/epoch | preload rows | s/epoch |",
             "|" + "---|" * 9]
    for dataset, rows in summary.items():
        for key, r in rows.items():
            vs = r.get("pp_vs_exact")
            ok = "-" if key == "exact" or vs is None else ("yes" if abs(vs) <= TARGET_PP
                                                          else "NO")
            lines.append(f"| {dataset} | {r['setting']} | {r['epochs']} x "
                         f"{r['steps_per_epoch']} | {r['mean']:.4f} ± {r['std']:.4f} | "
                         f"{'-' if vs is None else f'{vs:+.2f} pp'} | {ok} | "
                         f"{r['inter_feature_bytes_per_epoch']:,} | {r['preload_rows']:,} | "
                         f"{r['epoch_s']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    """Parse options, run every dataset's jobs, print the table and write JSON."""
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--epochs", type=int, default=None,
                    help="full-graph/preload epochs (default: the dataset's preset)")
    ap.add_argument("--minibatch-epochs", type=int, default=None,
                    help="minibatch epochs (default: the same as --epochs)")
    ap.add_argument("--work", default="/tmp/gnnsys-preload-accuracy",
                    help="folder for the partitions and per-job results (reused across runs)")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per dataset")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for dataset in args.datasets:
        epochs = args.epochs or PRESETS[dataset]["epochs"]
        jobs = jobs_of(dataset, args.seeds, args.settings, epochs,
                       args.minibatch_epochs or epochs, work)
        results += run_dataset(jobs, work, args.timeout)
    summary = summarize(results)
    load = os.getloadavg()
    print(f"\nGCN 2 layers, {RANKS} ranks = {SERVERS} servers x {RANKS_PER_SERVER} workers, "
          f"seeds {args.seeds}; load average {load}")
    print(markdown(summary))
    if args.out:
        Path(args.out).write_text(json.dumps({"config": vars(args), "presets": PRESETS,
                                              "common": COMMON, "load_average": load,
                                              "summary": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
