"""Measure the links of a (real or emulated) cluster with mpi4py: run under mpirun, >= 2 hosts.

Rank 0 and the first rank on another host do a ping-pong (one direction at a time) and a
bidirectional exchange (both directions at once) of SIZE_MB megabytes, REPS times; the same is
done with a rank on rank 0's host when there is one. Rank 0 prints the best time of each as MB/s
per direction (1 MB = 10^6 bytes).

    launch/emulate/run --hosts 2 --rate 200mbit -- python launch/emulate/linkcheck.py [SIZE_MB] [REPS]
"""
import socket
import sys
import time

import numpy as np
from mpi4py import MPI


def quiet_barrier(comm) -> None:
    """Barrier that sleeps instead of spinning (ranks may share few cores)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.0005)


def measure(comm, peer_of_0: int, nbytes: int, reps: int) -> tuple:
    """Return (ping-pong MB/s, exchange MB/s per direction) between rank 0 and ``peer_of_0``."""
    out = np.ones(nbytes, dtype=np.uint8)
    back = np.empty_like(out)
    best_pp = best_ex = float("inf")
    for _ in range(reps):
        quiet_barrier(comm)
        start = time.perf_counter()
        if comm.rank == 0:
            comm.Send(out, dest=peer_of_0)
            comm.Recv(back, source=peer_of_0)
        elif comm.rank == peer_of_0:
            comm.Recv(back, source=0)
            comm.Send(back, dest=0)
        best_pp = min(best_pp, (time.perf_counter() - start) / 2)
        quiet_barrier(comm)
        start = time.perf_counter()
        if comm.rank in (0, peer_of_0):
            other = peer_of_0 if comm.rank == 0 else 0
            comm.Sendrecv(out, dest=other, recvbuf=back, source=other)
        best_ex = min(best_ex, time.perf_counter() - start)
    return nbytes / best_pp / 1e6, nbytes / best_ex / 1e6


def main() -> None:
    """Parse SIZE_MB and REPS from the command line, measure, print on rank 0."""
    size_mb = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    comm = MPI.COMM_WORLD
    hosts = comm.allgather(socket.gethostname())
    remote = next((r for r in range(comm.size) if hosts[r] != hosts[0]), None)
    same = next((r for r in range(1, comm.size) if hosts[r] == hosts[0]), None)
    if remote is None:
        raise SystemExit("linkcheck: all ranks are on one host; start ranks on >= 2 hosts")
    nbytes = int(size_mb * 1e6)
    for peer, label in ((remote, "cross-host"), (same, "same-host")):
        if peer is None:
            continue
        pingpong, exchange = measure(comm, peer, nbytes, reps)
        if comm.rank == 0:
            print(f"{label:10s} 0<->{peer} ({hosts[0]} - {hosts[peer]}), {size_mb:g} MB: "
                  f"ping-pong {pingpong:8.1f} MB/s, bidirectional {exchange:8.1f} MB/s "
                  f"per direction", flush=True)


if __name__ == "__main__":
    main()
