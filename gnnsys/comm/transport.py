"""Variable-size all-to-all of row blocks between ranks, over MPI or torch.distributed.

Every transport moves, for each peer p, ``send_counts[p]`` rows starting at row
``send_displs[p]`` of ``send`` into ``recv_counts[p]`` rows of the peer's ``recv`` (at the
peer's ``recv_displs[rank]``). Blocks are packed back to back in peer order (displacements are
the exclusive prefix sums of the counts, as an :class:`~gnnsys.comm.plan.ExchangePlan` has
them). Every rank calls ``swap`` together, also ranks that send and receive nothing.

- ``"mpi"``: one ``MPI_Alltoallv`` on the numpy views of CPU tensors (no pickling).
- ``"mpi_p2p"``: non-blocking ``Isend``/``Irecv`` with each peer that has traffic, then Waitall.
- ``"torch"``: ``torch.distributed.all_to_all_single`` with split sizes (gloo on CPU tensors,
  NCCL on CUDA tensors).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

import numpy as np
import torch

from gnnsys.errors import UserError

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext

TRANSPORTS = ("mpi", "mpi_p2p", "torch")
_TAG = 0x6A1


class _MpiTransport:
    """Common part of the MPI transports: CPU buffers viewed as numpy, counts in elements."""

    device = torch.device("cpu")

    def __init__(self, comm) -> None:
        self.comm = comm

    @staticmethod
    def _spec(t: torch.Tensor) -> Tuple[np.ndarray, object, int]:
        """Return (flat numpy view, MPI datatype, elements per row) of a contiguous tensor."""
        from mpi4py.util.dtlib import from_numpy_dtype

        arr = t.numpy().reshape(-1)
        row = int(np.prod(t.shape[1:], dtype=np.int64))
        return arr, from_numpy_dtype(arr.dtype), row


class MpiAlltoallv(_MpiTransport):
    """One ``MPI_Alltoallv`` call per swap."""

    def swap(self, send, send_counts, send_displs, recv, recv_counts, recv_displs) -> None:
        """Exchange the row blocks (see the module docstring); tensors on CPU, contiguous."""
        sbuf, stype, row = self._spec(send)
        rbuf, rtype, _ = self._spec(recv)
        self.comm.Alltoallv(
            [sbuf, ((send_counts * row).tolist(), (send_displs * row).tolist()), stype],
            [rbuf, ((recv_counts * row).tolist(), (recv_displs * row).tolist()), rtype],
        )


class MpiPointToPoint(_MpiTransport):
    """Non-blocking ``Isend``/``Irecv`` with each peer that has traffic, then ``Waitall``."""

    def swap(self, send, send_counts, send_displs, recv, recv_counts, recv_displs) -> None:
        """Exchange the row blocks (see the module docstring); tensors on CPU, contiguous."""
        from mpi4py import MPI

        sbuf, stype, row = self._spec(send)
        rbuf, rtype, _ = self._spec(recv)
        reqs = [
            self.comm.Irecv([rbuf[d * row:(d + c) * row], rtype], source=p, tag=_TAG)
            for p, (c, d) in enumerate(zip(recv_counts, recv_displs)) if c
        ]
        reqs += [
            self.comm.Isend([sbuf[d * row:(d + c) * row], stype], dest=p, tag=_TAG)
            for p, (c, d) in enumerate(zip(send_counts, send_displs)) if c
        ]
        MPI.Request.Waitall(reqs)


class TorchAllToAll:
    """``torch.distributed.all_to_all_single`` on the default process group."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def swap(self, send, send_counts, send_displs, recv, recv_counts, recv_displs) -> None:
        """Exchange the row blocks (see the module docstring); displacements are implied by
        the counts. Tensors on ``self.device``, contiguous."""
        torch.distributed.all_to_all_single(
            recv, send,
            output_split_sizes=recv_counts.tolist(),
            input_split_sizes=send_counts.tolist(),
        )


def make_transport(name: str, ctx: "DistContext", comm=None):
    """Return the transport ``name`` (one of :data:`TRANSPORTS`) for the ranks of ``ctx``.

    ``comm`` (MPI transports only) replaces ``ctx.comm``, e.g. a duplicate communicator for a
    communication thread. Its ``device`` attribute says where the send and receive tensors
    must live. Returns ``None`` in a 1-rank world (nothing to move) after checking the name.
    """
    if name not in TRANSPORTS:
        raise UserError(f"unknown exchange backend {name!r} (choose from {TRANSPORTS})")
    if ctx.size == 1:
        return None
    if name == "torch":
        if not ctx.torch_dist:
            raise UserError("exchange backend torch needs init_distributed(backend='gloo'/'nccl')")
        return TorchAllToAll(ctx.device if ctx.backend == "nccl" else torch.device("cpu"))
    if ctx.comm is None:
        raise UserError(f"exchange backend {name} needs mpi4py, which could not start")
    comm = comm if comm is not None else ctx.comm
    return MpiAlltoallv(comm) if name == "mpi" else MpiPointToPoint(comm)
