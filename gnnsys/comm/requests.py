"""Exchange variable-length int64 arrays with every rank: ID requests, degrees, train sets.

Used where ranks must agree on WHICH rows move before any feature moves: a sampled minibatch
asks the owners of its halo sources for them, a preload worker asks its server peers for the
rows its edges reach. One ``Alltoall`` of counts, one ``Alltoallv`` of the values (numpy
buffers, no pickling).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext


def alltoall_arrays(ctx: "DistContext", arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Send ``arrays[p]`` to rank ``p``; return the int64 arrays every rank sent to this one.

    Args:
        ctx: the distributed context (``ctx.size`` arrays expected; collective over the world).
        arrays: one 1-D integer array per rank (the one for this rank is returned to it).

    Returns:
        ``ctx.size`` int64 arrays: element ``p`` is what rank ``p`` sent to this rank.
    """
    if len(arrays) != ctx.size:
        raise ValueError(f"alltoall_arrays: {len(arrays)} arrays for {ctx.size} ranks")
    parts = [np.ascontiguousarray(a, dtype=np.int64).reshape(-1) for a in arrays]
    if ctx.size == 1:
        return [parts[0].copy()]
    send_counts = np.array([len(a) for a in parts], dtype=np.int64)
    recv_counts = np.empty(ctx.size, dtype=np.int64)
    ctx.comm.Alltoall(send_counts, recv_counts)
    send = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    recv = np.empty(int(recv_counts.sum()), dtype=np.int64)
    from mpi4py import MPI

    ctx.comm.Alltoallv([send, (send_counts, _displs(send_counts)), MPI.INT64_T],
                       [recv, (recv_counts, _displs(recv_counts)), MPI.INT64_T])
    return np.split(recv, np.cumsum(recv_counts)[:-1])


def _displs(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out
