"""The halo exchange: one autograd function, exact or quantized, run now or in the background.

Forward: pack the owned rows each peer needs (``h_own[send_index]``), all-to-all, and place each
peer's block in its contiguous halo slice: ``out = cat(h_own, halo)``. Backward is the
transpose: the gradient of each halo slice goes back to its owner, which index-adds it into
the gradient of its own rows, on top of the gradient that reached them directly.

Rows travel raw (exact, any dtype) or through the :class:`~gnnsys.comm.codec.Codec` of the
link class of each peer (``intra``/``inter``): each peer's block is encoded on its own, the
payloads travel as one byte all-to-all, and the receiver decodes each block into its slice.
A swap is started by :meth:`HaloExchange.start_forward` / :meth:`~HaloExchange.start_backward`
and finished by :meth:`PendingSwap.wait`; with a :class:`~gnnsys.comm.pipeline.CommWorker` the
transport runs on a communication thread in between, overlapping computation (the bounded
staleness exchange in :mod:`gnnsys.comm.staleness` does that). A pruned exchange
(:meth:`HaloExchange.pruned`, :mod:`gnnsys.comm.pruning`) moves, per layer, only the halo rows
that layer reads, and leaves the others at zero.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from gnnsys.comm.codec import Codec, Encoded, derive_seed
from gnnsys.comm.counters import ByteCounters
from gnnsys.comm.plan import ExchangePlan, RowSubset
from gnnsys.comm.transport import make_transport
from gnnsys.errors import UserError

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext
    from gnnsys.comm.pipeline import CommWorker

EXACT = {"intra": Codec(32), "inter": Codec(32)}


class PendingSwap:
    """A swap of row blocks in flight; :meth:`wait` returns the received rows.

    Created by :class:`HaloExchange`. ``wait`` blocks until the transport is done (time counted
    as ``comm_wait_s``), decodes the payloads (``codec_s``) and returns a ``[rows, d]`` tensor.
    """

    def __init__(self, counters: ByteCounters, finish: Callable[[], torch.Tensor],
                 future=None) -> None:
        self._counters = counters
        self._finish = finish
        self._future = future
        self._result: Optional[torch.Tensor] = None

    def done(self) -> bool:
        """True when the received rows are there (wait would not block)."""
        return self._result is not None or self._future is None or self._future.done()

    def wait(self) -> torch.Tensor:
        """Block until the swap is complete and return the received rows."""
        if self._result is None:
            if self._future is not None:
                start = time.perf_counter()
                busy_s = self._future.result()
                self._counters.comm_wait_s += time.perf_counter() - start
                self._counters.comm_s += busy_s
            self._result = self._finish()
        return self._result


class HaloExchange:
    """Callable ``exchange(h_own [n_own, d], layer, epoch) -> [n_own + n_halo, d]`` with autograd.

    Args:
        ctx: the :class:`~gnnsys.comm.bootstrap.DistContext` of this rank.
        plan: this rank's :class:`~gnnsys.comm.plan.ExchangePlan`.
        counters: where sent bytes (kinds ``features`` forward, ``feature_grads`` backward,
            under the link class of each peer), communication and codec time are counted.
        backend: ``"mpi"`` (Alltoallv, default), ``"mpi_p2p"`` (Isend/Irecv) or ``"torch"``
            (``all_to_all_single``: gloo on CPU, NCCL on CUDA). Tensors that are not on the
            transport's device are staged through it (CUDA -> CPU for MPI).
        codecs: the codec of each link class (default exact: 32 bits, the input dtype raw).
        seed: the run's seed; codec random streams derive from (seed, epoch, layer, rank).
        worker: a :class:`~gnnsys.comm.pipeline.CommWorker` that runs started swaps on a
            communication thread; without one a swap completes when it is started.

    Constructing it and every swap are collective: all ranks take part, in the same order.
    Every rank must back-propagate through every exchange whose output needs a gradient. The
    constructor checks with one all-to-all that every peer sends exactly the rows this rank
    expects and raises :class:`UserError` on every rank otherwise.
    """

    def __init__(self, ctx: "DistContext", plan: ExchangePlan, counters: ByteCounters,
                 backend: str = "mpi", codecs: Optional[Dict[str, Codec]] = None,
                 seed: int = 0, worker: Optional["CommWorker"] = None) -> None:
        if plan.size != ctx.size or plan.rank != ctx.rank:
            raise UserError(
                f"exchange plan is for part {plan.rank} of {plan.size}, "
                f"but this is rank {ctx.rank} of {ctx.size}"
            )
        self.ctx = ctx
        self.plan = plan
        self.counters = counters
        self.codecs = dict(codecs or EXACT)
        self.seed = seed
        self.worker = worker
        self.transport = make_transport(backend, ctx)
        self.subsets: Dict[int, RowSubset] = {}
        self._index: Dict[Tuple[str, int, torch.device], torch.Tensor] = {}
        if ctx.size > 1:
            _check_counts(ctx, plan)

    @property
    def quantized(self) -> bool:
        """True when some link class does not send exact rows."""
        return any(codec.bits != 32 for codec in self.codecs.values())

    def __call__(self, h_own: torch.Tensor, layer: int = 0, epoch: int = 0,
                 exact: bool = False) -> torch.Tensor:
        """Return ``cat(h_own, halo)``: [n_own + n_halo, d], differentiable w.r.t. ``h_own``.

        ``exact`` sends full-precision rows whatever the codecs (evaluation, sync epochs).
        """
        self._check_rows(h_own)
        if self.transport is None:  # 1-rank world: no halo (the plan guarantees it)
            return h_own
        return _HaloExchangeFn.apply(h_own, self, layer, epoch, exact)

    def start_forward(self, h_own: torch.Tensor, layer: int, epoch: int,
                      exact: bool = False, out: Optional[torch.Tensor] = None) -> PendingSwap:
        """Start sending the rows peers need; ``wait()`` gives this rank's halo [n_halo, d].

        ``out`` (optional, [n_halo, d]) receives the halo rows (exact or decoded) in place.
        """
        plan, device = self._plan_of(layer), h_own.device
        packed = h_own.detach().index_select(0, self._index_on("send", layer, device))
        seed = None if exact else derive_seed(self.seed, epoch, layer, plan.rank, 0)
        if layer not in self.subsets:
            return self._start(packed, plan.send_counts, plan.send_displs, plan.recv_counts,
                               plan.recv_displs, "features", plan.send_rows_by_link, seed, out)

        def spread(rows: torch.Tensor) -> torch.Tensor:
            halo = out if out is not None else rows.new_empty((self.plan.n_halo, rows.shape[1]))
            return halo.zero_().index_copy_(0, self._index_on("halo", layer, rows.device),
                                            rows.to(halo.dtype))
        return self._start(packed, plan.send_counts, plan.send_displs, plan.recv_counts,
                           plan.recv_displs, "features", plan.send_rows_by_link, seed,
                           then=spread)

    def start_backward(self, grad_halo: torch.Tensor, layer: int, epoch: int,
                       exact: bool = False) -> PendingSwap:
        """Start returning halo gradients ``[n_halo, d]`` to their owners; ``wait()`` gives
        the gradients peers sent for this rank's send rows of ``layer``, ``[n_send, d]`` (see
        :meth:`add_received`)."""
        plan = self._plan_of(layer)
        if layer in self.subsets:
            grad_halo = grad_halo.index_select(0, self._index_on("halo", layer, grad_halo.device))
        return self._start(grad_halo.detach().contiguous(), plan.recv_counts, plan.recv_displs,
                           plan.send_counts, plan.send_displs, "feature_grads",
                           plan.recv_rows_by_link,
                           None if exact else derive_seed(self.seed, epoch, layer, plan.rank, 1))

    def add_received(self, grad_own: torch.Tensor, received: torch.Tensor,
                     layer: int) -> torch.Tensor:
        """Index-add the gradients received for ``layer``'s send rows into ``grad_own`` (in
        place) and return it."""
        return grad_own.index_add_(0, self._index_on("send", layer, grad_own.device), received)

    def with_plan(self, plan: ExchangePlan) -> "HaloExchange":
        """Return an exchange over the same transport, codecs and counters for ``plan``.

        For plans that change every step (sampled minibatches): their counts were agreed by the
        ID requests that built them, so the constructor's collective count check is skipped.
        """
        other = object.__new__(HaloExchange)
        other.__dict__.update(self.__dict__, plan=plan, subsets={}, _index={})
        return other

    def pruned(self, subsets: Dict[int, RowSubset]) -> "HaloExchange":
        """Return an exchange over the same transport, codecs, counters and plan that moves,
        for every layer in ``subsets``, only that subset's rows (the other halo rows of its
        output are zero, their gradients are not sent); see :mod:`gnnsys.comm.pruning`."""
        other = object.__new__(HaloExchange)
        other.__dict__.update(self.__dict__, subsets=dict(subsets), _index={})
        return other

    def _check_rows(self, h_own: torch.Tensor) -> None:
        if h_own.dim() != 2 or h_own.shape[0] != self.plan.n_own:
            raise ValueError(f"halo exchange expects [{self.plan.n_own}, d] owned rows, got "
                             f"{tuple(h_own.shape)}")

    def _plan_of(self, layer: int) -> ExchangePlan:
        """The plan of ``layer``'s swaps: its subset's, or the full plan."""
        subset = self.subsets.get(layer)
        return self.plan if subset is None else subset.plan

    def _index_on(self, kind: str, layer: int, device: torch.device) -> torch.Tensor:
        """Return ``layer``'s send index (``kind="send"``) or its subset's halo positions
        (``"halo"``) on ``device`` (cached)."""
        key = (kind, layer if layer in self.subsets else -1, device)
        if key not in self._index:
            index = (self._plan_of(layer).send_index if kind == "send"
                     else self.subsets[layer].halo_pos)
            self._index[key] = index.to(device)
        return self._index[key]

    def _codec_of(self, peer: int) -> Codec:
        return self.codecs[self.plan.link_of_peer[peer]]

    def _start(self, send: torch.Tensor, send_counts: np.ndarray, send_displs: np.ndarray,
               recv_counts: np.ndarray, recv_displs: np.ndarray, kind: str,
               rows_by_link: Dict[str, int], seed: Optional[int],
               out: Optional[torch.Tensor] = None,
               then: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> PendingSwap:
        """Encode (unless ``seed`` is None: raw rows), count bytes, and start one swap whose
        received rows land in ``out`` (when given) and are then passed through ``then``."""
        d, dtype, device = send.shape[1], send.dtype, send.device
        n_recv = int(recv_counts.sum())
        coded = seed is not None and self.quantized
        if coded:
            payload, byte_counts = self._encode(send, send_counts, send_displs, seed)
            recv_bytes = np.array([c * self._codec_of(p).wire_bytes(1, d, dtype)
                                   for p, c in enumerate(recv_counts)], dtype=np.int64)
            sendbuf, s_counts = payload, byte_counts
            recvbuf = torch.empty(int(recv_bytes.sum()), dtype=torch.uint8)
            r_counts = recv_bytes
            for p, nbytes in enumerate(byte_counts):
                if nbytes:
                    self.counters.add(self.plan.link_of_peer[p], kind, int(nbytes))
        else:
            sendbuf, s_counts, r_counts = send, send_counts, recv_counts
            use_out = out is not None and out.device == self.transport.device
            recvbuf = out if use_out else torch.empty((n_recv, d), dtype=dtype,
                                                      device=self.transport.device)
            row_bytes = d * send.element_size()
            for link, rows in rows_by_link.items():
                if rows:
                    self.counters.add(link, kind, rows * row_bytes)
        sendbuf = sendbuf.to(self.transport.device).contiguous()
        s_displs, r_displs = _exclusive_cumsum(s_counts), _exclusive_cumsum(r_counts)
        args = (sendbuf, s_counts, s_displs, recvbuf, r_counts, r_displs)

        def received() -> torch.Tensor:
            if coded:
                return self._decode(recvbuf, recv_counts, r_displs, d, dtype, device, out)
            if out is not None and recvbuf is not out:
                return out.copy_(recvbuf)
            return recvbuf.to(device)

        def finish() -> torch.Tensor:
            return received() if then is None else then(received())

        if self.worker is not None:
            return PendingSwap(self.counters, finish, self.worker.submit(args))
        with self.counters.timed(blocking=True):
            self.transport.swap(*args)
        return PendingSwap(self.counters, finish)

    def _encode(self, send: torch.Tensor, counts: np.ndarray, displs: np.ndarray,
                seed: int) -> Tuple[torch.Tensor, np.ndarray]:
        """Encode each peer's block with its link's codec; return (payload, bytes per peer)."""
        payloads, nbytes = [], np.zeros(len(counts), dtype=np.int64)
        with self.counters.codec_timed():
            for p, (c, start) in enumerate(zip(counts, displs)):
                if c:
                    enc = self._codec_of(p).encode(send[start:start + c], seed, row_offset=start)
                    payloads.append(enc.payload)
                    nbytes[p] = enc.payload.numel()
        payload = torch.cat(payloads) if payloads else torch.zeros(0, dtype=torch.uint8)
        return payload, nbytes

    def _decode(self, recvbuf: torch.Tensor, counts: np.ndarray, byte_displs: np.ndarray,
                d: int, dtype: torch.dtype, device: torch.device,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode each peer's payload into one [sum(counts), d] tensor on ``device`` (into
        ``out`` when given) and return it."""
        if out is None:
            out = torch.empty((int(counts.sum()), d), dtype=dtype, device=device)
        row = 0
        with self.counters.codec_timed():
            for p, rows in enumerate(counts.tolist()):
                if rows:
                    codec = self._codec_of(p)
                    nbytes = codec.wire_bytes(rows, d, dtype)
                    start = int(byte_displs[p])
                    enc = Encoded(recvbuf[start:start + nbytes].to(device), rows, d,
                                  codec.bits, dtype)
                    codec.decode(enc, out=out[row:row + rows])
                    row += rows
        return out


class _HaloExchangeFn(torch.autograd.Function):
    """Autograd function behind :class:`HaloExchange` (forward: gather, backward: scatter-add)."""

    @staticmethod
    def forward(ctx, h_own: torch.Tensor, ex: HaloExchange, layer: int, epoch: int,
                exact: bool) -> torch.Tensor:
        plan = ex.plan
        ctx.ex, ctx.layer, ctx.epoch, ctx.exact = ex, layer, epoch, exact
        out = torch.empty((plan.n_own + plan.n_halo, h_own.shape[1]), dtype=h_own.dtype,
                          device=h_own.device)
        out[: plan.n_own] = h_own
        ex.start_forward(h_own, layer, epoch, exact, out=out[plan.n_own:]).wait()
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        ex: HaloExchange = ctx.ex
        n_own = ex.plan.n_own
        received = ex.start_backward(grad_out[n_own:], ctx.layer, ctx.epoch, ctx.exact).wait()
        grad_own = ex.add_received(grad_out[:n_own].clone(), received, ctx.layer)
        return grad_own, None, None, None, None


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


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
