"""Time the exact halo exchange per transport: MPI Alltoallv, MPI Isend/Irecv, gloo.

An MPI program; run it with mpirun, e.g. (single host)::

    mpirun -n 4 --oversubscribe --bind-to none .venv/bin/python benchmarks/exchange_bench.py

Each rank owns ``--rows`` rows and receives ``--rows`` halo rows split evenly over the other
ranks (and sends as many), ``--dim`` columns. For each transport it runs ``--repeat`` forward
exchanges (after one warm-up) and ``--repeat`` forward + backward passes; rank 0 prints the
slowest rank's times (whole forward; the transport call alone; forward + backward) and the
bandwidth one rank sends at inside the transport call.
"""
import argparse
import time

import numpy as np
import torch
from mpi4py import MPI

from gnnsys.comm import ByteCounters, ExchangePlan, HaloExchange, init_distributed

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def symmetric_plan(ctx, rows: int, seed: int) -> ExchangePlan:
    """Plan where every rank sends/receives ``rows`` rows split evenly over its peers."""
    peers = ctx.size - 1
    counts = np.array([0 if p == ctx.rank else rows // peers for p in range(ctx.size)])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    send_index = np.random.default_rng([seed, ctx.rank]).integers(0, rows, offsets[-1])
    links = [ctx.link_of(p) for p in range(ctx.size)]
    return ExchangePlan.from_arrays(ctx.rank, rows, offsets, send_index, offsets, links)


def slowest(ctx, fn) -> float:
    """Run ``fn`` between barriers and return the largest wall time over the ranks."""
    ctx.barrier()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return float(ctx.comm.allreduce(elapsed, op=MPI.MAX))


def bench(ctx, plan, backend, dtype, dim, repeat):
    """Return (forward s, transport swap s, forward+backward s, MB/s one rank sends in the
    swap): times are medians (swap: mean) over ``repeat`` of the slowest rank."""
    counters = ByteCounters()
    ex = HaloExchange(ctx, plan, counters, backend=backend)
    h = torch.randn(plan.n_own, dim, dtype=dtype)
    weight = torch.randn(plan.n_own + plan.n_halo, dim, dtype=dtype)

    def fwd_bwd():
        hg = h.clone().requires_grad_(True)
        (ex(hg) * weight).sum().backward()

    ex(h)  # warm-up (connections, buffers)
    counters.reset()
    fwd = np.median([slowest(ctx, lambda: ex(h)) for _ in range(repeat)])
    swap = ctx.comm.allreduce(counters.comm_s / repeat, op=MPI.MAX)
    both = np.median([slowest(ctx, fwd_bwd) for _ in range(repeat)])
    sent = len(plan.send_index) * dim * h.element_size()
    return fwd, swap, both, sent / swap / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000, help="halo rows per rank (and owned)")
    ap.add_argument("--dim", type=int, default=256, help="columns per row")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions per transport")
    ap.add_argument("--backends", default="mpi,mpi_p2p,torch",
                    help="comma-separated exchange backends to time")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = init_distributed("gloo")
    if ctx.size < 2:
        raise SystemExit("run under mpirun with at least 2 ranks")
    plan = symmetric_plan(ctx, args.rows, args.seed)
    mb = len(plan.send_index) * args.dim * DTYPES[args.dtype].itemsize / 1e6
    results = {b: bench(ctx, plan, b, DTYPES[args.dtype], args.dim, args.repeat)
               for b in args.backends.split(",")}
    if ctx.rank == 0:
        print(f"{ctx.size} ranks on {ctx.num_servers} server(s), {args.rows} halo rows/rank, "
              f"d={args.dim} {args.dtype}: {mb:.1f} MB sent per rank per exchange")
        print(f"{'backend':10s} {'fwd s':>8s} {'swap s':>8s} {'fwd+bwd s':>10s} "
              f"{'MB/s/rank':>10s}")
        for name, (fwd, swap, both, rate) in results.items():
            print(f"{name:10s} {fwd:8.3f} {swap:8.3f} {both:10.3f} {rate:10.0f}")
        best = min(results, key=lambda b: results[b][1])
        print(f"fastest here (fwd+bwd): {best}")
    ctx.close()


if __name__ == "__main__":
    main()
