"""Start-up of a distributed run: MPI world -> servers -> (optionally) torch.distributed groups.

Ranks come from ``mpirun`` through mpi4py. A *server* is a host: the ranks that share memory
(``COMM_WORLD.Split_type(COMM_TYPE_SHARED)``); servers are numbered by the lowest world rank on
each, in increasing order. For the torch.distributed backends (gloo on CPU, NCCL on CUDA) rank
0 picks a free TCP port, broadcasts its address over MPI, and every rank joins the process group.

Without ``mpirun`` the process is a 1-rank world (MPI singleton init); if MPI cannot be
imported or initialised at all, a pure 1-rank context without communicators is returned.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np
import torch

from gnnsys.errors import RuntimeFailure, UserError

BACKENDS = ("mpi", "torch", "gloo", "nccl")

# Environment variables set by common MPI launchers in every rank they start.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


@dataclass
class DistContext:
    """Where this rank sits in the run, and the communicators to reach the others.

    Attributes:
        rank, size: world rank and number of ranks.
        host: processor name of this rank (``MPI.Get_processor_name()``).
        comm: the world communicator (``MPI.COMM_WORLD``; ``None`` without MPI).
        local_comm: the ranks of this server (``None`` without MPI).
        local_rank, local_size: rank inside the server and number of ranks on it.
        server: index of this rank's server (servers numbered by their lowest world rank).
        num_servers: number of servers.
        server_of_rank: server index of every world rank, length ``size``.
        leader_comm: one rank per server (local rank 0) for inter-server collectives;
            ``MPI.COMM_NULL`` on the other ranks (``None`` without MPI).
        backend: ``"mpi"``, ``"gloo"`` or ``"nccl"`` (``"torch"`` is resolved to one of the two).
        device: the torch device this rank computes on.
        intra_group, leader_group: torch.distributed groups matching ``local_comm`` and
            ``leader_comm`` (``None`` with the mpi backend, and ``leader_group`` is ``None``
            on non-leaders).
    """

    rank: int
    size: int
    host: str
    comm: Any
    local_comm: Any
    local_rank: int
    local_size: int
    server: int
    num_servers: int
    server_of_rank: List[int]
    leader_comm: Any
    backend: str = "mpi"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    intra_group: Any = None
    leader_group: Any = None

    @property
    def is_leader(self) -> bool:
        """True on the one rank per server that takes part in inter-server collectives."""
        return self.local_rank == 0

    @property
    def torch_dist(self) -> bool:
        """True when a torch.distributed process group was initialised for this context."""
        return self.backend in ("gloo", "nccl")

    def link_of(self, peer: int) -> str:
        """Return ``"intra"`` if world rank ``peer`` is on this rank's server, else ``"inter"``."""
        return "intra" if self.server_of_rank[peer] == self.server else "inter"

    def barrier(self) -> None:
        """Block until every rank reaches this call (no-op in a 1-rank world without MPI)."""
        if self.comm is not None:
            self.comm.Barrier()

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Return the element-wise sum of ``values`` over all ranks (same dtype and shape)."""
        send = np.ascontiguousarray(values)
        recv = send.copy()
        if self.comm is not None and self.size > 1:
            self.comm.Allreduce(send, recv)
        return recv

    def allreduce_max(self, values: np.ndarray) -> np.ndarray:
        """Return the element-wise maximum of ``values`` over all ranks (same dtype and shape)."""
        send = np.ascontiguousarray(values)
        recv = send.copy()
        if self.comm is not None and self.size > 1:
            from mpi4py import MPI

            self.comm.Allreduce(send, recv, op=MPI.MAX)
        return recv

    def check_placement(self, part_server: np.ndarray) -> None:
        """Raise :class:`UserError` unless the server of every rank matches ``part_server``.

        ``part_server[k]`` is the server a (two-level) partition assigned to part k, which
        rank k runs; start the ranks with ``--map-by ppr:G:node`` so that they match. Server
        labels are compared up to renaming (both numbered in order of first appearance).
        """
        part_server = np.asarray(part_server)
        if part_server.shape != (self.size,):
            raise UserError(
                f"the partition has {part_server.shape[0]} parts but the run has {self.size} ranks"
            )
        first_seen: dict = {}
        expected = [first_seen.setdefault(s, len(first_seen)) for s in part_server.tolist()]
        if expected != self.server_of_rank:
            raise UserError(
                f"rank placement does not match the partition: servers of ranks "
                f"{self.server_of_rank}, partition expects {part_server.tolist()} "
                f"(use mpirun --map-by ppr:G:node)"
            )

    def close(self) -> None:
        """Destroy the torch.distributed process group (if any) and free the sub-communicators."""
        if self.torch_dist and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        self.intra_group = self.leader_group = None
        if self.comm is not None:
            from mpi4py import MPI

            for sub in (self.local_comm, self.leader_comm):
                if sub is not None and sub != MPI.COMM_NULL:
                    sub.Free()
            self.local_comm = self.leader_comm = None


def init_distributed(
    backend: str = "mpi", device: str = "cpu", ranks_per_server: Optional[int] = None
) -> DistContext:
    """Initialise MPI (and torch.distributed for ``backend`` gloo/nccl) and return the context.

    Args:
        backend: ``"mpi"`` (mpi4py only), ``"gloo"`` (torch.distributed on CPU), ``"nccl"``
            (torch.distributed on CUDA; needs ``device="cuda"``) or ``"torch"`` (gloo on CPU,
            NCCL on CUDA). MPI is initialised in every case (it starts torch.distributed).
        device: ``"cpu"`` or ``"cuda"``; with CUDA each rank takes GPU ``local_rank % count``.
        ranks_per_server: group consecutive world ranks into servers of this many ranks instead
            of by host (emulates several servers on one host; ``None`` = real hosts).

    Returns:
        The :class:`DistContext` of this rank. Collective: every rank must call it.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown communication backend {backend!r} (choose from {BACKENDS})")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device {device!r} (choose cpu or cuda)")
    if backend == "nccl" and device != "cuda":
        raise UserError("backend nccl needs --device cuda (use gloo or mpi on CPU)")
    if backend == "torch":
        backend = "nccl" if device == "cuda" else "gloo"
    ctx = _mpi_context(ranks_per_server)
    ctx.backend = backend
    ctx.device = _pick_device(device, ctx.local_rank)
    if ctx.torch_dist:
        _init_torch_groups(ctx)
    return ctx


def _mpi_context(ranks_per_server: Optional[int]) -> DistContext:
    """Build the MPI part of the context (servers, local and leader communicators)."""
    try:
        from mpi4py import MPI
    except Exception as exc:  # no MPI library, or MPI_Init failed
        launched = [v for v in _LAUNCHER_SIZE_VARS if os.environ.get(v, "1") not in ("", "1")]
        if launched:
            raise RuntimeFailure(f"started by mpirun ({launched[0]}) but MPI failed: {exc}")
        return DistContext(0, 1, socket.gethostname(), None, None, 0, 1, 0, 1, [0], None)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if ranks_per_server is None:
        local_comm = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    else:
        if ranks_per_server < 1 or size % ranks_per_server:
            raise UserError(
                f"ranks_per_server={ranks_per_server} does not divide the {size} ranks"
            )
        local_comm = comm.Split(color=rank // ranks_per_server, key=rank)
    first = local_comm.allreduce(rank, op=MPI.MIN)
    firsts = comm.allgather(first)
    server_ids = {r: s for s, r in enumerate(sorted(set(firsts)))}
    server_of_rank = [server_ids[f] for f in firsts]
    local_rank = local_comm.Get_rank()
    leader_comm = comm.Split(color=0 if local_rank == 0 else MPI.UNDEFINED, key=rank)
    return DistContext(
        rank=rank,
        size=size,
        host=MPI.Get_processor_name(),
        comm=comm,
        local_comm=local_comm,
        local_rank=local_rank,
        local_size=local_comm.Get_size(),
        server=server_of_rank[rank],
        num_servers=len(server_ids),
        server_of_rank=server_of_rank,
        leader_comm=leader_comm,
    )


def _pick_device(device: str, local_rank: int) -> torch.device:
    """Return the torch device of this rank (one GPU per local rank, round robin)."""
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("--device cuda asked for but torch sees no CUDA device")
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _init_torch_groups(ctx: DistContext) -> None:
    """Join the torch.distributed process group and create the intra-server and leader groups."""
    import torch.distributed as dist

    addr = port = None
    hosts = ctx.comm.allgather(ctx.host) if ctx.comm is not None else [ctx.host]
    if ctx.rank == 0:
        addr = _master_addr(all_local=len(set(hosts)) == 1)
        port = _free_port(addr)
    if ctx.comm is not None:
        addr, port = ctx.comm.bcast((addr, port), root=0)
    dist.init_process_group(
        ctx.backend, init_method=f"tcp://{addr}:{port}", rank=ctx.rank, world_size=ctx.size
    )
    leaders = [ctx.server_of_rank.index(s) for s in range(ctx.num_servers)]  # lowest ranks
    for server in range(ctx.num_servers):  # every rank creates every group, in the same order
        group = dist.new_group([r for r in range(ctx.size) if ctx.server_of_rank[r] == server])
        if server == ctx.server:
            ctx.intra_group = group
    leader_group = dist.new_group(leaders)
    ctx.leader_group = leader_group if ctx.is_leader else None


def _master_addr(all_local: bool) -> str:
    """Return the address rank 0 is reachable at.

    Order: ``GNNSYS_MASTER_ADDR``, ``MASTER_ADDR``, the IPv4 address of ``GLOO_SOCKET_IFNAME``
    (or ``NCCL_SOCKET_IFNAME``), loopback when every rank is on this host, the address the
    host name resolves to, or else the first non-loopback IPv4 address of this host.
    """
    for var in ("GNNSYS_MASTER_ADDR", "MASTER_ADDR"):
        if os.environ.get(var):
            return os.environ[var]
    import psutil

    addrs = psutil.net_if_addrs()
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        ifname = os.environ.get(var, "").split(",")[0]
        if ifname:
            ips = [a.address for a in addrs.get(ifname, []) if a.family == socket.AF_INET]
            if not ips:
                raise UserError(f"{var}={ifname}: no IPv4 address on that interface")
            return ips[0]
    if all_local:
        return "127.0.0.1"
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        ip = "127.0.0.1"
    if not ip.startswith("127."):
        return ip
    for entries in addrs.values():
        for a in entries:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    raise RuntimeFailure("cannot find a non-loopback address for rank 0; set GNNSYS_MASTER_ADDR")


def _free_port(addr: str) -> int:
    """Return a TCP port that is free on ``addr`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((addr, 0))
        except OSError:
            sock.bind(("", 0))
        return sock.getsockname()[1]
