"""Run under mpirun by tests/train: train each (partition, kind) job, rank 0 saves the results.

Usage: python _train_worker.py [--ranks-per-server=N] OUT_DIR PARTITION:KIND[:OPTS] ...
Each job trains 20 epochs in float64 with dropout on (OPTS: extra TrainConfig options,
``name=value`` joined by ``,``, e.g. ``mode=preload,batch_size=16``); rank 0 writes
OUT_DIR/<i>.npz with the per-epoch losses, the final parameters, the bytes sent per link class
and kind summed over epochs (``bytes:<link>:<kind>``) and the steps per epoch.
"""
import sys

import numpy as np

from gnnsys.comm.bootstrap import init_distributed
from gnnsys.config import TrainConfig
from gnnsys.train.loop import Trainer

COMMON = dict(dtype="float64", dropout=0.5, epochs=20, hidden=8, heads=2, lr=0.01,
              weight_decay=5e-4, eval_every=10, progress=False, seed=3)
KINDS = {"gcn": dict(model="gcn"), "sage": dict(model="sage"), "gat": dict(model="gat"),
         "gin": dict(model="gin"), "pyg-sage": dict(layer="torch_geometric.nn:SAGEConv")}


def job_config(partition: str, kind: str, **extra) -> TrainConfig:
    """The configuration of one job (the test builds the same for its reference)."""
    return TrainConfig(partition=partition, **{**COMMON, **KINDS[kind], **extra}).validate()


def parse_job(job: str) -> tuple:
    """Split ``PARTITION:KIND[:name=value,...]`` into (partition, kind, extra options)."""
    partition, kind, *opts = job.split(":")
    extra = dict(item.split("=", 1) for item in opts[0].split(",")) if opts else {}
    return partition, kind, {k: (int(v) if v.lstrip("-").isdigit() else v)
                             for k, v in extra.items()}


def main() -> None:
    args = sys.argv[1:]
    per_server = None
    if args[0].startswith("--ranks-per-server="):
        per_server = int(args.pop(0).split("=", 1)[1])
    out_dir, jobs = args[0], args[1:]
    ctx = init_distributed(ranks_per_server=per_server)
    for index, job in enumerate(jobs):
        partition, kind, extra = parse_job(job)
        result = Trainer(job_config(partition, kind, **extra), ctx).run()
        if ctx.rank == 0:
            params = {k: v.detach().numpy() for k, v in result.model.named_parameters()}
            sent = {f"bytes:{link}:{kind}": sum(r["bytes"][link][kind] for r in result.history)
                    for link in ("intra", "inter") for kind in result.history[0]["bytes"][link]}
            np.savez(f"{out_dir}/{index}.npz", losses=np.array([r["loss"] for r in result.history]),
                     steps=np.array([r.get("steps", 1) for r in result.history]),
                     **sent, **{"param:" + k: v for k, v in params.items()})
    ctx.close()


if __name__ == "__main__":
    main()
