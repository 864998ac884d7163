"""Suite ``accuracy``: test accuracy per epoch and over seeds, per setting, under real mpirun,
next to a single-process PyG model of the same architecture.

For every dataset (default: Cora, CiteSeer and ``synthetic:200000``; ``--quick``: Cora only, to
keep ``gnnsys bench all --quick`` under 15 minutes) the suite partitions the graph
into 4 METIS parts once, then, for every seed, trains GCN with ``mpirun -n 4 gnnsys train
--metrics`` per setting on this host (no emulated links: accuracy does not depend on the link)
and, on synthetic graphs, the PyG reference in this process on the whole graph:
``torch_geometric.nn.GCNConv(cached=True)`` on a ``torch.sparse_csr`` adjacency (rows =
destinations), whose ``gcn_norm`` (self-loops, weight ``1 / sqrt((d_i + 1)(d_j + 1))``) is
exactly gnnsys's :class:`gnnsys.nn.GCNConv`; the layer stack, loss, optimizer and
hyper-parameters are the same (:class:`Recipe`), only the random draws (weight init, dropout
masks) differ.

Recipes (``--epochs``, ``--seeds``, ``--settings`` override them for every dataset):

* Cora, CiteSeer and other named graphs: Kipf & Welling's GCN (2 layers, hidden 16, dropout 0.5,
  Adam lr 0.01, weight decay 5e-4, features row-normalised), 200 epochs (quick 100), evaluated
  every epoch, 5 seeds (quick 1), settings fp32 sync, 1-bit sync, 1-bit + pipeline.
* ``synthetic:N``: the same GCN at hidden 256 on raw features, 100 epochs (quick 20), evaluated
  every 10 epochs (quick 5), 2 seeds (quick 1; one 4-rank run of ``synthetic:200000`` takes
  5-10 minutes on 2 cores, so 5 seeds of every setting and PyG would take hours), settings fp32
  sync and 1-bit + pipeline (quick: fp32 sync), and the PyG reference.

Runs are kept in ``<out>/work/accuracy/runs`` and reused: a ``gnnsys train`` run whose
metrics file is complete and records exactly the options this run would use (every
:class:`~gnnsys.config.TrainConfig` field, so a new option makes older runs stale) and the
fingerprint of this code (:mod:`gnnsys.train.fingerprint`: a code change does too), and a PyG
seed whose recipe, epochs and torch/PyG versions match. An interrupted run continues where it
stopped; delete that folder to measure everything again.

Reports mean, std and range of the final test accuracy per (dataset, setting or PyG), each
one's difference to fp32 sync in percentage points, and the mean test accuracy per evaluated
epoch (the accuracy curves). Targets: issue 4 GCN Cora >= 0.805, CiteSeer >= 0.695 (Kipf &
Welling 0.815 / 0.703), ``synthetic:200000`` within 0.5 pp of PyG; issue 5 1-bit + pipeline
within 0.3 pp of fp32 sync. Preload settings need several hosts: skipped here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from gnnsys.bench import plots
from gnnsys.bench.common import local_mpirun, mpirun_env
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.settings import BASELINE, BY_KEY, Setting
from gnnsys.errors import RuntimeFailure

NAME = "accuracy"
PARTS = 4
PYG = "pyg"  # the key of the PyG reference next to the settings of a dataset's results
PYG_DATASET = "synthetic:200000"  # issue 4 compares with PyG on this graph
PUBLISHED = {"cora": 0.815, "citeseer": 0.703}  # Kipf & Welling, GCN
TARGETS = {"cora": 0.805, "citeseer": 0.695, "pp_vs_fp32": 0.3, "pp_vs_pyg": 0.5}
DATASETS = ("cora", "citeseer", PYG_DATASET)
QUICK_DATASETS = ("cora",)


@dataclass(frozen=True)
class Recipe:
    """The model and training of one family of datasets, shared by gnnsys and PyG.

    Attributes:
        hidden: hidden width of the 2-layer GCN (dropout 0.5 before each layer, ReLU between,
            Adam lr 0.01 with weight decay 5e-4 on every parameter).
        normalize: feature preprocessing (``gnnsys train --normalize-features``).
        epochs, eval_every, seeds: full-run defaults; ``quick_*`` those of ``--quick``.
        settings, quick_settings: keys of :data:`gnnsys.bench.settings.SETTINGS` compared.
        pyg: also train the single-process PyG reference.
    """

    hidden: int
    normalize: str
    epochs: int
    quick_epochs: int
    eval_every: int
    quick_eval_every: int
    seeds: int
    quick_seeds: int
    settings: Tuple[str, ...]
    quick_settings: Tuple[str, ...]
    pyg: bool
    layers: int = 2
    dropout: float = 0.5
    lr: float = 0.01
    weight_decay: float = 5e-4

    def train_flags(self) -> List[str]:
        """Return the ``gnnsys train`` flags of this recipe (without epochs and seed)."""
        return ["--model", "gcn", "--layers", str(self.layers), "--hidden", str(self.hidden),
                "--dropout", str(self.dropout), "--lr", str(self.lr), "--weight-decay",
                str(self.weight_decay), "--optimizer", "adam", "--normalize-features",
                self.normalize]


CITATION = Recipe(hidden=16, normalize="row", epochs=200, quick_epochs=100, eval_every=1,
                  quick_eval_every=1, seeds=5, quick_seeds=1,
                  settings=("fp32", "1bit", "1bit-pipeline"),
                  quick_settings=("fp32", "1bit-pipeline"), pyg=False)
SYNTHETIC = Recipe(hidden=256, normalize="none", epochs=100, quick_epochs=20, eval_every=10,
                   quick_eval_every=5, seeds=2, quick_seeds=1,
                   settings=("fp32", "1bit-pipeline"), quick_settings=("fp32",), pyg=True)


def recipe_of(dataset: str) -> Recipe:
    """Return the :class:`Recipe` of ``dataset``: :data:`SYNTHETIC` for ``synthetic:...``
    specs, :data:`CITATION` for every other graph."""
    return SYNTHETIC if dataset.startswith("synthetic:") else CITATION


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
    cmd = [*local_mpirun(parts), str(bindir / "gnnsys"), "train", folder, "--model", model,
           "--seed", str(seed), "--no-progress", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpirun_env(), timeout=timeout)
    match = re.search(r"test_acc=([0-9.]+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeFailure(f"training run failed ({proc.returncode}): "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(match.group(1))


def finished_run(metrics: Path, train_args: Sequence[str]) -> Optional[Tuple[float, float]]:
    """Return ``(final test accuracy, summed epoch seconds)`` of an earlier ``gnnsys train``
    run whose metrics file ``metrics`` is complete (its last epoch evaluated) and records
    exactly the options ``train_args`` (the arguments after ``gnnsys train``) give now, every
    option included, and was trained by this code (its fingerprint); else None. A new option, a
    changed default or a change to the code makes old runs stale."""
    from gnnsys import config as train_config
    from gnnsys.train.fingerprint import code_fingerprint

    if not metrics.exists():
        return None
    try:
        lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        parser = argparse.ArgumentParser()
        train_config.add_arguments(parser)
        wanted = train_config.config_from_args(parser.parse_args(list(train_args))).to_dict()
    except (ValueError, SystemExit):
        return None
    epochs = [r for r in lines[1:] if "epoch" in r]
    if (not lines or lines[0].get("config") != wanted
            or lines[0].get("code") != code_fingerprint() or len(epochs) != wanted["epochs"]
            or epochs[-1].get("test_acc") is None):
        return None
    return float(epochs[-1]["test_acc"]), float(sum(r["epoch_s"] for r in epochs))


class PygGCN(nn.Module):
    """PyG GCN with gnnsys's layer stack: dropout -> ``GCNConv(cached=True)``, ReLU between.

    Args:
        dims: widths ``[in, hidden, ..., classes]`` (one layer per consecutive pair).
        dropout: dropout probability on the input of every layer.
    """

    def __init__(self, dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.convs = nn.ModuleList(GCNConv(i, o, cached=True) for i, o in zip(dims, dims[1:]))
        self.dropout = dropout

    def forward(self, x: Tensor, adj_t: Tensor) -> Tensor:
        """Return the logits ``[N, classes]`` of features ``x`` on the adjacency ``adj_t``."""
        for index, conv in enumerate(self.convs):
            x = conv(F.dropout(x, self.dropout, self.training), adj_t)
            if index < len(self.convs) - 1:
                x = torch.relu(x)
        return x


def pyg_reference(graph, recipe: Recipe, seed: int, epochs: int,
                  eval_every: int) -> Tuple[float, List[int], List[float]]:
    """Train :class:`PygGCN` with ``recipe`` on the whole ``graph`` (a :class:`gnnsys.graph.
    Graph`) in this process, full batch, mean cross-entropy over the train nodes.

    Evaluates (eval mode, no dropout) after the epochs ``gnnsys train --eval-every`` would
    (every ``eval_every``-th and the last). Returns ``(final test accuracy, evaluated epochs
    (0-based), test accuracy at each)``.
    """
    from gnnsys.data.transforms import normalize_features
    from gnnsys.nn.spmm import csr_matrix

    torch.manual_seed(seed)
    n = graph.num_nodes
    indptr, indices = torch.as_tensor(graph.indptr), torch.as_tensor(graph.indices)
    adj_t = csr_matrix(indptr, indices, torch.ones(indices.numel()), (n, n))
    x = normalize_features(torch.from_numpy(np.asarray(graph.feat)), recipe.normalize)
    y = torch.from_numpy(np.asarray(graph.label))
    train, test = (torch.from_numpy(np.asarray(m)) for m in (graph.train_mask, graph.test_mask))
    dims = [x.shape[1]] + [recipe.hidden] * (recipe.layers - 1) + [graph.num_classes]
    model = PygGCN(dims, recipe.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    at: List[int] = []
    curve: List[float] = []
    with warnings.catch_warnings():  # PyG's gcn_norm builds its CSR without invariant checks
        warnings.filterwarnings("ignore", message=".*[Ss]parse invariant.*")
        for epoch in tqdm(range(epochs), desc=f"PyG seed {seed}", unit="epoch", leave=False,
                          disable=not sys.stderr.isatty()):
            model.train()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, adj_t)[train], y[train]).backward()
            opt.step()
            if (epoch + 1) % eval_every == 0 or epoch == epochs - 1:
                model.eval()
                with torch.no_grad():
                    pred = model(x, adj_t).argmax(1)
                at.append(epoch)
                curve.append(float((pred[test] == y[test]).float().mean()))
    return curve[-1], at, curve


def _curve(metrics: Path) -> Tuple[List[int], List[float]]:
    """Return the evaluated epochs of a metrics file and the test accuracy at each."""
    lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    evaluated = [r for r in lines if "epoch" in r and r.get("test_acc") is not None]
    return [r["epoch"] for r in evaluated], [r["test_acc"] for r in evaluated]


def _summary(label: str, ranks: int, finals: List[float], at: List[int],
             curves: List[List[float]], seconds: List[float]) -> dict:
    """Return the result row of one system or setting over its seeds."""
    acc = np.array(finals)
    return {"setting": label, "ranks": ranks, "test_acc": finals, "mean": float(acc.mean()),
            "std": float(acc.std()), "curve_epochs": at,
            "curve": np.mean(curves, axis=0).tolist(), "seconds": seconds}


def check_datasets(datasets: Sequence[str]) -> None:
    """Raise :class:`gnnsys.errors.UserError` naming the first spec of ``datasets`` that does
    not load (synthetic specs are only parsed, not generated)."""
    from gnnsys.data import load_dataset
    from gnnsys.data.registry import parse_synthetic_spec

    for spec in datasets:
        if spec.startswith("synthetic:"):
            parse_synthetic_spec(spec)
        else:
            load_dataset(spec)


def plan(opts: BenchOptions) -> Dict[str, dict]:
    """Return ``dataset -> {"recipe", "seeds", "epochs", "eval_every", "settings"}`` of a run
    with ``opts``: the datasets of ``--datasets`` (else :data:`DATASETS`, quick
    :data:`QUICK_DATASETS`), each with its recipe's defaults unless the options set them."""
    out = {}
    for dataset in dict.fromkeys(opts.datasets or (QUICK_DATASETS if opts.quick else DATASETS)):
        r = recipe_of(dataset)
        default = r.quick_settings if opts.quick else r.settings
        keys = [k for k in (opts.settings or default) if BY_KEY[k].needs is None]
        out[dataset] = {
            "recipe": r, "seeds": list(range(opts.pick(opts.seeds, r.seeds, r.quick_seeds))),
            "epochs": opts.pick(opts.epochs, r.epochs, r.quick_epochs),
            "eval_every": r.quick_eval_every if opts.quick else r.eval_every,
            "settings": [BY_KEY[k] for k in dict.fromkeys([BASELINE, *keys])]}
    return out


def _dataset(dataset: str, job: dict, opts: BenchOptions) -> Dict[str, dict]:
    """Train every setting and the PyG reference on ``dataset`` for every seed of ``job``;
    return ``{setting key or "pyg": row}``."""
    from gnnsys.data import load_dataset

    recipe, epochs, every = job["recipe"], job["epochs"], job["eval_every"]
    work = opts.work / "accuracy"
    name = dataset.replace(":", "-").replace(",", "_")
    folder = partition(dataset, PARTS, work / f"{name}-{PARTS}")
    flags = [*recipe.train_flags(), "--epochs", str(epochs), "--eval-every", str(every)]
    per: Dict[str, dict] = {}
    for s in job["settings"]:
        finals, curves, seconds, at, reused = [], [], [], [], 0
        for seed in job["seeds"]:
            metrics = work / "runs" / f"{name}-{s.key}-{seed}.jsonl"
            metrics.parent.mkdir(parents=True, exist_ok=True)
            extra = [*flags, *s.train_flags, "--metrics", str(metrics)]
            earlier = finished_run(metrics, [
                str(folder), "--model", "gcn", "--seed", str(seed), "--no-progress", *extra])
            if earlier is None:
                start = time.perf_counter()
                finals.append(run_seed(str(folder), PARTS, "gcn", seed, extra, opts.timeout))
                seconds.append(round(time.perf_counter() - start, 1))
            else:
                finals.append(earlier[0])
                seconds.append(round(earlier[1], 1))
                reused += 1
            at, curve = _curve(metrics)
            curves.append(curve)
        per[s.key] = {**_summary(s.label, PARTS, finals, at, curves, seconds), "reused": reused}
        print(f"[accuracy] {dataset} {s.label}: {per[s.key]['mean']:.4f} ± "
              f"{per[s.key]['std']:.4f} ({sum(seconds):.0f} s, {reused} run(s) reused)",
              flush=True)
    if recipe.pyg:
        per[PYG] = _pyg_row(load_dataset(dataset), job, work / "runs" / f"{name}-pyg")
        print(f"[accuracy] {dataset} PyG: {per[PYG]['mean']:.4f} ± {per[PYG]['std']:.4f} "
              f"({sum(per[PYG]['seconds']):.0f} s)", flush=True)
    for row in per.values():
        row["pp_vs_fp32"] = 100 * (row["mean"] - per[BASELINE]["mean"])
    return per


def _pyg_row(graph, job: dict, stem: Path) -> dict:
    """Train the PyG reference on ``graph`` for every seed of ``job``; return its row. Each
    seed's result is kept in ``<stem>-<seed>.json`` with what produced it (recipe, epochs,
    evaluation period, torch and PyG versions) and reused while those match."""
    import torch_geometric

    finals, curves, seconds, at, reused = [], [], [], [], 0
    for seed in job["seeds"]:
        key = {"recipe": dataclasses.asdict(job["recipe"]), "epochs": job["epochs"],
               "eval_every": job["eval_every"], "seed": seed, "torch": torch.__version__,
               "torch_geometric": torch_geometric.__version__}
        path = Path(f"{stem}-{seed}.json")
        kept = json.loads(path.read_text()) if path.exists() else {}
        if kept.get("key") == json.loads(json.dumps(key)):
            reused += 1
        else:
            start = time.perf_counter()
            final, at_, curve = pyg_reference(graph, job["recipe"], seed, job["epochs"],
                                              job["eval_every"])
            kept = {"key": key, "final": final, "at": at_, "curve": curve,
                    "seconds": round(time.perf_counter() - start, 1)}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(kept))
        finals.append(kept["final"])
        at = kept["at"]
        curves.append(kept["curve"])
        seconds.append(kept["seconds"])
    return {**_summary("PyG GCNConv, 1 process", 1, finals, at, curves, seconds),
            "reused": reused}


def run(opts: BenchOptions) -> dict:
    """Train every (dataset, setting, seed) and the PyG reference; return final accuracies
    and mean curves. Raises :class:`gnnsys.errors.UserError` for a dataset that does not
    load, :class:`RuntimeFailure` when a partitioning or training run fails."""
    jobs = plan(opts)
    check_datasets(list(jobs))
    config = {dataset: {"seeds": job["seeds"], "epochs": job["epochs"],
                        "eval_every": job["eval_every"],
                        "train_flags": job["recipe"].train_flags(),
                        "pyg": job["recipe"].pyg,
                        "settings": {s.key: s.label for s in job["settings"]}}
              for dataset, job in jobs.items()}
    result: Dict[str, object] = {
        "config": {"datasets": list(jobs), "parts": PARTS, "per_dataset": config,
                   "torch_threads": torch.get_num_threads()},
        "targets": TARGETS, "published": PUBLISHED, "results": {}}
    for dataset, job in jobs.items():
        result["results"][dataset] = _dataset(dataset, job, opts)
    return result


def synthetic_with(results: dict, key: str, prefer: str = PYG_DATASET) -> Optional[str]:
    """Return the synthetic dataset of ``results`` (``dataset -> {key: row}``) that a target
    on ``key`` reads: ``prefer`` when it has a ``key`` row, else the largest other synthetic
    graph with one, else None."""
    from gnnsys.data.registry import parse_synthetic_spec

    found = [d for d, per in results.items() if d.startswith("synthetic:") and key in per]
    if prefer in found:
        return prefer
    return max(found, key=lambda d: parse_synthetic_spec(d)["num_nodes"], default=None)


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw the mean test accuracy per evaluated epoch of every setting and of PyG, one panel
    per dataset."""
    data = result["results"]
    fig, axes = plots.subplots(1, len(data))
    for ax, (dataset, per) in zip(axes[0], data.items()):
        series = {r["setting"]: (r.get("curve_epochs") or list(range(len(r["curve"]))),
                                 r["curve"]) for r in per.values()}
        seeds = len(per[BASELINE]["test_acc"])
        plots.lines(ax, series, "epoch", "test accuracy (mean of seeds)",
                    f"{dataset}, {PARTS} ranks (PyG 1), {seeds} seed(s)")
        ax.set_ylim(bottom=max(0.0, min(min(r["curve"][len(r["curve"]) // 2:])
                                        for r in per.values()) - 0.1))
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table (one line per dataset and setting or PyG)."""
    lines = ["| dataset | setting | ranks | seeds | test acc mean ± std | range | vs fp32 sync |"
             " target | published |", "|" + "---|" * 9]
    for dataset, per in result["results"].items():
        for key, r in per.items():
            target = f"within {TARGETS['pp_vs_pyg']} pp" if key == PYG and \
                dataset == PYG_DATASET else TARGETS.get(dataset, "-")
            lines.append(f"| {dataset} | {r['setting']} | {r.get('ranks', PARTS)} | "
                         f"{len(r['test_acc'])} | {r['mean']:.4f} ± {r['std']:.4f} | "
                         f"{min(r['test_acc']):.4f}-{max(r['test_acc']):.4f} | "
                         f"{r['pp_vs_fp32']:+.2f} pp | {target} | "
                         f"{PUBLISHED.get(dataset, '-')} |")
    return "\n".join(lines)
