"""The Python API: ``gnnsys.train(partition, model=..., **options)``."""
from __future__ import annotations

from typing import Optional

from gnnsys.config import TrainConfig
from gnnsys.train.model import GNN


def train(partition: str, model: Optional[GNN] = None, ctx=None, **options) -> "TrainResult":
    """Train on ``partition`` and return a :class:`~gnnsys.train.loop.TrainResult`.

    Takes the partition folder, an optional model built in code (a :class:`GNN` of layers
    called as ``layer(block, h)``; built from the options when None), an optional
    :class:`~gnnsys.comm.bootstrap.DistContext` (initialised from MPI when None) and any
    :class:`TrainConfig` option as a keyword (``epochs=100, lr=0.01, ...``). Run the script
    under ``mpirun -n P`` for P parts, or plainly for a 1-part partition.
    """
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.train.loop import Trainer

    cfg = TrainConfig(partition=partition, **options).validate()
    ctx = ctx or init_distributed(backend=cfg.backend, device=cfg.device)
    return Trainer(cfg, ctx, model=model).run()
