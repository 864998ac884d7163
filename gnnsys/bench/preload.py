"""Suite ``preload``: memory of preload mode per worker and per server (issue 6): is a server's
preload resident once?

Partitions ``synthetic:<nodes>`` (default 1,000,000; ``--quick`` 20,000; 128 features) with a
2-hop preload sampled at ``--ext-fanout 15`` twice: into 4 parts on 2 servers, and into 2 parts
on the same 2 servers (the first METIS level, which picks the servers, is the same call on the
same graph, so each server owns the same nodes and preloads the same rows; the suite checks it).
It then trains each in ``--mode preload`` (GCN, 2 layers, hidden 256, 3 epochs, quick 2) under
``mpirun`` on this host: 2 servers x 2 workers (``ranks_per_server=2``) and 2 servers x 1
worker (``ranks_per_server=1``), each rank running ``python -m gnnsys.bench.preload --worker``.
Every worker reads psutil ``memory_full_info`` (USS, PSS, RSS) after MPI start-up
(``runtime``: Python, torch, MPI), after the :class:`~gnnsys.train.loop.Trainer` is built
(``built``: data loaded) and after training (``end``), and ``ru_maxrss`` (its peak).

Per server it reports the summed USS and PSS of its workers, one worker's USS and RSS, the
bytes of the server's preload files and of each worker's share (the design splits a server's
preload rows between its workers, :func:`gnnsys.train.preload_shard.preload_owners`, so each row
is held by exactly one worker), what a full copy of the preload in every worker would add, and
the same server with one worker holding its whole preload.

Issue 6 target: "the summed unique memory of a server's two workers <= 1.3x one worker's",
i.e. the server's memory with 2 workers (summed USS; PSS beside it) over the same server run by
1 worker, next to the PSS ratio had every worker a copy of the preload. The suite also reports
the summed USS of the two workers over one of THEM, which is ~2 by construction (two symmetric
workers that each hold half of the server's data), whether the preload is shared or not.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from gnnsys.bench import plots
from gnnsys.bench.batching import SERVERS, mpirun_module, preload_partition
from gnnsys.bench.options import BenchOptions
from gnnsys.threads import limit_numba_threads

NAME = "preload"
EXT_FANOUT = 15
LAYOUTS = {"2x2": 2, "2x1": 1}  # servers x workers -> ranks per server (2 servers each)
MARKS = ("runtime", "built", "end")
TARGET = 1.3
MIB = float(1 << 20)


def memory() -> Dict[str, int]:
    """Return this process's ``uss``, ``pss``, ``rss``, ``shared`` and peak ``maxrss`` in bytes
    (psutil ``memory_full_info`` and ``getrusage``)."""
    import psutil

    info = psutil.Process().memory_full_info()
    return {"uss": info.uss, "pss": info.pss, "rss": info.rss, "shared": info.shared,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def preload_layout(folder: str) -> List[dict]:
    """Return per server of the partition ``folder``: ``{"server", "file_bytes", "feat_bytes",
    "rows", "workers": [{"part", "rows", "feat_bytes", "edge_bytes"}]}``; a worker's bytes are
    its share of the preload rows: their features (float32) and in-edges (int64), what
    :mod:`gnnsys.train.preload_shard` copies into the worker."""
    from gnnsys.partition.format import load_manifest
    from gnnsys.partition.preload import open_preload, server_dir
    from gnnsys.train.preload_shard import preload_owners

    manifest = load_manifest(folder)
    part_server = np.asarray(manifest["part_server"])
    out = []
    for server in range(int(manifest["servers"])):
        prefix = server_dir(server) + "/"
        files = {k: v["size"] for k, v in manifest["files"].items() if k.startswith(prefix)}
        pre = open_preload(folder, server, verify=False, manifest=manifest)
        parts = np.flatnonzero(part_server == server)
        owner = preload_owners(np.asarray(pre.hop), len(parts))
        row_edges = np.diff(np.asarray(pre.indptr))
        row_bytes = pre.feat.shape[1] * 4
        out.append({"server": server, "file_bytes": int(sum(files.values())),
                    "feat_bytes": int(files[prefix + "feat.npy"]), "rows": int(pre.num_rows),
                    "workers": [{"part": int(p), "rows": int((owner == i).sum()),
                                 "feat_bytes": int((owner == i).sum() * row_bytes),
                                 "edge_bytes": int(row_edges[owner == i].sum() * 8)}
                                for i, p in enumerate(parts)]})
    return out


def server_of_nodes(folder: str) -> np.ndarray:
    """Return ``int64 [N]``: the server of every node in the partition ``folder``."""
    from gnnsys.partition.format import load_manifest

    part_server = np.asarray(load_manifest(folder)["part_server"], dtype=np.int64)
    return part_server[np.load(Path(folder) / "assignment.npy")]


def worker(job_file: str) -> None:
    """Under mpirun: build and run the trainer of ``job_file`` (``{"config": TrainConfig
    fields, "ranks_per_server", "out"}``), reading :func:`memory` at each mark; rank 0 writes
    ``{"workers": [one per rank], "test_acc"}`` to ``out``."""
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.config import TrainConfig
    from gnnsys.train.loop import Trainer

    job = json.loads(Path(job_file).read_text())
    ctx = init_distributed(ranks_per_server=job["ranks_per_server"])
    marks = {"runtime": memory()}
    start = time.perf_counter()
    trainer = Trainer(TrainConfig(**job["config"]).validate(), ctx)
    marks["built"] = memory()
    build_s = time.perf_counter() - start
    result = trainer.run()
    marks["end"] = memory()
    gathered = ctx.comm.gather({"rank": ctx.rank, "server": ctx.server, "marks": marks,
                                "build_s": build_s, "train_s": result.time_s,
                                "rows": int(trainer.feat.shape[0])}, root=0)
    if ctx.rank == 0:
        Path(job["out"]).write_text(json.dumps({"workers": gathered,
                                                "test_acc": result.test_acc}))
    ctx.close()


def per_server(workers: List[dict], layout: List[dict]) -> List[dict]:
    """Return per server of ``layout``: its workers' summed USS/PSS/RSS and one worker's (the
    larger) USS/RSS at each mark, peak maxrss summed and of one, the preload bytes its workers
    hold (sum and largest share) and what a full copy of the preload per worker would add."""
    rows = []
    for srv in layout:
        ws = [w for w in workers if w["server"] == srv["server"]]
        held = [w["feat_bytes"] + w["edge_bytes"] for w in srv["workers"]]
        row = {"server": srv["server"], "workers": len(ws), "preload_rows": srv["rows"],
               "preload_file_bytes": srv["file_bytes"], "preload_held_bytes": sum(held),
               "worker_preload_bytes": held,
               "copy_per_worker_adds_bytes": len(ws) * srv["file_bytes"] - sum(held),
               "peak_maxrss_sum": sum(w["marks"]["end"]["maxrss"] for w in ws),
               "peak_maxrss_one": max(w["marks"]["end"]["maxrss"] for w in ws)}
        for mark in MARKS:
            m = [w["marks"][mark] for w in ws]
            row[mark] = {"sum_uss": sum(x["uss"] for x in m), "sum_pss": sum(x["pss"] for x in m),
                         "sum_rss": sum(x["rss"] for x in m), "one_uss": max(x["uss"] for x in m),
                         "one_rss": max(x["rss"] for x in m)}
            row[mark]["sum_uss_over_one_uss"] = row[mark]["sum_uss"] / row[mark]["one_uss"]
        rows.append(row)
    return rows


def compare(two: List[dict], one: List[dict]) -> List[dict]:
    """Return per server the 2-worker layout's memory over the 1-worker layout's (``two`` and
    ``one`` from :func:`per_server`), at the end of training: summed USS (``uss_ratio``, the
    issue's "summed unique memory of its two workers" over one worker's), summed PSS
    (``pss_ratio``), the PSS had every worker a full copy of the preload (``copy_ratio``), the
    same without each process's runtime (PSS after MPI start-up: Python, torch, MPI;
    ``data_ratio``) and peak maxrss (``peak_ratio``)."""
    out = []
    for a, b in zip(two, one):
        base = b["end"]["sum_pss"]
        data = [x["end"]["sum_pss"] - x["runtime"]["sum_pss"] for x in (a, b)]
        out.append({"server": a["server"], "pss_two": a["end"]["sum_pss"], "pss_one": base,
                    "uss_ratio": a["end"]["sum_uss"] / b["end"]["sum_uss"],
                    "pss_ratio": a["end"]["sum_pss"] / base,
                    "copy_ratio": (a["end"]["sum_pss"] + a["copy_per_worker_adds_bytes"]) / base,
                    "data_ratio": data[0] / data[1],
                    "peak_ratio": a["peak_maxrss_sum"] / b["peak_maxrss_sum"]})
    return out


def run(opts: BenchOptions) -> dict:
    """Partition ``synthetic:<nodes>`` for both layouts, train each under mpirun measuring every
    worker's memory; return per-server figures and the 2-worker / 1-worker comparison. Raises
    :class:`gnnsys.errors.RuntimeFailure` when partitioning or training fails."""
    nodes = opts.pick(opts.nodes, 1_000_000, 20_000)
    dataset = f"synthetic:{nodes}"
    epochs = opts.pick(opts.epochs, 3, 2)
    work = opts.work / NAME
    work.mkdir(parents=True, exist_ok=True)
    train = {"model": "gcn", "layers": 2, "hidden": 256, "epochs": epochs, "eval_every": epochs,
             "dropout": 0.5, "lr": 0.01, "weight_decay": 5e-4, "progress": False,
             "seed": opts.seed, "mode": "preload"}
    layouts, folders = {}, {}
    for name, per in LAYOUTS.items():
        folder = preload_partition(dataset, SERVERS * per, SERVERS, EXT_FANOUT, work,
                                   opts.timeout)
        job = work / f"job-{folder.name}.json"
        out = work / f"memory-{folder.name}.json"
        job.write_text(json.dumps({"config": {**train, "partition": str(folder)},
                                   "ranks_per_server": per, "out": str(out)}))
        cost = mpirun_module(SERVERS * per, "gnnsys.bench.preload", ["--worker", str(job)],
                             2 * opts.timeout)
        measured = json.loads(out.read_text())
        layouts[name] = {"partition": folder.name, "parts": SERVERS * per,
                         "ranks_per_server": per, "wall_s": round(cost["wall_s"], 1),
                         "servers": per_server(measured["workers"],
                                               preload_layout(str(folder))), **measured}
        folders[name] = str(folder)
        print(f"[preload] {name}: built in "
              f"{max(w['build_s'] for w in measured['workers']):.0f} s, trained in "
              f"{max(w['train_s'] for w in measured['workers']):.0f} s", file=sys.stderr,
              flush=True)
    same = bool(np.array_equal(*(server_of_nodes(f) for f in folders.values())))
    return {"config": {"dataset": dataset, "servers": SERVERS, "ext_fanout": EXT_FANOUT,
                       "preload_hops": 2, "train": train, "layouts": LAYOUTS,
                       "same_server_nodes": same},
            "target": TARGET, "layouts": layouts,
            "two_vs_one": two_vs_one(layouts)}


def two_vs_one(layouts: Dict[str, dict]) -> List[dict]:
    """Return :func:`compare` of the ``2x2`` layout's servers against the ``2x1`` layout's
    (``layouts`` as in a result), so figures read from older results too."""
    return compare(layouts["2x2"]["servers"], layouts["2x1"]["servers"])


def headline(result: dict) -> dict:
    """Return the worst server's figures of ``result``: ``sum_uss_over_one_uss`` (2 workers,
    end of training), ``uss_ratio``, ``pss_ratio``, ``copy_ratio`` and ``data_ratio`` (2
    workers / 1 worker, see :func:`compare`, recomputed from the layouts)."""
    two = result["layouts"]["2x2"]["servers"]
    return {"sum_uss_over_one_uss": max(s["end"]["sum_uss_over_one_uss"] for s in two),
            **{key: max(c[key] for c in two_vs_one(result["layouts"]))
               for key in ("uss_ratio", "pss_ratio", "copy_ratio", "data_ratio")}}


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw per server the memory at the end of training: 1 worker (PSS), 2 workers (summed
    PSS) and 2 workers each with a copy of the preload (estimate); return the PNG paths."""
    comp = two_vs_one(result["layouts"])
    fig, axes = plots.subplots(1, len(comp), size=(4.6, 3.6))
    for ax, c, two in zip(axes[0], comp, result["layouts"]["2x2"]["servers"]):
        values = [c["pss_one"], c["pss_two"], c["pss_two"] + two["copy_per_worker_adds_bytes"]]
        plots.bars(ax, ["1 worker", "2 workers", "2 workers,\na copy each"],
                   [v / MIB for v in values], "server memory (summed PSS), MiB",
                   f"{result['config']['dataset']}, server {c['server']}",
                   notes=["1.00x", f"{c['pss_ratio']:.2f}x", f"{c['copy_ratio']:.2f}x"])
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the per-server figures as markdown tables (MiB)."""
    lines = ["| layout | server | mark | sum USS | sum PSS | one USS | one RSS | "
             "sum USS / one USS |", "|" + "---|" * 8]
    for name, lay in result["layouts"].items():
        for s in lay["servers"]:
            for mark in MARKS:
                m = s[mark]
                lines.append(f"| {name} | {s['server']} | {mark} | {m['sum_uss'] / MIB:,.0f} | "
                             f"{m['sum_pss'] / MIB:,.0f} | {m['one_uss'] / MIB:,.0f} | "
                             f"{m['one_rss'] / MIB:,.0f} | {m['sum_uss_over_one_uss']:.2f} |")
    lines += ["", "| layout | server | preload rows | preload files | each worker's share | "
              "a copy per worker would add | peak maxrss sum / one |", "|" + "---|" * 7]
    for name, lay in result["layouts"].items():
        for s in lay["servers"]:
            shares = " + ".join(f"{b / MIB:,.0f}" for b in s["worker_preload_bytes"])
            lines.append(f"| {name} | {s['server']} | {s['preload_rows']:,} | "
                         f"{s['preload_file_bytes'] / MIB:,.0f} | {shares} | "
                         f"+{s['copy_per_worker_adds_bytes'] / MIB:,.0f} | "
                         f"{s['peak_maxrss_sum'] / MIB:,.0f} / {s['peak_maxrss_one'] / MIB:,.0f} |")
    lines += ["", "Server memory at the end of training, 2 workers over 1 worker (same server "
              "nodes and preload):", "",
              "| server | summed USS ratio | 1 worker PSS | 2 workers summed PSS | ratio | "
              "with a copy per worker | ratio without the per-process runtime | "
              "peak maxrss ratio |", "|" + "---|" * 8]
    for c in two_vs_one(result["layouts"]):
        lines.append(f"| {c['server']} | {c['uss_ratio']:.2f} | {c['pss_one'] / MIB:,.0f} | "
                     f"{c['pss_two'] / MIB:,.0f} | {c['pss_ratio']:.2f} | {c['copy_ratio']:.2f} "
                     f"| {c['data_ratio']:.2f} | {c['peak_ratio']:.2f} |")
    if not result["config"]["same_server_nodes"]:
        lines.append("\nWarning: the two layouts' servers own different nodes.")
    return "\n".join(lines)


def _worker_main(argv: Optional[List[str]] = None) -> int:
    """The mpirun entry point: ``python -m gnnsys.bench.preload --worker JOB.json``."""
    limit_numba_threads()  # as `gnnsys train` does: numba's pool is sized at its import
    ap = argparse.ArgumentParser(description="preload suite, mpirun worker")
    ap.add_argument("--worker", metavar="JOB", required=True)
    worker(ap.parse_args(argv).worker)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
