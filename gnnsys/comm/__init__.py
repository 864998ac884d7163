"""gnnsys.comm: MPI bootstrap, the exact halo exchange, gradient all-reduce, byte counters.

mpi4py and torch.distributed are imported only when a context is initialised, so importing
this package needs neither.
"""
from gnnsys.comm.allreduce import allreduce_gradients, allreduce_scalars
from gnnsys.comm.bootstrap import DistContext, init_distributed
from gnnsys.comm.counters import KINDS, LINKS, ByteCounters
from gnnsys.comm.exchange import HaloExchange
from gnnsys.comm.plan import ExchangePlan
from gnnsys.comm.transport import TRANSPORTS, make_transport

__all__ = [
    "ByteCounters",
    "DistContext",
    "ExchangePlan",
    "HaloExchange",
    "KINDS",
    "LINKS",
    "TRANSPORTS",
    "allreduce_gradients",
    "allreduce_scalars",
    "init_distributed",
    "make_transport",
]
