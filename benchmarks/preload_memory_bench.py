"""Memory of preload mode per worker and per server: is a server's preload resident once?

Partitions ``--dataset`` (default ``synthetic:1000000``, 128 features) into 4 parts on 2
servers with 2-hop preloads, once with ``--ext-fanout 15`` and once with the full closure
(``-1``), and trains each in ``--mode preload`` on 4 ranks = 2 servers x 2 workers
(``ranks_per_server=2``, emulated on this host; GCN 2 layers, hidden 256, 3 epochs) with this
file as the mpirun worker; ``--baseline`` adds the same partition in ``--mode exchange``. Each
worker reads psutil ``memory_full_info`` (USS, PSS, RSS, shared) at three points: after MPI
start-up (the runtime: Python, torch, MPI), after :class:`~gnnsys.train.loop.Trainer` is built
(data loaded) and after training, plus ``getrusage`` ``ru_maxrss`` (the peak).

Per server it reports the summed USS and PSS of its workers next to one worker's USS and RSS,
the bytes of the server's preload files (manifest) and of each worker's share of the preload rows
(features + in-edges; the design splits the server's preload rows between its workers, so each
row is held by exactly one worker), and what a full copy of the preload per worker would add.

    python benchmarks/preload_memory_bench.py --out benchmarks/results/preload_memory.json

Issue 6 target (literal): the summed unique memory of a server's two workers <= 1.3x one
worker's, next to what a copy per worker would cost.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from preload_accuracy_bench import (RANKS, RANKS_PER_SERVER, SERVERS, mpirun_script,
                                    partition)

TRAIN = dict(model="gcn", layers=2, hidden=256, epochs=3, eval_every=3, dropout=0.5,
             lr=0.01, weight_decay=5e-4, progress=False, seed=0, timeout=3600)
MIB = float(1 << 20)


def memory() -> dict:
    """Return this process's ``uss``, ``pss``, ``rss``, ``shared`` and ``maxrss`` in bytes."""
    info = psutil.Process().memory_full_info()
    return {"uss": info.uss, "pss": info.pss, "rss": info.rss, "shared": info.shared,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def preload_layout(folder: str) -> dict:
    """Return per server the bytes of its preload files and, per worker, its share of rows.

    ``{"servers": [{"server", "file_bytes", "feat_bytes", "rows", "workers": [{"part", "rows",
    "feat_bytes", "edge_bytes"}]}]}``; a worker's bytes are its share of the rows
    (:func:`~gnnsys.train.preload_shard.preload_owners`): their features (float32) and in-edges
    (int64), what :mod:`gnnsys.train.preload_shard` copies into the worker.
    """
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
        workers = [{"part": int(p), "rows": int((owner == i).sum()),
                    "feat_bytes": int((owner == i).sum() * row_bytes),
                    "edge_bytes": int(row_edges[owner == i].sum() * 8)}
                   for i, p in enumerate(parts)]
        out.append({"server": server, "file_bytes": int(sum(files.values())),
                    "feat_bytes": int(files[prefix + "feat.npy"]), "rows": pre.num_rows,
                    "workers": workers})
    return {"servers": out}


def worker(folder: str, mode: str, out: str) -> None:
    """Under mpirun: build and run the trainer, measuring memory; rank 0 writes ``out``."""
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.config import TrainConfig
    from gnnsys.train.loop import Trainer

    ctx = init_distributed(ranks_per_server=RANKS_PER_SERVER)
    marks = {"runtime": memory()}
    start = time.perf_counter()
    trainer = Trainer(TrainConfig(partition=folder, mode=mode, **TRAIN).validate(), ctx)
    marks["built"] = memory()
    build_s = time.perf_counter() - start
    result = trainer.run()
    marks["end"] = memory()
    rows = {"rank": ctx.rank, "server": ctx.server, "marks": marks, "build_s": build_s,
            "train_s": result.time_s, "rows": trainer.feat.shape[0]}
    gathered = ctx.comm.gather(rows, root=0)
    if ctx.rank == 0:
        Path(out).write_text(json.dumps({"workers": gathered, "test_acc": result.test_acc,
                                         "preload_stats": trainer.preload_stats}))
    ctx.close()


def measure(folder: Path, mode: str, work: Path, timeout: float) -> dict:
    """Run :func:`worker` under ``mpirun -n 4`` on ``folder`` in ``mode``; return its JSON.

    A run whose JSON is in ``work`` already is reused (delete it to measure again)."""
    out = work / f"memory-{folder.name}-{mode}.json"
    if not out.exists():
        mpirun_script(__file__, ["--worker", str(folder), mode, str(out)], timeout)
    return json.loads(out.read_text())


def per_server(run: dict, layout: dict, mode: str) -> list:
    """Return per server: summed USS/PSS of its workers at each mark, one worker's USS/RSS
    (the larger), peak maxrss, the preload bytes its workers hold (0 in exchange mode) and
    what a full copy of the preload per worker would add."""
    rows = []
    for srv in layout["servers"]:
        ws = [w for w in run["workers"] if w["server"] == srv["server"]]
        held = [w["feat_bytes"] + w["edge_bytes"] if mode == "preload" else 0
                for w in srv["workers"]]
        row = {"server": srv["server"], "workers": len(ws),
               "preload_file_bytes": srv["file_bytes"], "preload_held_bytes": sum(held),
               "max_worker_preload_bytes": max(held)}
        for mark in ("runtime", "built", "end"):
            m = [w["marks"][mark] for w in ws]
            row[mark] = {"sum_uss": sum(x["uss"] for x in m), "sum_pss": sum(x["pss"] for x in m),
                         "one_uss": max(x["uss"] for x in m), "one_rss": max(x["rss"] for x in m),
                         "sum_rss": sum(x["rss"] for x in m)}
            row[mark]["sum_uss_over_one_uss"] = row[mark]["sum_uss"] / row[mark]["one_uss"]
        row["peak_maxrss_sum"] = sum(w["marks"]["end"]["maxrss"] for w in ws)
        row["peak_maxrss_one"] = max(w["marks"]["end"]["maxrss"] for w in ws)
        # a full copy of the server's preload in every worker instead of one share each
        row["copy_per_worker_adds_bytes"] = (len(ws) * srv["file_bytes"] - sum(held)
                                             if mode == "preload" else 0)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    """Return the per-server figures of every run as markdown tables (MiB)."""
    lines = ["| run | server | mark | sum USS | sum PSS | one USS | one RSS | sum USS / one USS |",
             "|" + "---|" * 8]
    for name, r in results.items():
        for s in r["servers"]:
            for mark in ("runtime", "built", "end"):
                m = s[mark]
                lines.append(f"| {name} | {s['server']} | {mark} | {m['sum_uss'] / MIB:,.0f} | "
                             f"{m['sum_pss'] / MIB:,.0f} | {m['one_uss'] / MIB:,.0f} | "
                             f"{m['one_rss'] / MIB:,.0f} | {m['sum_uss_over_one_uss']:.2f} |")
    lines += ["", "| run | server | preload files | held by its workers (sum of shares) | "
              "largest share | a copy per worker would add | sum USS at end: now -> with a "
              "copy per worker | peak maxrss sum / one |", "|" + "---|" * 8]
    for name, r in results.items():
        for s in r["servers"]:
            lines.append(f"| {name} | {s['server']} | {s['preload_file_bytes'] / MIB:,.0f} | "
                         f"{s['preload_held_bytes'] / MIB:,.0f} | "
                         f"{s['max_worker_preload_bytes'] / MIB:,.0f} | "
                         f"+{s['copy_per_worker_adds_bytes'] / MIB:,.0f} | "
                         f"{s['end']['sum_uss'] / MIB:,.0f} -> "
                         f"{(s['end']['sum_uss'] + s['copy_per_worker_adds_bytes']) / MIB:,.0f} | "
                         f"{s['peak_maxrss_sum'] / MIB:,.0f} / {s['peak_maxrss_one'] / MIB:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Parse options, partition, measure every run, print the tables and write JSON."""
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", default="synthetic:1000000")
    ap.add_argument("--ext-fanouts", nargs="+", type=int, default=[15, -1])
    ap.add_argument("--baseline", action="store_true",
                    help="also run --mode exchange on the first partition (no preload held)")
    ap.add_argument("--work", default="/tmp/gnnsys-preload-memory",
                    help="folder for the partitions (reused across runs)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    plan = [(f"preload f={f}", partition(args.dataset, f, work), "preload")
            for f in args.ext_fanouts]
    if args.baseline:
        plan.append((f"exchange (f={args.ext_fanouts[0]} partition)", plan[0][1], "exchange"))
    results = {}
    for name, folder, mode in plan:
        run = measure(folder, mode, work, args.timeout)
        layout = preload_layout(str(folder))
        results[name] = {"partition": str(folder), "mode": mode, "layout": layout,
                         "servers": per_server(run, layout, mode), **run}
        print(f"{name}: built in {max(w['build_s'] for w in run['workers']):.0f} s, trained "
              f"in {max(w['train_s'] for w in run['workers']):.0f} s", flush=True)
    load = os.getloadavg()
    print(f"\n{args.dataset}, {RANKS} ranks = {SERVERS} servers x {RANKS_PER_SERVER} workers, "
          f"GCN 2 layers hidden {TRAIN['hidden']}, {TRAIN['epochs']} epochs; MiB; "
          f"load average {load}")
    print(markdown(results))
    if args.out:
        Path(args.out).write_text(json.dumps({"config": vars(args), "train": TRAIN,
                                              "load_average": load, "results": results},
                                             indent=1))


if __name__ == "__main__":
    main()
