"""Rank script for tests/launch/test_emulate.py, run on 2 emulated hosts x 2 ranks.

Checks that the ranks sit on the hosts in blocks, that shared-memory groups are the hosts, and
that a 4 MB message crosses hosts intact in both directions; rank 0 prints ``BED OK``.
Called with an exit code instead, rank 1 exits with it (a failing job); with ``sleep``, every
rank sleeps for a minute (a hung job).
"""
import os
import socket
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
mode = sys.argv[1] if len(sys.argv) > 1 else "check"
if mode == "sleep":
    time.sleep(60)
elif mode != "check":
    comm.Barrier()
    sys.exit(int(mode) if comm.rank == 1 else 0)

prefix = os.environ["BED_PREFIX"]
host = socket.gethostname()
assert host == f"{prefix}h{comm.rank // 2}", (comm.rank, host)
assert os.environ["GLOO_SOCKET_IFNAME"] == "eth0"
local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
members = local.allgather(comm.rank)
assert members == [2 * (comm.rank // 2), 2 * (comm.rank // 2) + 1], members
assert comm.allreduce(1 if local.rank == 0 else 0) == 2  # two groups of two

n = 4 << 20
sent = np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8)
if comm.rank == 0:  # h0 -> h1 and back
    comm.Send(sent, dest=2)
    back = np.empty(n, dtype=np.uint8)
    comm.Recv(back, source=2)
    assert np.array_equal(back, sent[::-1]), "message from h1 corrupted"
elif comm.rank == 2:
    got = np.empty(n, dtype=np.uint8)
    comm.Recv(got, source=0)
    assert np.array_equal(got, sent), "message from h0 corrupted"
    comm.Send(np.ascontiguousarray(got[::-1]), dest=0)
comm.Barrier()
if comm.rank == 0:
    print("BED OK", flush=True)
