"""A communication thread: runs halo swaps in the background, in submission order.

Pipelining overlaps the halo exchange with computation: the main thread encodes rows and
submits the swap; this thread runs the (blocking) transport call on its own duplicate
communicator, so it never interleaves with the main thread's collectives; the main thread
collects the result later (:class:`~gnnsys.comm.exchange.PendingSwap`). Jobs run one at a time,
in the order they were submitted, which is the same on every rank, so the collectives match.
mpi4py initialises MPI with ``MPI_THREAD_MULTIPLE``, which Open MPI 5 supports.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from gnnsys.comm.transport import make_transport
from gnnsys.errors import UserError

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext


class CommWorker:
    """One background thread that runs transport swaps; ``submit`` returns a Future.

    Args:
        ctx: the distributed context; MPI transports get a duplicate of ``ctx.comm``.
        backend: the exchange backend (``mpi`` or ``mpi_p2p``; torch.distributed collectives
            are not safe to issue from a second thread next to the main thread's).

    The Future's result is the seconds the transport call took (the ``comm_s`` of the swap).
    """

    def __init__(self, ctx: "DistContext", backend: str = "mpi") -> None:
        if backend not in ("mpi", "mpi_p2p"):
            raise UserError(f"--pipeline needs an MPI exchange backend, not {backend!r}")
        self._comm = ctx.comm.Dup() if ctx.comm is not None and ctx.size > 1 else None
        self._transport = make_transport(backend, ctx, comm=self._comm)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gnnsys-comm")

    def submit(self, args: tuple) -> Future:
        """Run ``swap(*args)`` on the communication thread, on this worker's communicator.

        Returns a Future of the seconds the swap took."""

        def job() -> float:
            start = time.perf_counter()
            self._transport.swap(*args)
            return time.perf_counter() - start

        return self._pool.submit(job)

    def close(self) -> None:
        """Finish the submitted swaps and stop the thread (collective when jobs are pending)."""
        self._pool.shutdown(wait=True)
        if self._comm is not None:
            self._comm.Free()
            self._comm = None
