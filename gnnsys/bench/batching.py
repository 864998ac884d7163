"""Suite ``batching``: test accuracy of full-graph exchange, sampled minibatches and server
preload (issue 6), on 4 ranks = 2 servers x 2 workers emulated on this host.

Per dataset and seed, a 2-layer GCN trains in five settings, side by side:

* ``exact``: full-graph layer-wise exchange (``--mode exchange --batch-size full``), exact;
* ``minibatch``: ``--batch-size 1024 --fanouts 10,25`` (seed nodes per server per step), with
  the default control variate on the sampled input layer (exact feature aggregate plus the
  dropout noise on the sampled edges, :meth:`gnnsys.nn.gcn.GCNConv.forward`);
* ``minibatch-nocv``: the same with ``--no-control-variate`` (plain sampled estimate), to show
  what the control variate buys;
* ``preload-full``: ``--mode preload`` on a partition preloading the whole 2-hop closure
  (``--ext-fanout -1``): equals ``exact`` up to float32 rounding;
* ``preload-f15``: ``--mode preload`` on a partition with ``--ext-fanout 15`` (GraNNDis).

Partitions (``gnnsys partition --parts 4 --servers 2 --preload-hops 2 --ext-fanout f``) are kept
in ``<out>/work/batching`` and reused. All jobs of a dataset run in ONE ``mpirun -n 4`` of
``python -m gnnsys.bench.batching --worker JOBS RESULTS``, which builds one
:class:`gnnsys.train.loop.Trainer` per job (the trainer seeds weights and dropout from the
job's seed, so this equals separate ``gnnsys train`` runs without their start-up cost); rank 0
appends one JSON line per finished job, and a job already in that file with the identical
configuration is reused (so an interrupted long run continues where it stopped). An epoch of
minibatch training is one pass over the train nodes (several steps on a big graph); test
accuracy after the last epoch, evaluated every ``epochs // 10`` epochs for the curves; epoch
time is the median over epochs (the first job of an mpirun pays tens of seconds of warm-up).

Models (:func:`gnnsys.bench.accuracy.recipe_of`): CiteSeer Kipf & Welling's GCN (hidden 16,
row-normalised features, 200 epochs, 5 seeds); ``synthetic:N`` hidden 256 on raw features,
100 epochs and ONE seed unless ``--seeds`` is given (one 100-epoch job of ``synthetic:200000``
takes 10-25 minutes on 2 shared cores, so one seed of the five settings takes about an hour).
An mpirun may take ``--timeout`` x jobs seconds; a killed run keeps its finished jobs.
``--quick``: CiteSeer only, 1 seed, :data:`QUICK_EPOCHS` epochs. Issue 6 targets: minibatch within 1 pp of full-graph on CiteSeer
and ``synthetic:200000``; preload f = 15 within 1 pp of exact; preload with the full closure
equals exact.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from gnnsys.bench import plots
from gnnsys.bench.accuracy import check_datasets, recipe_of
from gnnsys.bench.common import gnnsys_cmd, local_mpirun, mpirun_env, run_measured
from gnnsys.bench.options import BenchOptions
from gnnsys.errors import RuntimeFailure
from gnnsys.threads import limit_numba_threads

NAME = "batching"
RANKS, RANKS_PER_SERVER, SERVERS, HOPS = 4, 2, 2, 2
BATCH_SIZE, FANOUTS = "1024", "10,25"
DATASETS = ("citeseer", "synthetic:200000")  # the issue names both
QUICK_DATASETS = ("citeseer",)
QUICK_EPOCHS = 50
SYNTHETIC_SEEDS = 1  # one 200k run of all settings is ~10 min here; --seeds gives more
TARGET_PP = 1.0  # issue 6: within 1 pp


def meets_target(pp_vs_exact: float, target_pp: float = TARGET_PP) -> bool:
    """Issue 6's accuracy test on ``pp_vs_exact`` (percentage points vs exact): at most
    ``target_pp`` below exact. "Within 1 pp" guards against accuracy lost to sampling or a
    sampled preload; a setting more accurate than exact (minibatch takes ~11x the optimizer
    steps of full-graph in the same epochs) meets it."""
    return pp_vs_exact >= -target_pp
EQUAL_ACC, EQUAL_LOSS = 0.001, 1e-4  # preload-full vs exact: float32 rounding only


@dataclass(frozen=True)
class BatchSetting:
    """One compared way to train: ``key``, ``label``, the partition's ``--ext-fanout`` and the
    :class:`gnnsys.config.TrainConfig` fields it sets."""

    key: str
    label: str
    ext_fanout: int
    train: Dict[str, str]


SETTINGS = (
    BatchSetting("exact", "full-graph exchange (exact)", -1, {"mode": "exchange"}),
    BatchSetting("minibatch", f"minibatch {BATCH_SIZE}, fanouts {FANOUTS}", -1,
                 {"mode": "exchange", "batch_size": BATCH_SIZE, "fanouts": FANOUTS,
                  "control_variate": True}),
    BatchSetting("minibatch-nocv", f"minibatch {BATCH_SIZE}, fanouts {FANOUTS}, no control "
                 "variate", -1, {"mode": "exchange", "batch_size": BATCH_SIZE,
                                 "fanouts": FANOUTS, "control_variate": False}),
    BatchSetting("preload-full", "preload, full closure (f=-1)", -1, {"mode": "preload"}),
    BatchSetting("preload-f15", "preload, f=15", 15, {"mode": "preload"}),
)
BY_KEY = {s.key: s for s in SETTINGS}


def slug(dataset: str) -> str:
    """Return ``dataset`` as a file-name part (``synthetic:200000`` -> ``synthetic-200000``)."""
    return dataset.replace(":", "-").replace(",", "_")


def preload_partition(dataset: str, parts: int, servers: int, ext_fanout: int,
                      work: Path, timeout: float) -> Path:
    """Write (unless a manifest is there) the METIS partition of ``dataset`` into ``parts`` parts
    on ``servers`` servers with :data:`HOPS`-hop preloads sampled at ``ext_fanout`` under
    ``work``; return its folder. Raises :class:`RuntimeFailure` with the partitioner's last
    error line when it fails."""
    out = Path(work) / f"{slug(dataset)}-p{parts}s{servers}-f{ext_fanout}"
    if not (out / "manifest.json").exists():
        run = run_measured([*gnnsys_cmd(), "partition", "--dataset", dataset, "--parts",
                            str(parts), "--servers", str(servers), "--preload-hops", str(HOPS),
                            "--ext-fanout", str(ext_fanout), "--out", str(out), "--overwrite"],
                           timeout)
        if run["returncode"] != 0:
            raise RuntimeFailure(f"partitioning {dataset} failed: "
                                 f"{(run['stderr'].strip().splitlines() or ['?'])[-1]}")
    return out


def mpirun_module(ranks: int, module: str, args: Sequence[str], timeout: float) -> dict:
    """Run ``python -m module *args`` on ``ranks`` ranks of this host (shared memory); return
    :func:`gnnsys.bench.common.run_measured`'s figures. Raises :class:`RuntimeFailure` with the
    last error line when it fails or runs past ``timeout`` seconds."""
    cmd = [*local_mpirun(ranks), sys.executable, "-m", module, *args]
    extra = {k: v for k, v in mpirun_env().items() if os.environ.get(k) != v}  # only additions
    run = run_measured(cmd, timeout, env=extra)
    if run["returncode"] != 0:
        raise RuntimeFailure(f"{module} on {ranks} ranks failed ({run['returncode']}): "
                             f"{(run['stderr'].strip().splitlines() or ['?'])[-1]}")
    return run


def plan(opts: BenchOptions) -> Dict[str, dict]:
    """Return ``dataset -> {"seeds", "epochs", "train"}`` of a run with ``opts``: the datasets
    of ``--datasets`` (else :data:`DATASETS`, quick :data:`QUICK_DATASETS`); ``train`` holds
    the :class:`~gnnsys.config.TrainConfig` fields every setting shares."""
    out = {}
    for dataset in dict.fromkeys(opts.datasets or (QUICK_DATASETS if opts.quick else DATASETS)):
        recipe = recipe_of(dataset)
        full_seeds = SYNTHETIC_SEEDS if dataset.startswith("synthetic:") else recipe.seeds
        epochs = opts.pick(opts.epochs, recipe.epochs, QUICK_EPOCHS)
        out[dataset] = {
            "seeds": list(range(opts.pick(opts.seeds, full_seeds, 1))), "epochs": epochs,
            "train": {"model": "gcn", "layers": recipe.layers, "hidden": recipe.hidden,
                      "dropout": recipe.dropout, "lr": recipe.lr,
                      "weight_decay": recipe.weight_decay, "optimizer": "adam",
                      "normalize_features": recipe.normalize, "epochs": epochs,
                      "eval_every": max(1, epochs // 10), "progress": False}}
    return out


def jobs_of(dataset: str, job: dict, folders: Dict[int, Path]) -> List[dict]:
    """Return one job (dataset, setting, seed, TrainConfig fields) per seed and setting of
    ``job``, seeds outermost (every finished seed has all settings); ``folders`` maps an
    ``--ext-fanout`` to its partition."""
    return [{"dataset": dataset, "setting": s.key, "seed": seed,
             "config": {**job["train"], **s.train, "seed": seed,
                        "partition": str(folders[s.ext_fanout])}}
            for seed in job["seeds"] for s in SETTINGS]


def _job_key(job: dict) -> str:
    return json.dumps([job["dataset"], job["setting"], job["seed"], job["config"]],
                      sort_keys=True)


def _read_lines(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []


def run_jobs(jobs: List[dict], work: Path, timeout: float) -> dict:
    """Run the ``jobs`` of one dataset not yet in ``work``'s results file, in one mpirun;
    return ``{"runs": every job's result row, "reused": how many came from an earlier run,
    "wall_s", "cpu_s"}`` (wall and CPU of this mpirun; 0 when all were reused)."""
    results = work / f"results-{slug(jobs[0]['dataset'])}.jsonl"
    have = {_job_key(r) for r in _read_lines(results)}
    todo = [j for j in jobs if _job_key(j) not in have]
    cost = {"wall_s": 0.0, "cpu_s": 0.0}
    if todo:
        jobs_file = work / f"jobs-{slug(jobs[0]['dataset'])}.json"
        jobs_file.write_text(json.dumps(todo))
        run = mpirun_module(RANKS, "gnnsys.bench.batching",
                            ["--worker", str(jobs_file), str(results)], timeout)
        print(run["stdout"], end="", file=sys.stderr, flush=True)
        cost = {"wall_s": round(run["wall_s"], 1), "cpu_s": round(run["cpu_s"], 1)}
    wanted = {_job_key(j): j for j in jobs}
    runs = {_job_key(r): r for r in _read_lines(results) if _job_key(r) in wanted}
    if len(runs) != len(wanted):
        raise RuntimeFailure(f"batching: {len(wanted) - len(runs)} job(s) of "
                             f"{jobs[0]['dataset']} left no result in {results}")
    return {"runs": [runs[k] for k in wanted], "reused": len(jobs) - len(todo), **cost}


def worker(jobs_file: str, results_file: str) -> None:
    """Under mpirun: train every job of ``jobs_file``; rank 0 appends one JSON line per job
    (test/val accuracy, final loss, curve, costs) to ``results_file``."""
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.config import TrainConfig
    from gnnsys.train.loop import Trainer

    ctx = init_distributed(ranks_per_server=RANKS_PER_SERVER)
    for job in json.loads(Path(jobs_file).read_text()):
        start = time.perf_counter()
        result = Trainer(TrainConfig(**job["config"]).validate(), ctx).run()
        if ctx.rank != 0:
            continue
        last = result.history[-1]
        inter = last["bytes"]["inter"]
        row = {**job, "test_acc": result.test_acc, "val_acc": result.val_acc,
               "final_loss": last["loss"], "seconds": time.perf_counter() - start,
               "epoch_s": float(np.median([r["epoch_s"] for r in result.history])),
               "steps_per_epoch": last.get("steps", 1),
               "sampled_edges_per_step": last.get("sampled_edges"),
               "preload_rows": last.get("preload_rows", 0),
               "preload_bytes": last.get("preload_bytes", 0),
               "inter_feature_bytes_per_epoch": inter["features"] + inter["feature_grads"],
               "curve": [(r["epoch"], r["test_acc"]) for r in result.history
                         if r.get("test_acc") is not None]}
        with open(results_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[batching] {job['dataset']} {job['setting']} seed {job['seed']}: test "
              f"{result.test_acc:.4f} ({row['seconds']:.0f} s)", flush=True)
    ctx.close()


def summarize(runs: List[dict]) -> Dict[str, Dict[str, dict]]:
    """Return ``{dataset: {setting: row}}`` from job result rows: accuracies per seed, mean,
    std, mean curve, costs, and, paired by seed with ``exact``, the mean difference in pp
    (``pp_vs_exact``) and the largest per-seed |test acc diff| and |final loss diff|."""
    grouped: Dict[str, Dict[str, List[dict]]] = {}
    for r in runs:
        grouped.setdefault(r["dataset"], {}).setdefault(r["setting"], []).append(r)
    summary: Dict[str, Dict[str, dict]] = {}
    for dataset, per in grouped.items():
        exact = {r["seed"]: r for r in per.get("exact", [])}
        rows = {}
        for key in (s.key for s in SETTINGS if s.key in per):
            done = sorted(per[key], key=lambda r: r["seed"])
            acc = np.array([r["test_acc"] for r in done])
            row = {"setting": BY_KEY[key].label, "seeds": [r["seed"] for r in done],
                   "test_acc": acc.tolist(), "mean": float(acc.mean()), "std": float(acc.std()),
                   "epochs": done[0]["config"]["epochs"],
                   "steps_per_epoch": done[0]["steps_per_epoch"],
                   "epoch_s": float(np.mean([r["epoch_s"] for r in done])),
                   "preload_rows": done[0]["preload_rows"],
                   "inter_feature_bytes_per_epoch": done[0]["inter_feature_bytes_per_epoch"],
                   "curve_epochs": [e for e, _ in done[0]["curve"]],
                   "curve": np.mean([[a for _, a in r["curve"]] for r in done], 0).tolist()}
            paired = [(r, exact[r["seed"]]) for r in done if r["seed"] in exact]
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


def run(opts: BenchOptions) -> dict:
    """Partition every dataset twice (``--ext-fanout -1`` and 15), train every (setting, seed)
    in one mpirun per dataset; return the per-setting summaries, the raw runs and the costs.
    Raises :class:`gnnsys.errors.UserError` for a dataset that does not load,
    :class:`RuntimeFailure` when partitioning or training fails."""
    jobs = plan(opts)
    check_datasets(list(jobs))
    work = opts.work / NAME
    work.mkdir(parents=True, exist_ok=True)
    runs, costs = [], {}
    for dataset, job in jobs.items():
        folders = {f: preload_partition(dataset, RANKS, SERVERS, f, work, opts.timeout)
                   for f in sorted({s.ext_fanout for s in SETTINGS})}
        done = run_jobs(jobs_of(dataset, job, folders), work,
                        opts.timeout * len(job["seeds"]) * len(SETTINGS))
        runs += done.pop("runs")
        costs[dataset] = done
    return {"config": {"ranks": RANKS, "servers": SERVERS, "ranks_per_server": RANKS_PER_SERVER,
                       "preload_hops": HOPS, "datasets": list(jobs), "per_dataset": jobs,
                       "settings": {s.key: s.label for s in SETTINGS},
                       "seeds_note": f"synthetic graphs run {SYNTHETIC_SEEDS} seed unless "
                       "--seeds is given (one 100-epoch job of synthetic:200000 takes 10-25 "
                       "min on 2 shared cores)"},
            "target_pp": TARGET_PP, "costs": costs, "results": summarize(runs), "runs": runs}


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw the mean test accuracy per evaluated epoch of every setting, one panel per dataset;
    return the PNG paths."""
    data = result["results"]
    fig, axes = plots.subplots(1, len(data))
    for ax, (dataset, per) in zip(axes[0], data.items()):
        seeds = max(len(r["seeds"]) for r in per.values())
        plots.lines(ax, {r["setting"]: (r["curve_epochs"], r["curve"]) for r in per.values()},
                    "epoch", "test accuracy (mean of seeds)",
                    f"{dataset}, {SERVERS} servers x {RANKS_PER_SERVER} workers, "
                    f"{seeds} seed(s)")
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table (one line per dataset and setting)."""
    lines = ["| dataset | setting | seeds | epochs x steps | test acc mean ± std | vs exact | "
             "at most 1 pp below | inter-server feature B/epoch | preload rows | median s/epoch |",
             "|" + "---|" * 10]
    for dataset, rows in result["results"].items():
        for key, r in rows.items():
            vs = r.get("pp_vs_exact")
            ok = "-" if key == "exact" or vs is None else \
                ("yes" if meets_target(vs, result["target_pp"]) else "NO")
            lines.append(f"| {dataset} | {r['setting']} | {len(r['seeds'])} | {r['epochs']} x "
                         f"{r['steps_per_epoch']} | {r['mean']:.4f} ± {r['std']:.4f} | "
                         f"{'-' if vs is None else f'{vs:+.2f} pp'} | {ok} | "
                         f"{r['inter_feature_bytes_per_epoch']:,} | {r['preload_rows']:,} | "
                         f"{r['epoch_s']:.3f} |")
    full = [f"{d}: max abs acc diff {r['max_abs_acc_diff_vs_exact']:.4f}, max abs loss diff "
            f"{r['max_abs_loss_diff_vs_exact']:.2e}"
            for d, rows in result["results"].items() for k, r in rows.items()
            if k == "preload-full" and "max_abs_acc_diff_vs_exact" in r]
    if full:
        lines += ["", "Preload with the full closure vs exact, per seed: " + "; ".join(full)]
    return "\n".join(lines)


def _worker_main(argv: Optional[List[str]] = None) -> int:
    """The mpirun entry point: ``python -m gnnsys.bench.batching --worker JOBS RESULTS``."""
    limit_numba_threads()  # as `gnnsys train` does: numba's pool is sized at its import
    ap = argparse.ArgumentParser(description="batching suite, mpirun worker")
    ap.add_argument("--worker", nargs=2, metavar=("JOBS", "RESULTS"), required=True)
    args = ap.parse_args(argv)
    worker(*args.worker)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
