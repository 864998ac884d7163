"""Run under mpirun by tests/train: train each (partition, kind) job, rank 0 saves the results.

Usage: python _train_worker.py OUT_DIR PARTITION:KIND[:EXTRA] ...
Each job trains 20 epochs in float64 with dropout on; rank 0 writes OUT_DIR/<i>.npz with the
per-epoch losses and the final parameters.
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


def main() -> None:
    out_dir, jobs = sys.argv[1], sys.argv[2:]
    ctx = init_distributed()
    for index, job in enumerate(jobs):
        partition, kind = job.rsplit(":", 1)
        result = Trainer(job_config(partition, kind), ctx).run()
        if ctx.rank == 0:
            params = {k: v.detach().numpy() for k, v in result.model.named_parameters()}
            np.savez(f"{out_dir}/{index}.npz", losses=np.array([r["loss"] for r in result.history]),
                     **{"param:" + k: v for k, v in params.items()})
    ctx.close()


if __name__ == "__main__":
    main()
