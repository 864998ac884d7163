"""The exact (full-precision, synchronous) halo exchange as one autograd function.

Forward: pack the owned rows each peer needs (``h_own[send_index]``), all-to-all, and place each
peer's block in its contiguous halo slice: ``out = cat(h_own, halo)``. Backward is the
transpose: the gradient of each halo slice goes back to its owner, which index-adds it into
the gradient of its own rows, on top of the gradient that reached them directly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Tuple

import numpy as np
import torch

from gnnsys.comm.counters import ByteCounters
from gnnsys.comm.plan import ExchangePlan
from gnnsys.comm.transport import make_transport
from gnnsys.errors import UserError

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext


class HaloExchange:
    """Callable ``exchange(h_own [n_own, d]) -> [n_own + n_halo, d]`` with exact autograd.

    Args:
        ctx: the :class:`~gnnsys.comm.bootstrap.DistContext` of this rank.
        plan: this rank's :class:`~gnnsys.comm.plan.ExchangePlan`.
        counters: where sent bytes (kinds ``features`` forward, ``feature_grads`` backward,
            under the link class of each peer) and communication time are counted.
        backend: ``"mpi"`` (Alltoallv, default), ``"mpi_p2p"`` (Isend/Irecv) or ``"torch"``
            (``all_to_all_single``: gloo on CPU, NCCL on CUDA). Tensors that are not on the
            transport's device are staged through it (CUDA -> CPU for MPI).

    Constructing it and every call (forward and backward) are collective: all ranks must take
    part, in the same order. In particular every rank must back-propagate through every
    exchange whose output needs a gradient (make the loss depend on the output even on a rank
    without training nodes, e.g. a zero-sized sum). The constructor checks with one
    all-to-all that every peer sends exactly the rows this rank expects and raises
    :class:`UserError` on every rank otherwise.
    """

    def __init__(
        self, ctx: "DistContext", plan: ExchangePlan, counters: ByteCounters, backend: str = "mpi"
    ) -> None:
        if plan.size != ctx.size or plan.rank != ctx.rank:
            raise UserError(
                f"exchange plan is for part {plan.rank} of {plan.size}, "
                f"but this is rank {ctx.rank} of {ctx.size}"
            )
        self.ctx = ctx
        self.plan = plan
        self.counters = counters
        self.transport = make_transport(backend, ctx)
        self._send_index: Dict[torch.device, torch.Tensor] = {}
        if ctx.size > 1:
            _check_counts(ctx, plan)

    def __call__(self, h_own: torch.Tensor) -> torch.Tensor:
        """Return ``cat(h_own, halo)``: [n_own + n_halo, d], differentiable w.r.t. ``h_own``."""
        if h_own.dim() != 2 or h_own.shape[0] != self.plan.n_own:
            raise ValueError(
                f"halo exchange expects [{self.plan.n_own}, d] owned rows, got {tuple(h_own.shape)}"
            )
        if self.transport is None:  # 1-rank world: no halo (the plan guarantees it)
            return h_own
        return _HaloExchangeFn.apply(h_own, self)

    def _send_index_on(self, device: torch.device) -> torch.Tensor:
        """Return the plan's send index on ``device`` (cached)."""
        if device not in self._send_index:
            self._send_index[device] = self.plan.send_index.to(device)
        return self._send_index[device]

    def _swap(
        self,
        send: torch.Tensor,
        send_counts: np.ndarray,
        send_displs: np.ndarray,
        recv: torch.Tensor,
        recv_counts: np.ndarray,
        recv_displs: np.ndarray,
        kind: str,
        rows_by_link: Dict[str, int],
    ) -> None:
        """Run one timed, byte-counted transport swap of row blocks, staging devices if needed.

        ``recv`` is filled in place; ``rows_by_link`` are the rows this rank sends per link.
        """
        dev = self.transport.device
        staged = recv.device != dev
        buf = torch.empty(recv.shape, dtype=recv.dtype, device=dev) if staged else recv
        send = send.to(dev).contiguous()
        with self.counters.timed(blocking=True):
            self.transport.swap(send, send_counts, send_displs, buf, recv_counts, recv_displs)
        if staged:
            recv.copy_(buf)
        row_bytes = int(np.prod(send.shape[1:], dtype=np.int64)) * send.element_size()
        for link, rows in rows_by_link.items():
            if rows:
                self.counters.add(link, kind, rows * row_bytes)


class _HaloExchangeFn(torch.autograd.Function):
    """Autograd function behind :class:`HaloExchange` (forward: gather, backward: scatter-add)."""

    @staticmethod
    def forward(ctx, h_own: torch.Tensor, ex: HaloExchange) -> torch.Tensor:
        plan = ex.plan
        ctx.ex = ex
        out = torch.empty(
            (plan.n_own + plan.n_halo, h_own.shape[1]), dtype=h_own.dtype, device=h_own.device
        )
        out[: plan.n_own] = h_own
        packed = h_own.index_select(0, ex._send_index_on(h_own.device))
        ex._swap(
            packed, plan.send_counts, plan.send_displs,
            out[plan.n_own:], plan.recv_counts, plan.recv_displs,
            "features", plan.send_rows_by_link,
        )
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> Tuple[torch.Tensor, None]:
        ex: HaloExchange = ctx.ex
        plan = ex.plan
        grad_out = grad_out.contiguous()
        received = torch.empty(
            (len(plan.send_index), grad_out.shape[1]), dtype=grad_out.dtype, device=grad_out.device
        )
        ex._swap(
            grad_out[plan.n_own:], plan.recv_counts, plan.recv_displs,
            received, plan.send_counts, plan.send_displs,
            "feature_grads", plan.recv_rows_by_link,
        )
        grad_own = grad_out[: plan.n_own].clone()
        grad_own.index_add_(0, ex._send_index_on(grad_own.device), received)
        return grad_own, None


def _check_counts(ctx: "DistContext", plan: ExchangePlan) -> None:
    """Check that each peer sends exactly the halo rows this rank expects (collective).

    Raises :class:`UserError` on every rank when any rank's layout does not match.
    """
    if ctx.comm is None:
        raise UserError("a multi-rank exchange needs mpi4py, which could not start")
    incoming = np.empty(ctx.size, dtype=np.int64)
    ctx.comm.Alltoall(np.ascontiguousarray(plan.send_counts, dtype=np.int64), incoming)
    bad = np.flatnonzero(incoming != plan.recv_counts)
    n_bad_ranks = int(ctx.allreduce_sum(np.array([len(bad) > 0], dtype=np.int64))[0])
    if len(bad):
        p = int(bad[0])
        raise UserError(
            f"part {plan.rank} expects {plan.recv_counts[p]} halo rows from part {p}, "
            f"which sends {incoming[p]}: the shards do not belong to one partition"
        )
    if n_bad_ranks:
        raise UserError(f"{n_bad_ranks} parts have halo rows that do not match their owners")
