"""Sum weight gradients (full precision) and small scalar arrays over all ranks.

The gradient sum is hierarchical: reduce to the server leader (local rank 0) inside each server,
all-reduce between the leaders, broadcast inside each server. Bytes counted (kind
``weight_grads``), for a flat gradient buffer of n bytes, S servers and L ranks on this server:

- intra: a non-leader sends n (its part of the reduce); a leader sends n to each of the other
  L - 1 local ranks (the broadcast), i.e. n * (L - 1);
- inter: a leader sends ``2 * (S - 1) * n // S`` (the ring all-reduce model: reduce-scatter
  plus all-gather of S chunks); nothing when S = 1.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List

import numpy as np
import torch

from gnnsys.comm.counters import ByteCounters
from gnnsys.errors import UserError

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext


def allreduce_gradients(
    params: Iterable[torch.nn.Parameter],
    ctx: "DistContext",
    counters: ByteCounters,
    backend: str = "mpi",
) -> None:
    """Replace every ``p.grad`` by its sum over all ranks (a missing grad counts as zeros).

    Args:
        params: the parameters, in the same order on every rank, all of one dtype.
        ctx: the :class:`~gnnsys.comm.bootstrap.DistContext` of this rank.
        counters: receives the ``weight_grads`` bytes (see the module docstring) and the time.
        backend: ``"mpi"`` (mpi4py on a CPU copy) or ``"torch"`` (torch.distributed groups;
            the buffer stays on the GPU with NCCL).

    All gradients are flattened into one buffer and reduced with one call per level.
    Collective: every rank must call it. Afterwards every parameter has a ``grad``.
    """
    params: List[torch.nn.Parameter] = list(params)
    if not params:
        return
    if backend not in ("mpi", "torch"):
        raise UserError(f"unknown all-reduce backend {backend!r} (choose mpi or torch)")
    if backend == "torch" and not ctx.torch_dist:
        raise UserError("all-reduce backend torch needs init_distributed(backend='gloo'/'nccl')")
    dtypes = {p.dtype for p in params}
    if len(dtypes) > 1:
        raise ValueError(f"allreduce_gradients needs parameters of one dtype, got {dtypes}")
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
        for p in params
    ])
    if ctx.size > 1:
        with counters.timed(blocking=True):
            flat = _reduce_mpi(flat, ctx) if backend == "mpi" else _reduce_torch(flat, ctx)
        _count_bytes(flat.numel() * flat.element_size(), ctx, counters)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.device)
        offset += p.numel()


def allreduce_scalars(values: np.ndarray, ctx: "DistContext") -> np.ndarray:
    """Return the element-wise float64 sum of ``values`` over all ranks (loss, counts, ...).

    Collective: every rank must call it with the same shape.
    """
    return ctx.allreduce_sum(np.asarray(values, dtype=np.float64))


def _reduce_mpi(flat: torch.Tensor, ctx: "DistContext") -> torch.Tensor:
    """Hierarchical sum of ``flat`` with mpi4py; returns a CPU tensor holding the result."""
    from mpi4py import MPI

    out = flat.cpu()  # flat is a fresh buffer: reduced in place
    buf = out.numpy()
    if ctx.local_size > 1:
        if ctx.is_leader:
            ctx.local_comm.Reduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=0)
        else:
            ctx.local_comm.Reduce(buf, None, op=MPI.SUM, root=0)
    if ctx.is_leader and ctx.num_servers > 1:
        ctx.leader_comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    if ctx.local_size > 1:
        ctx.local_comm.Bcast(buf, root=0)
    return out


def _reduce_torch(flat: torch.Tensor, ctx: "DistContext") -> torch.Tensor:
    """Hierarchical sum of ``flat`` with torch.distributed (gloo on CPU, NCCL on the GPU)."""
    import torch.distributed as dist

    out = flat.to(ctx.device if ctx.backend == "nccl" else torch.device("cpu"))
    leader = ctx.server_of_rank.index(ctx.server)  # lowest world rank of this server
    if ctx.local_size > 1:
        dist.reduce(out, dst=leader, group=ctx.intra_group)
    if ctx.is_leader and ctx.num_servers > 1:
        dist.all_reduce(out, group=ctx.leader_group)
    if ctx.local_size > 1:
        dist.broadcast(out, src=leader, group=ctx.intra_group)
    return out


def _count_bytes(nbytes: int, ctx: "DistContext", counters: ByteCounters) -> None:
    """Add the weight-gradient bytes this rank sends in the hierarchical all-reduce."""
    if ctx.local_size > 1:
        counters.add("intra", "weight_grads", nbytes * (ctx.local_size - 1) if ctx.is_leader
                     else nbytes)
    if ctx.is_leader and ctx.num_servers > 1:
        s = ctx.num_servers
        counters.add("inter", "weight_grads", 2 * (s - 1) * nbytes // s)
