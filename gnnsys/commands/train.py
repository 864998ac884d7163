"""``gnnsys train``: full-graph distributed training of a partition, one rank per part."""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from gnnsys import config
from gnnsys.errors import RuntimeFailure, UserError


def register(subparsers) -> None:
    """Add the ``train`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "train", help="train a GNN on a partition (run under mpirun -n P)",
        description="Train a GNN on a partition written by `gnnsys partition`. Launch P ranks "
        "for a P-part partition: `mpirun -n 4 gnnsys train partitions/cora-4`; without mpirun "
        "it runs as one rank (the partition must have 1 part). Options may also come from a "
        "YAML --config file; flags override it.")
    config.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse the options, start the distributed context and train; return the exit code.

    Set-up failures are agreed on by all ranks (one collective), so the job exits with one
    message, printed by the lowest failing rank. A failure every rank detects together (a
    non-finite loss) is printed by rank 0 and every rank exits 1. Any other failure during
    training (an exception of a user's layer included) prints that rank's message once and
    aborts the whole job (MPI_Abort), so no rank waits in a collective. A rank that stops making
    progress is caught by the watchdog (``--timeout``). Exceptions other than
    :class:`UserError` are reported as one line naming the exception and where it was raised
    (``GNNSYS_TRACEBACK=1`` prints the traceback as well).
    """
    cfg = config.config_from_args(args)
    from gnnsys.comm.bootstrap import init_distributed
    from gnnsys.train.loop import AgreedFailure, Trainer

    ctx = init_distributed(backend=cfg.backend, device=cfg.device,
                           ranks_per_server=cfg.ranks_per_server or None)
    try:
        if ctx.size == 1:
            try:
                Trainer(cfg, ctx).run()
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                raise _known(exc) from None
            return 0
        trainer, error = None, None
        try:
            trainer = Trainer(cfg, ctx)
        except Exception as exc:  # noqa: BLE001 - agreed on below, reported once
            error = _known(exc)
        first, code = _agree_on_failure(ctx, error)
        if first is not None:
            if ctx.rank == first:
                _report(error, ctx.rank)
            return code
        try:
            trainer.run()
        except AgreedFailure as exc:
            trainer.close_exchange()
            if ctx.rank == 0:
                _report(exc, ctx.rank)
            return 1
        except BaseException as exc:  # noqa: BLE001 - one rank failed: end the whole job
            known = _known(exc)
            _report(known, ctx.rank)
            ctx.comm.Abort(_code(known))
        return 0
    finally:
        ctx.close()


def _known(exc: BaseException) -> Exception:
    """Return ``exc`` if it is a :class:`UserError`/:class:`RuntimeFailure`, else a
    :class:`RuntimeFailure` naming its type, message and the innermost place it was raised."""
    if isinstance(exc, (UserError, RuntimeFailure)):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return RuntimeFailure("interrupted")
    if os.environ.get("GNNSYS_TRACEBACK"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}; " \
            "GNNSYS_TRACEBACK=1 shows the traceback)" if frames else ""
    message = str(exc).strip().splitlines()
    return RuntimeFailure(f"{type(exc).__name__}: {message[0] if message else ''}{where}")


def _code(exc: Exception) -> int:
    return 2 if isinstance(exc, UserError) else 1


def _report(exc: Exception, rank: int) -> None:
    kind = "error" if isinstance(exc, UserError) else "failed"
    print(f"gnnsys train: {kind} (rank {rank}): {exc}", file=sys.stderr, flush=True)


def _agree_on_failure(ctx, error) -> tuple:
    """Return (lowest failing rank or None, exit code) agreed by all ranks."""
    import numpy as np
    from mpi4py import MPI

    mine = np.array([ctx.rank if error else ctx.size], dtype=np.int64)
    code = np.array([_code(error) if error else 0], dtype=np.int64)
    ctx.comm.Allreduce(MPI.IN_PLACE, mine, op=MPI.MIN)
    ctx.comm.Allreduce(MPI.IN_PLACE, code, op=MPI.MAX)
    first = int(mine[0])
    return (first if first < ctx.size else None), int(code[0])
